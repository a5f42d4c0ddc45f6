"""A soak of `voicegw serve --echo`: SIPp keeps N calls up, re-placing each as it ends, for D
minutes, then places short calls; the RSS, descriptors and CPU of the server's processes (the
server and any worker it started) are sampled every minute, its RSS every second for the peak, and
its log scanned for ERROR lines and tracebacks.

Used by scripts/soak.py (which prints the figures) and tests/e2e/test_soak.py (no pytest here).
"""

from __future__ import annotations

import json
import math
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from voicegw.testing.harness import EchoServer, sipp_command
from voicegw.testing.load import ProcessFigures, scenario_for_load, sipp_counts, speech_pcap, tree_figures
from voicegw.testing.sipp import free_media_ports

SIPP_MEDIA_BASES = (20000, 45000)
"""SIPp replays call n from port base + 4n (mod 10,000), a free base drawn here: below voicegw's
RTP range (`RTP_PORTS`), and apart from another soak's."""
RTP_PORTS = "56000-64000"
IDLE_SETTLE_S = 5.0
"""After the last call, time for the server to close its calls before the final figures."""
ERROR_LEVELS = ("error", "critical")


@dataclass
class Sample:
    """The server's figures at one moment: totals over its processes, and each process's."""

    at_s: float
    rss_mb: float
    fds: int
    cpu_s: float
    active: str = ""
    processes: list[ProcessFigures] = field(default_factory=list)


@dataclass
class Phase:
    name: str
    calls: int
    seconds_each: float
    placed: int = 0
    failed: int = 0
    wall_s: float = 0.0
    peak_rss_mb: float = 0.0
    """The highest RSS of the server's processes together, sampled every second."""


@dataclass
class Soak:
    concurrent: int
    minutes: float
    samples: list[Sample] = field(default_factory=list)
    phases: list[Phase] = field(default_factory=list)
    packets_echoed: int = 0
    packets_received: int = 0
    calls_closed: int = 0
    error_lines: int = 0
    tracebacks: int = 0
    first_errors: list[str] = field(default_factory=list)
    rss_growth_pct: float | None = None
    """From the end of the first minute to the end of the long calls."""
    fds_back_to_baseline: bool | None = None
    exited_cleanly: bool | None = None


class Sampler:
    """RSS, fds and CPU of the server's process tree, sampled at the soak's minutes.

    RSS is summed over the processes: pages a forked worker still shares with its parent count
    in both.
    """

    def __init__(self, pid: int, soak: Soak, *, quiet: bool = False) -> None:
        self.pid = pid
        self.soak = soak
        self.quiet = quiet
        self.started = time.monotonic()

    def rss_mb(self) -> float:
        return round(sum(p.rss_mb for p in tree_figures(self.pid)), 1)

    def take(self, label: str) -> Sample:
        processes = tree_figures(self.pid)
        sample = Sample(
            round(time.monotonic() - self.started, 1),
            round(sum(p.rss_mb for p in processes), 1),
            sum(p.fds for p in processes),
            round(sum(p.cpu_s for p in processes), 1),
            label,
            processes,
        )
        self.soak.samples.append(sample)
        if self.quiet:
            return sample
        print(
            f"  {label:<22} t={sample.at_s:7.1f} s  RSS {sample.rss_mb:7.1f} MB  fds {sample.fds:5d}"
            f"  CPU {sample.cpu_s:7.1f} s  ({len(processes)} process{'es' if len(processes) > 1 else ''})",
            flush=True,
        )
        if len(processes) > 1:
            for p in processes:
                print(f"      pid {p.pid:<8} {p.name:<16} RSS {p.rss_mb:7.1f} MB  fds {p.fds:5d}", flush=True)
        return sample


