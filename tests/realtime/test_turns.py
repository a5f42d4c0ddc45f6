"""Server-side turn detection (webrtcvad) on real speech, for models without their own VAD."""

from __future__ import annotations

import numpy as np
import pytest

from tests.realtime.helpers import RATE, start
from voicegw.contracts.model import CommitAudio, CreateResponse, SendAudio, TruncateItem
from voicegw.models.testing import ScriptStep, speech
from voicegw.realtime import (
    AssistantMessageItem,
    RealtimeAgent,
    RealtimeAudioInterrupted,
    RealtimeRunConfig,
    RealtimeTurnDetectionConfig,
)

FRAME = RATE * 20 // 1000 * 2
TURN: RealtimeTurnDetectionConfig = {
    "min_speech_ms": 120,
    "silence_duration_ms": 400,
    "prefix_padding_ms": 200,
}


CONFIG: RealtimeRunConfig = {"turn_detection": TURN}


def loudest(pcm: bytes, ms: int) -> bytes:
    """The `ms` of `pcm` with the most energy: the middle of a vowel."""
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    width = RATE * ms // 1000
    energy = np.convolve(samples**2, np.ones(width), mode="valid")
    start = int(energy.argmax())
    return pcm[start * 2 : (start + width) * 2]


def click(ms: int = 40) -> bytes:
    """A click on the line: a sharp, fast-decaying burst (webrtcvad flags ~80 ms of it with its hangover)."""
    n = RATE * ms // 1000
    burst = np.random.default_rng(1).standard_normal(n) * np.exp(-np.arange(n) / 80) * 20000
    return burst.astype("<i2").tobytes()


def silence(ms: int) -> bytes:
    return bytes(RATE * ms // 1000 * 2)


@pytest.mark.timeout(30)
async def test_server_vad_commits_a_turn_of_real_speech(spoken_16k: bytes) -> None:
    reply = speech("It is sunny", sample_rate=RATE, duration_ms=200)
    run = await start(RealtimeAgent("A"), [ScriptStep(CommitAudio, reply)], config=CONFIG)
    run.transport.push_audio(silence(1000) + spoken_16k + silence(1000))
    total_ms = run.transport.pending_inbound_ms
    await run.transport.advance(total_ms)

    kinds = [c.type for c in run.model.commands]
    assert kinds.count("commit_audio") == 1
    assert kinds.index("commit_audio") + 1 == kinds.index("create_response")
    assert run.model.sent(CreateResponse) == [CreateResponse()]
    forwarded = b"".join(c.pcm for c in run.model.sent(SendAudio))
    speech_ms = len(spoken_16k) * 1000 // (2 * RATE)
    forwarded_ms = len(forwarded) * 1000 // (2 * RATE)
    # The speech, a little prefix padding and the trailing silence went; the leading second did not.
    assert speech_ms - 200 <= forwarded_ms <= speech_ms + 200 + 400 + 300
    assert forwarded_ms < total_ms - 1000
    assert np.abs(np.frombuffer(forwarded, dtype="<i2")).max() > 1000
    run.model.assert_complete()
    await run.close()


@pytest.mark.timeout(30)
async def test_click_does_not_barge_in_but_speech_does(spoken_16k: bytes) -> None:
    long_answer = speech(
        " ".join(f"word{i}" for i in range(30)),
        sample_rate=RATE,
        duration_ms=3000,
        item_id="a1",
        response_id="r1",
    )
    agent = RealtimeAgent("Talker", greeting="Let me tell you a long story.")
    run = await start(agent, [ScriptStep(CreateResponse, long_answer)], config=CONFIG)

    run.transport.push_audio(silence(200) + click() + silence(400))
    await run.transport.advance(640)
    assert run.model.sent(TruncateItem) == []
    assert run.transport.flushes == []
    assert run.transport.played_ms("a1") == 640

    run.transport.push_audio(loudest(spoken_16k, 200) + silence(600))
    await run.transport.advance(800)
    [truncate] = run.model.sent(TruncateItem)
    [flushed] = run.transport.flushes
    played = run.transport.played_ms("a1")
    assert truncate.item_id == "a1"
    assert abs(truncate.audio_end_ms - played) <= 20  # the cut is what the caller heard, to the frame
    assert truncate.audio_end_ms == flushed
    assert 640 + 120 <= played <= 640 + 200 + 60  # after the minimum speech, not after the click
    [event] = run.of(RealtimeAudioInterrupted)
    assert event.played_ms == truncate.audio_end_ms
    item = run.session.result.history[0]
    assert isinstance(item, AssistantMessageItem)
    heard_words = len(item.text.split())
    assert abs(heard_words - 30 * played / 3000) <= 1
    await run.close()
