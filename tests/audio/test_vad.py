from __future__ import annotations

import numpy as np
import pytest

from tests.signals import speech
from voicegw.audio.vad import SpeechStarted, SpeechStopped, VoiceActivityDetector


def silence(ms: int, rate: int) -> bytes:
    return bytes(rate * ms // 1000 * 2)


def voiced_span_ms(pcm: bytes, rate: int) -> tuple[int, int]:
    """Where the signal is above a clear level: onset and end as a human would mark them."""
    loud = np.nonzero(np.abs(np.frombuffer(pcm, "<i2")) > 1000)[0]
    return int(loud[0] * 1000 // rate), int(loud[-1] * 1000 // rate)


@pytest.mark.parametrize("rate", [8000, 16000, 24000])
def test_speech_is_detected_soon_after_onset_and_stops_after_silence(rate: int, tmp_path) -> None:
    talk = speech(tmp_path / "s", rate, "Can you tell me where my order is?")
    stream = silence(500, rate) + talk + silence(1000, rate)
    vad = VoiceActivityDetector(rate, min_speech_ms=60, silence_ms=500)
    events = []
    chunk = rate * 20 // 1000 * 2
    decided_at = {}
    for i in range(0, len(stream), chunk):
        for event in vad.feed(stream[i : i + chunk]):
            events.append(event)
            decided_at[event.type] = vad.position_ms
    assert isinstance(events[0], SpeechStarted) and isinstance(events[-1], SpeechStopped)
    onset, end = (500 + t for t in voiced_span_ms(talk, rate))
    assert decided_at["speech_started"] - onset <= 100  # fast enough for barge-in
    assert abs(events[0].at_ms - onset) <= 100
    assert end - 100 <= events[-1].at_ms <= end + 150
    assert not vad.speaking


def test_silence_and_a_click_give_nothing() -> None:
    vad = VoiceActivityDetector(8000, min_speech_ms=80)
    click = (np.random.default_rng(1).normal(0, 8000, 8000 * 40 // 1000)).astype("<i2").tobytes()
    assert vad.feed(silence(500, 8000) + click + silence(500, 8000)) == []


def test_prefix_holds_the_audio_before_the_onset(tmp_path) -> None:
    talk = speech(tmp_path / "s", 16000, "Hello there")
    vad = VoiceActivityDetector(16000, prefix_padding_ms=300, min_speech_ms=60)
    events = vad.feed(silence(1000, 16000) + talk[: 16000 * 2 // 2])
    assert any(isinstance(e, SpeechStarted) for e in events)
    prefix = vad.take_prefix()
    assert 300 <= len(prefix) * 1000 // (2 * 16000) <= 400
    assert vad.take_prefix() == b""


def test_bad_aggressiveness_is_our_misuse() -> None:
    with pytest.raises(ValueError, match=r"aggressiveness must be 0\.\.3"):
        VoiceActivityDetector(8000, aggressiveness=4)
