"""A SIP call outliving its model session: the OpenAI model rolls over to a new server session
mid-call, between turns, and the caller hears every answer whole, with no gap inside one.

The model is the local OpenAI Realtime protocol server (the one fake allowed) playing
tests/models/data/rollover.json with a session limit of 2.8 s; everything else is real: the
pjsua2 caller, SIP, RTP, codecs, the session loop.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from voicegw.testing.fake_realtime import TONE_HZ, FakeRealtimeServer, dominant_hz
from voicegw.testing.harness import openai_agent_server, run_caller
from voicegw.testing.media import read_wav, write_wav

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]
RATE = 8000
PACKET = RATE * 20 // 1000
"""Samples in one 20 ms packet: no silence this long may fall inside an answer."""
ANSWERS_MS = (2000, 1000)  # rollover.json: the first session's answer, then the second's
LOUD = 1500


def answers(samples: np.ndarray) -> list[np.ndarray]:
    """The stretches of agent audio, split at silences longer than 100 ms."""
    loud = np.flatnonzero(np.abs(samples) > LOUD)
    if not len(loud):
        return []
    breaks = np.flatnonzero(np.diff(loud) > RATE // 10)
    starts = [loud[0], *loud[breaks + 1]]
    ends = [*loud[breaks], loud[-1]]
    return [loud[(loud >= start) & (loud <= end)] for start, end in zip(starts, ends, strict=True)]


async def test_a_call_rolls_over_to_a_new_model_session_without_a_gap(tmp_path: Path) -> None:
    t = np.arange(RATE * 7) / RATE
    question = write_wav(tmp_path / "q.wav", (6000 * np.sin(2 * np.pi * 700 * t)).astype("<i2"), RATE)
    async with FakeRealtimeServer("rollover") as model:
        config = "[model]\nname = 'openai'\nsession_limit = 2.8\n"
        server = openai_agent_server(
            tmp_path, "voicegw.testing.agents:assistant", model.base_url, config=config
        )
        try:
            await asyncio.to_thread(server.wait_ready)
            report = await asyncio.to_thread(
                run_caller, server.uri, "--codec", "PCMU", "--play", str(question),
                "--record", str(tmp_path / "heard.wav"), "--end", "hangup",
            )  # fmt: skip
        finally:
            stopped = await asyncio.to_thread(server.stop)
    assert stopped, server.output()
    assert model.violations == [], model.violations
    assert 200 in report["status_codes"], report
    first, second = model.connections
    assert [e["item"]["id"] for e in second.of_type("conversation.item.create")] == [
        "item_USER1",
        "item_ASSIST1",
    ]
    assert first.closed_by_client and not first.expired
    rolled = [e for e in server.log_events() if e.get("event") == "model_session_rolled_over"]
    assert len(rolled) == 1, server.output()
    pcm, rate = read_wav(tmp_path / "heard.wav")
    samples = np.asarray(pcm, dtype=np.float64)
    heard = answers(samples)
    assert len(heard) == 2, [len(a) for a in heard]
    for loud, expected_ms in zip(heard, ANSWERS_MS, strict=True):
        assert abs((loud[-1] - loud[0] + 1) * 1000 / rate - expected_ms) <= 80
        assert np.diff(loud).max() <= PACKET, "a gap inside an answer"
        assert abs(dominant_hz(samples[loud[0] : loud[-1]], rate) - TONE_HZ) < 15
    errors = [e for e in server.log_events() if e.get("level") == "error"]
    assert not errors, errors