def run_phase(
    server: EchoServer, run_dir: Path, phase: Phase, concurrent: int, rate: int, sampler: Sampler
) -> None:
    """Place `phase.calls` calls, at most `concurrent` at a time; sample every minute meanwhile."""
    phase_dir = run_dir / phase.name
    phase_dir.mkdir()
    (phase_dir / "audio.pcap").symlink_to(run_dir / "audio.pcap")
    command = sipp_command(
        str(scenario_for_load(phase_dir)), server.port, media_port=free_media_ports(SIPP_MEDIA_BASES),
        keys={"pt": "0", "codec": "PCMU/8000", "te_pt": "101"}, calls=phase.calls,
        pause_ms=int(phase.seconds_each * 1000), rate=rate,
    )  # fmt: skip
    # -l caps the calls in progress (sipp_command sets it to the total): SIPp re-places as they end.
    command[command.index("-l") + 1] = str(concurrent)
    expected_s = phase.calls / concurrent * (phase.seconds_each + 1) + phase.calls / rate
    command += ["-trace_stat", "-fd", "5", "-timeout", f"{int(expected_s * 2 + 120)}s"]
    started = time.monotonic()
    sipp = subprocess.Popen(command, cwd=phase_dir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    minute = 1
    while sipp.poll() is None:
        time.sleep(1.0)
        phase.peak_rss_mb = max(phase.peak_rss_mb, sampler.rss_mb())
        if time.monotonic() - started >= 60 * minute:
            sampler.take(f"{phase.name} minute {minute}")
            minute += 1
    phase.wall_s = round(time.monotonic() - started, 1)
    phase.placed, phase.failed = sipp_counts(phase_dir)
    phase.placed += phase.failed
    if sipp.returncode not in (0, 1):
        error = sipp.stderr.read().decode(errors="replace")[-300:] if sipp.stderr else ""
        print(f"  sipp exit {sipp.returncode}: {error}", flush=True)


def scan_log(server: EchoServer, soak: Soak) -> None:
    events = server.log_events()
    errors = [e for e in events if e.get("level") in ERROR_LEVELS]
    soak.error_lines = len(errors)
    soak.tracebacks = sum(1 for e in events if "exception" in e)
    soak.first_errors = [json.dumps(e)[:300] for e in errors[:5]]
    closed = server.media_stats()
    soak.calls_closed = len(closed)
    soak.packets_echoed = sum(int(e.get("packets_out", 0)) for e in closed)
    soak.packets_received = sum(int(e.get("packets_in", 0)) for e in closed)


@dataclass(frozen=True)
class SoakPlan:
    """`calls` concurrent calls of `call_seconds` for `minutes`, then `short_calls` of `short_seconds`."""

    calls: int = 20
    minutes: float = 2.0
    call_seconds: float = 20.0
    short_calls: int = 100
    short_seconds: float = 1.0
    rate: int = 20
    """New calls per second at most."""
    allocator: str = "jemalloc"
    """The server's ``[server] allocator``: ``jemalloc`` (its default) or ``system`` (glibc's malloc)."""

    malloc_conf: str | None = None
    """jemalloc's options (``MALLOC_CONF``) instead of the server's own choice."""

    workers: int | None = None
    """The server's ``[server] workers`` (0: calls in the server process); None: its default."""


def soak(args: SoakPlan, workdir: Path, *, quiet: bool = False) -> Soak:
    """Run the soak against a `voicegw serve --echo` of its own; its figures."""
    result = Soak(args.calls, args.minutes)
    long_calls = args.calls * max(1, math.ceil(args.minutes * 60 / (args.call_seconds + 1)))
    speech_pcap(workdir, args.call_seconds + 2)
    server = EchoServer(
        "voicegw",
        workdir,
        max_calls=args.calls + 20,
        config=f"[rtp]\nports = '{RTP_PORTS}'\n[server]\nallocator = '{args.allocator}'\n"
        + (f"workers = {args.workers}\n" if args.workers is not None else ""),
        env={"MALLOC_CONF": args.malloc_conf} if args.malloc_conf else {},
    )
    try:
        server.wait_ready()
        sampler = Sampler(server.proc.pid, result, quiet=quiet)
        baseline = sampler.take("start (idle)")
        if not quiet:
            print(
                f"long calls: {args.calls} at a time x {args.call_seconds:g} s, {long_calls} in all",
                flush=True,
            )
        long_phase = Phase("long", long_calls, args.call_seconds)
        run_phase(server, workdir, long_phase, args.calls, args.rate, sampler)
        end_of_long = sampler.take("end of long calls")
        result.phases.append(long_phase)
        if args.short_calls:
            short_phase = Phase("short", args.short_calls, args.short_seconds)
            run_phase(server, workdir, short_phase, args.calls, args.rate, sampler)
            sampler.take("end of short calls")
            result.phases.append(short_phase)
        time.sleep(IDLE_SETTLE_S)
        after = sampler.take("after (idle)")
        first_minute = next((s for s in result.samples if s.active == "long minute 1"), None)
        if first_minute is not None:
            growth = 100.0 * (end_of_long.rss_mb - first_minute.rss_mb) / first_minute.rss_mb
            result.rss_growth_pct = round(growth, 2)
        result.fds_back_to_baseline = after.fds == baseline.fds
    finally:
        result.exited_cleanly = server.stop()
    scan_log(server, result)
    return result
