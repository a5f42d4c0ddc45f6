"""A SIP call answered by a realtime agent: caller RTP -> voicegw -> model -> voicegw -> caller RTP.

The model is the OpenAI Realtime API, played by the local protocol server of tests/models (the one
fake allowed); everything else is real: the pjsua2 caller, SIP, RTP, codecs, the session loop.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from voicegw.testing.fake_realtime import API_KEY, TONE_HZ, FakeRealtimeServer, dominant_hz
from voicegw.testing.harness import EchoServer, run_caller
from voicegw.testing.media import read_wav, write_wav

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]
RATE = 8000
ANSWER_MS = 800  # the conversation scenario's answer: four 200 ms chunks of a 440 Hz tone


async def test_sip_call_is_answered_by_the_agent(tmp_path: Path) -> None:
    t = np.arange(RATE * 3) / RATE
    question = write_wav(tmp_path / "q.wav", (6000 * np.sin(2 * np.pi * 700 * t)).astype("<i2"), RATE)
    async with FakeRealtimeServer("conversation") as server:
        voicegw = EchoServer(
            "voicegw",
            tmp_path,
            agent="voicegw.testing.agents:assistant",
            config="[model]\nvocabulary = ['Riverside', 'Kamailio']\n",
            env={"OPENAI_API_KEY": API_KEY, "OPENAI_BASE_URL": server.base_url},
        )
        try:
            await asyncio.to_thread(voicegw.wait_ready)
            report = await asyncio.to_thread(
                run_caller,
                voicegw.uri,
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
            stopped = await asyncio.to_thread(voicegw.stop)
    assert stopped, voicegw.output()
    assert server.violations == [], server.violations
    assert 200 in report["status_codes"], report
    # An 8 kHz call reaches the model as μ-law, untouched (no resampling on the way).
    session = server.connections[0].of_type("session.update")[0]["session"]
    assert session["audio"]["input"]["format"] == {"type": "audio/pcmu"}
    # [model] vocabulary reaches the model as its transcription prompt.
    assert "Riverside, Kamailio" in session["audio"]["input"]["transcription"]["prompt"], session
    assert server.connections[0].input_ms() >= 1200  # the caller's audio reached the model
    pcm, rate = read_wav(tmp_path / "a.wav")
    samples = np.asarray(pcm, dtype=np.float64)
    loud = np.flatnonzero(np.abs(samples) > 1500)
    assert len(loud), "no answer audio reached the caller"
    heard_ms = (loud[-1] - loud[0] + 1) * 1000 / rate
    assert abs(heard_ms - ANSWER_MS) <= 80, heard_ms
    assert abs(dominant_hz(samples[loud[0] : loud[-1]], rate) - TONE_HZ) < 15
    ended = [e["end_reason"] for e in voicegw.log_events() if e.get("event") == "session_ended"]
    assert ended == ["caller_hung_up"], voicegw.output()
