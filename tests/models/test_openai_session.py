"""The OpenAI model under a real `RealtimeSession`, a WAV caller paced in real time: barge-in."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tests.models.conftest import openai_model, tone
from voicegw.realtime import RealtimeAgent, RealtimeAudioInterrupted, RealtimeRunner, RealtimeSession
from voicegw.testing.fake_realtime import FakeRealtimeServer
from voicegw.transports.wav_files import WavFilesTransport, read_wav, write_wav

FRAME_MS = 20


@pytest.mark.timeout(30)
@pytest.mark.parametrize("rate", [8000, 24000])
async def test_speech_over_the_greeting_cancels_and_truncates_at_what_was_heard(
    fake_server: Callable[..., FakeRealtimeServer], tmp_path: Path, rate: int
) -> None:
    write_wav(tmp_path / "q.wav", tone(700, 1500, rate), rate)
    transport = WavFilesTransport(
        tmp_path / "q.wav", tmp_path / "a.wav", trailing_silence_ms=0, answer_idle_ms=200
    )
    agent = RealtimeAgent(name="Greeter", instructions="Greet the caller.", greeting="Hello!")
    async with fake_server("barge_in") as server:
        session = RealtimeSession(transport, model=openai_model(server))
        events = []

        async def consume() -> None:
            async for event in session:
                events.append(event)

        consumer = asyncio.create_task(consume())
        result = await RealtimeRunner.run(agent, session=session)
        await consumer

    conn = server.connections[0]
    truncate = conn.of_type("conversation.item.truncate")
    assert len(truncate) == 1 and truncate[0]["item_id"] == "item_GREET"
    cut_ms = truncate[0]["audio_end_ms"]
    # The server started speech detection after 700 ms of caller audio: the greeting (3 s sent at
    # once) had played for about that long when the caller's speech cut it off.
    assert 200 <= cut_ms <= 1000
    interrupted = [e for e in events if isinstance(e, RealtimeAudioInterrupted)]
    assert [e.played_ms for e in interrupted] == [cut_ms]
    # The recording holds exactly what was played: the truncation point, within a frame.
    pcm, _ = read_wav(tmp_path / "a.wav")
    loud = np.flatnonzero(np.abs(np.frombuffer(pcm, "<i2")) > 1000)
    heard_ms = (loud[-1] + 1) * 1000 / rate
    assert abs(heard_ms - cut_ms) <= FRAME_MS
    # The cancel raced the server's own cancellation (interrupt_response) and got the documented
    # error, which is not reported as an error of the session.
    assert len(conn.of_type("response.cancel")) == conn.late_cancels == 1
    assert result.error is None and result.end_reason == "caller_hung_up"
    assert [e for e in events if e.type == "error"] == []
    assert conn.of_type("response.create")[0]["response"]["instructions"].endswith("Hello!")
