from __future__ import annotations

import numpy as np
import pytest

from tests.audio.conftest import SpeechFactory
from tests.signals import sine
from voicegw.audio.vad import (
    SpeechStarted,
    SpeechStopped,
    VadEvent,
    VoiceActivityDetector,
    aggressiveness_for,
)

SENTENCE = "Can you tell me where my order is?"


def silence(ms: int, rate: int) -> bytes:
    return bytes(rate * ms // 1000 * 2)


def noise(ms: int, rate: int, rms: float, seed: int = 1) -> bytes:
    values = np.random.default_rng(seed).normal(0, rms, rate * ms // 1000)
    return values.clip(-32768, 32767).astype("<i2").tobytes()


def voiced_span_ms(pcm: bytes, rate: int) -> tuple[int, int]:
    """Where the signal is above a clear level: onset and end as a human would mark them."""
    loud = np.nonzero(np.abs(np.frombuffer(pcm, "<i2")) > 1000)[0]
    return int(loud[0] * 1000 // rate), int(loud[-1] * 1000 // rate)


def feed_in_chunks(vad: VoiceActivityDetector, pcm: bytes, ms: int) -> list[tuple[int, VadEvent]]:
    """Events with the stream position at which each was decided."""
    chunk = vad.sample_rate * ms // 1000 * 2
    return [
        (vad.position_ms, event) for i in range(0, len(pcm), chunk) for event in vad.feed(pcm[i : i + chunk])
    ]


@pytest.mark.parametrize("rate", [8000, 16000, 24000])
@pytest.mark.parametrize("frame_ms", [10, 20, 30])
def test_speech_is_detected_soon_after_onset_and_stops_after_silence(
    rate: int, frame_ms: int, speech_pcm: SpeechFactory
) -> None:
    talk = speech_pcm(rate, SENTENCE)
    stream = silence(500, rate) + talk + silence(1000, rate)
    vad = VoiceActivityDetector(rate, frame_ms=frame_ms, min_speech_ms=60, silence_ms=500)
    decided = feed_in_chunks(vad, stream, 20)
    events = [event for _, event in decided]
    assert [type(e) for e in events] == [SpeechStarted, SpeechStopped]
    onset, end = (500 + t for t in voiced_span_ms(talk, rate))
    started_at, stopped_at = events[0].at_ms, events[1].at_ms
    assert abs(started_at - onset) <= 100
    assert decided[0][0] - onset <= 100 + frame_ms  # decided fast enough for barge-in
    assert end - 100 <= stopped_at <= end + 150
    # Stopped once silence_ms of silence were fed (to a frame, and to the 20 ms chunk fed).
    assert 500 <= decided[1][0] - stopped_at < 500 + frame_ms + 20
    assert not vad.speaking


def test_events_carry_the_onset_not_the_decision_time(speech_pcm: SpeechFactory) -> None:
    talk = speech_pcm(16000, SENTENCE)
    for min_speech_ms in (40, 200):
        vad = VoiceActivityDetector(16000, min_speech_ms=min_speech_ms)
        decided = feed_in_chunks(vad, silence(400, 16000) + talk, 20)
        decided_at, event = decided[0]
        assert isinstance(event, SpeechStarted)
        assert decided_at - event.at_ms >= min_speech_ms  # confirmed later, stamped at the onset
        assert abs(event.at_ms - (400 + voiced_span_ms(talk, 16000)[0])) <= 100


@pytest.mark.parametrize("rate", [8000, 16000, 24000])
@pytest.mark.parametrize("rms", [100, 1000, 4000])
def test_steady_noise_and_silence_give_nothing(rate: int, rms: float) -> None:
    vad = VoiceActivityDetector(rate)
    assert vad.feed(silence(500, rate) + noise(3000, rate, rms) + silence(500, rate)) == []
    assert not vad.speaking


def test_a_click_is_shorter_than_min_speech() -> None:
    vad = VoiceActivityDetector(8000, min_speech_ms=80)
    click = sine(300, 0.04, 8000, amplitude=0.5)
    assert vad.feed(silence(500, 8000) + click + silence(500, 8000)) == []


def test_speech_over_noise_is_still_detected(speech_pcm: SpeechFactory) -> None:
    talk = np.frombuffer(speech_pcm(8000, SENTENCE), "<i2").astype(np.int32)
    hiss = np.frombuffer(noise(len(talk) * 1000 // 8000 + 1000, 8000, 300), "<i2").astype(np.int32)
    mixed = hiss.copy()
    mixed[4000 : 4000 + len(talk)] += talk
    events = VoiceActivityDetector(8000).feed(mixed.clip(-32768, 32767).astype("<i2").tobytes())
    assert isinstance(events[0], SpeechStarted) and abs(events[0].at_ms - 500) <= 200


def test_prefix_holds_the_padding_before_the_onset_and_the_onset_itself(speech_pcm: SpeechFactory) -> None:
    talk = speech_pcm(16000, "Hello there")
    vad = VoiceActivityDetector(16000, prefix_padding_ms=300, min_speech_ms=60)
    fed = 0
    for i in range(0, len(talk) + 32000, 640):
        chunk = (silence(1000, 16000) + talk)[i : i + 640]
        fed += len(chunk)
        events = vad.feed(chunk)
        if events:
            break
    assert isinstance(events[0], SpeechStarted)
    prefix = vad.take_prefix()
    # Exactly the padding plus the onset run, ending with the frame just fed.
    onset_ms = events[0].at_ms
    assert len(prefix) == (fed * 1000 // 32000 - (onset_ms - 300)) * 32
    assert prefix.endswith(chunk)
    assert vad.take_prefix() == b""


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"aggressiveness": 4}, r"aggressiveness must be 0\.\.3, got 4"),
        ({"frame_ms": 25}, r"frame_ms must be 10, 20 or 30 \(webrtcvad's frames\), got 25"),
        ({"silence_ms": -1}, r"silence_ms must not be negative, got -1"),
    ],
)
def test_bad_settings_are_our_misuse(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        VoiceActivityDetector(8000, **kwargs)


def test_bad_rate_is_our_misuse() -> None:
    with pytest.raises(ValueError, match=r"sample rate must be a positive multiple of 1000 Hz, got 22050"):
        VoiceActivityDetector(22050)


def test_threshold_maps_onto_four_equal_aggressiveness_bands() -> None:
    assert [aggressiveness_for(t) for t in (0.0, 0.3, 0.5, 0.7, 1.0)] == [0, 1, 2, 2, 3]
