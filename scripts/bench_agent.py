"""The agent mode of scripts/bench_capacity.py: its caller's audio, its model server, its metrics.

The model is scripts/realtime_speaker.py, a local server of the OpenAI Realtime protocol, in a
process of its own; voicegw's figures come from its /metrics.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np

from voicegw.testing.harness import HOST, ROOT
from voicegw.testing.media import read_wav, synthesize
from voicegw.testing.rtp_tools import build_pcap

SPEAKER = ROOT / "scripts" / "realtime_speaker.py"
SPEAKER_API_KEY = "test"
BURST_S, QUIET_S = 1.5, 5.5
"""Agent mode's caller: this much speech, then this much silence, over and over."""
LATENCY_METRIC = "voicegw_gateway_latency_seconds"


def bursts_pcap(workdir: Path, seconds: float) -> Path:
    """A PCMU pcap of a caller who talks now and then: `BURST_S` of speech, `QUIET_S` of silence."""
    rate = 8000
    sentence = read_wav(synthesize(workdir / "bursts.wav", rate=rate))[0]
    burst = np.concatenate([sentence[: int(BURST_S * rate)], np.zeros(int(QUIET_S * rate), np.int16)])
    pcm = np.tile(burst, int(np.ceil(seconds / (BURST_S + QUIET_S))))[: int(seconds * rate)]
    path = workdir / "bursts"
    path.mkdir()
    return build_pcap(path / "audio.pcap", "PCMU", pcm).path


class Speaker:
    """scripts/realtime_speaker.py in its own process."""

    def __init__(self, workdir: Path) -> None:
        self.ready = workdir / "speaker-ready.json"
        self.stats_path = workdir / "speaker-stats.json"
        self.log = (workdir / "speaker.log").open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, str(SPEAKER), "--ready-file", str(self.ready), "--stats-file",
             str(self.stats_path)],
            cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while not self.ready.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"realtime_speaker did not start: see {workdir / 'speaker.log'}")
            time.sleep(0.05)
        time.sleep(0.05)  # the file is written whole, but give the writer its close
        self.port = int(json.loads(self.ready.read_text())["port"])

    @property
    def base_url(self) -> str:
        return f"ws://{HOST}:{self.port}/v1"

    def counters(self) -> dict[str, float]:
        """Its counters now (SIGUSR1 makes it write them)."""
        before = self.stats_path.stat().st_mtime_ns if self.stats_path.exists() else 0
        self.proc.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if self.stats_path.exists() and self.stats_path.stat().st_mtime_ns != before:
                return dict(json.loads(self.stats_path.read_text()))
            time.sleep(0.02)
        raise RuntimeError("realtime_speaker did not write its counters")

    def stop(self) -> None:
        """SIGTERM, and wait for it to exit."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def scrape(port: int) -> dict[str, float]:
    """voicegw's /metrics as {sample name with labels: value}."""
    with urllib.request.urlopen(f"http://{HOST}:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def histogram_quantile(start: dict[str, float], end: dict[str, float], labels: str, q: float) -> float:
    """Prometheus' histogram_quantile over the samples added between two scrapes, in ms."""
    pattern = re.compile(rf'^{LATENCY_METRIC}_bucket\{{{labels},le="([^"]+)"\}}$')
    buckets = sorted(
        (float(m.group(1)), end[name] - start.get(name, 0.0)) for name in end if (m := pattern.match(name))
    )
    if not buckets or buckets[-1][1] <= 0:
        return 0.0
    rank = q * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if bound == float("inf"):
                return round(lower_bound * 1000, 2)
            share = (rank - lower_count) / (count - lower_count) if count > lower_count else 1.0
            return round((lower_bound + (bound - lower_bound) * share) * 1000, 2)
        lower_bound, lower_count = bound, count
    return 0.0
