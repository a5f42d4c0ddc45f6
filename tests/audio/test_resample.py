from __future__ import annotations

import numpy as np
import pytest

from tests.signals import best_correlation, samples, sine
from voicegw.audio.resample import Resampler


def dominant_hz(pcm: bytes, rate: int) -> float:
    x = samples(pcm)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spectrum) * rate / len(x))


@pytest.mark.parametrize(
    ("src", "dst"), [(8000, 16000), (16000, 8000), (8000, 24000), (24000, 8000), (48000, 8000)]
)
def test_tone_keeps_frequency_and_level(src: int, dst: int) -> None:
    out = Resampler(src, dst).process(sine(440, 1.0, src))
    assert abs(len(out) // 2 - dst) < dst * 0.01
    assert abs(dominant_hz(out, dst) - 440) < 3
    peak = np.abs(samples(out)[len(out) // 4 :]).max()
    assert 0.28 * 32767 < peak < 0.32 * 32767


def test_streaming_in_20ms_chunks_equals_one_shot() -> None:
    tone = sine(300, 1.0, 8000)
    whole = Resampler(8000, 24000).process(tone)
    streaming = Resampler(8000, 24000)
    chunks = b"".join(streaming.process(tone[i : i + 320]) for i in range(0, len(tone), 320))
    n = min(len(whole), len(chunks))
    corr, lag = best_correlation(whole[:n], chunks[:n], max_lag=50)
    assert corr > 0.999 and lag == 0


def test_same_rate_is_identity() -> None:
    tone = sine(300, 0.1, 16000)
    assert Resampler(16000, 16000).process(tone) is tone


def test_bad_rate_is_our_misuse() -> None:
    with pytest.raises(ValueError, match="sample rates must be positive"):
        Resampler(0, 8000)
