"""A SIP call answered by a realtime agent: caller RTP -> voicegw -> model -> voicegw -> caller RTP.

The model is the OpenAI Realtime API, played by the local protocol server of tests/models (the one
fake allowed); everything else is real: the pjsua2 caller, SIP, RTP, codecs, the session loop.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.e2e.harness import ROOT, free_udp_port, options_ping, run_caller
from tests.e2e.media import read_wav, write_wav
from tests.models.fake_realtime import API_KEY, TONE_HZ, FakeRealtimeServer, dominant_hz

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]
RATE = 8000
ANSWER_MS = 800  # the conversation scenario's answer: four 200 ms chunks of a 440 Hz tone


def start_voicegw(base_url: str, log_path: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_udp_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "voicegw",
            "serve",
            "--agent",
            "tests.e2e.agents:assistant",
            "--listen",
            f"127.0.0.1:{port}",
        ],
        cwd=ROOT,
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
        env={**os.environ, "OPENAI_API_KEY": API_KEY, "OPENAI_BASE_URL": base_url},
    )
    deadline = time.monotonic() + 20
    while options_ping(port) != 200:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"voicegw did not start:\n{log_path.read_text()}")
    return proc, port


async def test_sip_call_is_answered_by_the_agent(tmp_path: Path) -> None:
    t = np.arange(RATE * 3) / RATE
    question = write_wav(tmp_path / "q.wav", (6000 * np.sin(2 * np.pi * 700 * t)).astype("<i2"), RATE)
    async with FakeRealtimeServer("conversation") as server:
        proc, port = await asyncio.to_thread(start_voicegw, server.base_url, tmp_path / "voicegw.log")
        try:
            report = await asyncio.to_thread(
                run_caller,
                f"sip:agent@127.0.0.1:{port}",
                "--codec",
                "PCMU",
                "--play",
                str(question),
                "--record",
                str(tmp_path / "a.wav"),
                "--end",
                "hangup",
            )
        finally:
            proc.terminate()
            await asyncio.to_thread(proc.wait, 15)
    log = (tmp_path / "voicegw.log").read_text()
    assert proc.returncode == 0, log
    assert server.violations == [], server.violations
    assert 200 in report["status_codes"], report
    # An 8 kHz call reaches the model as μ-law, untouched (no resampling on the way).
    session = server.connections[0].of_type("session.update")[0]["session"]
    assert session["audio"]["input"]["format"] == {"type": "audio/pcmu"}
    assert server.connections[0].input_ms() >= 1200  # the caller's audio reached the model
    pcm, rate = read_wav(tmp_path / "a.wav")
    samples = np.asarray(pcm, dtype=np.float64)
    loud = np.flatnonzero(np.abs(samples) > 1500)
    assert len(loud), "no answer audio reached the caller"
    heard_ms = (loud[-1] - loud[0] + 1) * 1000 / rate
    assert abs(heard_ms - ANSWER_MS) <= 80, heard_ms
    assert abs(dominant_hz(samples[loud[0] : loud[-1]], rate) - TONE_HZ) < 15
    assert '"end_reason": "caller_hung_up"' in log or "caller_hung_up" in log
