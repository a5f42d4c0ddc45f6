"""Helpers of the load scripts (scripts/bench_capacity.py, scripts/soak.py): SIPp echo calls with
speech from a pcap, their counts, and the CPU, memory and descriptors of the server's processes.

No pytest here: the scripts import it from a plain interpreter.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from voicegw.testing.harness import SIPP_DIR
from voicegw.testing.media import read_wav, synthesize
from voicegw.testing.rtp_tools import build_pcap

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14, 15)


def rss_mb(pid: int) -> float:
    """Resident memory of a process (/proc/PID/statm), in MB."""
    resident_pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    return resident_pages * PAGE_KB / 1024


def open_fds(pid: int) -> int:
    """File descriptors the process holds (sockets included)."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants alive now (a server and its worker processes), parents first."""
    tree, pending = [], [pid]
    while pending:
        parent = pending.pop(0)
        tree.append(parent)
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except FileNotFoundError:
            continue
        for task in tasks:
            try:
                children = Path(f"/proc/{parent}/task/{task}/children").read_text()
            except FileNotFoundError:
                continue
            pending += [int(child) for child in children.split()]
    return tree


@dataclass(frozen=True)
class ProcessFigures:
    """One process's figures at one moment."""

    pid: int
    name: str
    rss_mb: float
    fds: int
    cpu_s: float


def process_figures(pid: int) -> ProcessFigures | None:
    """RSS, descriptors and CPU of `pid`; None if it has exited meanwhile."""
    try:
        name = Path(f"/proc/{pid}/comm").read_text().strip()
        return ProcessFigures(pid, name, round(rss_mb(pid), 1), open_fds(pid), round(cpu_seconds(pid), 1))
    except (FileNotFoundError, ProcessLookupError):
        return None


def tree_figures(pid: int) -> list[ProcessFigures]:
    """The figures of every process of `pid`'s tree."""
    return [figures for p in process_tree(pid) if (figures := process_figures(p)) is not None]


def speech_pcap(workdir: Path, seconds: float) -> Path:
    """A PCMU pcap of `seconds` of speech (a synthesized sentence, repeated)."""
    wav = synthesize(workdir / "speech.wav", rate=8000)
    sentence = read_wav(wav)[0]
    repeats = int(np.ceil(seconds * 8000 / len(sentence)))
    pcm = np.tile(sentence, repeats)[: int(seconds * 8000)]
    return build_pcap(workdir / "audio.pcap", "PCMU", pcm).path


def scenario_for_load(workdir: Path) -> Path:
    """uac_echo_pcap.xml with one media port per call."""
    text = (SIPP_DIR / "uac_echo_pcap.xml").read_text().replace("[media_port+4]", "[auto_media_port+4]")
    path = workdir / "uac_echo_pcap_load.xml"
    path.write_text(text)
    return path


def sipp_counts(workdir: Path) -> tuple[int, int]:
    """Successful and failed calls from SIPp's -trace_stat CSV (last line)."""
    for path in workdir.glob("*_.csv"):
        lines = path.read_text().splitlines()
        if len(lines) >= 2:
            header, last = lines[0].split(";"), lines[-1].split(";")
            row = dict(zip(header, last, strict=False))
            return int(row.get("SuccessfulCall(C)", 0)), int(row.get("FailedCall(C)", 0))
    return 0, 0


def _summed(read: Callable[[int], float], pid: int) -> float:
    total = 0.0
    for member in process_tree(pid):
        # A worker may exit between the listing and the read.
        with contextlib.suppress(OSError):
            total += read(member)
    return total


def tree_cpu_seconds(pid: int) -> float:
    """`cpu_seconds` summed over the process and its descendants alive now (workers included)."""
    return _summed(cpu_seconds, pid)


def tree_rss_mb(pid: int) -> float:
    """`rss_mb` summed over the process and its descendants."""
    return _summed(rss_mb, pid)
