from __future__ import annotations

import numpy as np
import pytest

from tests.audio.conftest import SpeechFactory
from tests.signals import sine
from voicegw.audio.tone import ToneDetector, ToneEnded, ToneEvent, ToneSettings, ToneStarted

RATE = 8000


def silence(ms: int, rate: int = RATE) -> bytes:
    return bytes(rate * ms // 1000 * 2)


def feed(detector: ToneDetector, pcm: bytes, chunk_ms: int = 20) -> list[ToneEvent]:
    chunk = detector.sample_rate * chunk_ms // 1000 * 2
    return [event for i in range(0, len(pcm), chunk) for event in detector.feed(pcm[i : i + chunk])]


@pytest.mark.parametrize("hz", [400.0, 700.0, 1000.0, 1400.0, 1950.0])
def test_a_beep_is_found_with_its_frequency_start_and_end(hz: float) -> None:
    events = feed(ToneDetector(RATE), silence(500) + sine(hz, 0.3, RATE) + silence(500))
    assert [type(e) for e in events] == [ToneStarted, ToneEnded]
    started, ended = events
    assert isinstance(started, ToneStarted) and isinstance(ended, ToneEnded)
    assert started.at_ms == 500
    assert abs(ended.at_ms - 800) <= 4
    assert abs(ended.frequency_hz - hz) < 5
    assert ended.started_ms == 500 and abs(ended.duration_ms - 300) <= 4


@pytest.mark.parametrize("beep_ms", [301, 307, 313, 318])
def test_the_end_of_a_beep_that_stops_inside_a_frame_is_dated_inside_it(beep_ms: int) -> None:
    events = feed(ToneDetector(RATE), silence(500) + sine(1000, beep_ms / 1000, RATE) + silence(500))
    ended = events[-1]
    assert isinstance(ended, ToneEnded)
    assert abs(ended.at_ms - (500 + beep_ms)) <= 4, ended


def test_the_events_do_not_depend_on_how_the_audio_is_cut() -> None:
    pcm = silence(330) + sine(1000, 0.25, RATE) + silence(300)
    whole = ToneDetector(RATE).feed(pcm)
    assert whole == feed(ToneDetector(RATE), pcm, chunk_ms=7)
    assert len(whole) == 2


@pytest.mark.parametrize("hz", [250.0, 2600.0])
def test_tones_outside_the_band_are_not_beeps(hz: float) -> None:
    assert feed(ToneDetector(RATE), silence(200) + sine(hz, 0.4, RATE) + silence(200)) == []


def test_a_tone_shorter_than_the_minimum_is_not_a_beep() -> None:
    detector = ToneDetector(RATE, ToneSettings(min_ms=100))
    assert feed(detector, silence(200) + sine(1000, 0.06, RATE) + silence(200)) == []


def test_speech_and_noise_hold_no_beep(speech_pcm: SpeechFactory) -> None:
    pcm = speech_pcm(RATE, "Please leave your message after the tone. Thank you for calling.")
    noise = np.random.default_rng(3).normal(0, 2000, RATE * 2).astype("<i2").tobytes()
    assert feed(ToneDetector(RATE), pcm + noise) == []


def test_a_beep_over_line_noise_is_found() -> None:
    beep = np.frombuffer(silence(300) + sine(1000, 0.4, RATE) + silence(300), "<i2").astype(np.float64)
    noisy = beep + np.random.default_rng(5).normal(0, 300, len(beep))
    events = feed(ToneDetector(RATE), noisy.astype("<i2").tobytes())
    assert [type(e) for e in events] == [ToneStarted, ToneEnded]
    assert abs(events[1].at_ms - 700) <= 10


@pytest.mark.parametrize("rate", [16000, 24000, 48000])
def test_other_rates(rate: int) -> None:
    events = feed(ToneDetector(rate), silence(200, rate) + sine(1000, 0.2, rate) + silence(200, rate))
    assert [type(e) for e in events] == [ToneStarted, ToneEnded]
    assert abs(events[1].at_ms - 400) <= 4


def test_a_band_beyond_the_nyquist_frequency_is_refused() -> None:
    with pytest.raises(ValueError, match="does not fit below the Nyquist frequency of 8000 Hz"):
        ToneDetector(RATE, ToneSettings(high_hz=4500))
