from __future__ import annotations

import av
import numpy as np
import pytest

from tests.audio.conftest import SpeechFactory
from tests.signals import best_correlation, samples, sine
from voicegw.audio.resample import Resampler

RATES = (8000, 16000, 24000, 48000)
PAIRS = [(a, b) for a in RATES for b in RATES if a != b]


def dominant_hz(pcm: bytes, rate: int) -> float:
    x = samples(pcm)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spectrum) * rate / len(x))


def in_chunks(resampler: Resampler, pcm: bytes, size: int) -> bytes:
    return b"".join(resampler.process(pcm[i : i + size]) for i in range(0, len(pcm), size))


@pytest.mark.parametrize(("src", "dst"), PAIRS)
def test_tone_keeps_frequency_and_level(src: int, dst: int) -> None:
    out = in_chunks(Resampler(src, dst), sine(440, 1.0, src), src // 50 * 2)
    assert len(out) // 2 == dst  # one second in, one second out, to the sample
    assert abs(dominant_hz(out, dst) - 440) < 2
    peak = np.abs(samples(out)[dst // 10 :]).max()
    assert 0.295 * 32767 < peak < 0.305 * 32767


@pytest.mark.parametrize(("src", "dst"), PAIRS)
def test_streaming_in_20ms_chunks_equals_one_shot_exactly(src: int, dst: int) -> None:
    tone = sine(300, 0.5, src)
    whole = Resampler(src, dst).process(tone)
    assert in_chunks(Resampler(src, dst), tone, src // 50 * 2) == whole
    assert in_chunks(Resampler(src, dst), tone, 2 * 37) == whole  # odd chunk sizes too


@pytest.mark.parametrize(("src", "dst"), PAIRS)
def test_every_20ms_chunk_gives_exactly_20ms_from_the_first(src: int, dst: int) -> None:
    resampler = Resampler(src, dst)
    tone = sine(300, 0.1, src)
    sizes = {len(resampler.process(tone[i : i + src // 50 * 2])) for i in range(0, len(tone), src // 50 * 2)}
    assert sizes == {dst // 50 * 2}


def test_no_click_at_frame_boundaries() -> None:
    # A click would be a jump far above the largest step of a clean 1 kHz tone.
    out = samples(in_chunks(Resampler(8000, 24000), sine(1000, 0.5, 8000), 320))[100:]
    clean_step = 0.3 * 32767 * 2 * np.pi * 1000 / 24000
    assert np.abs(np.diff(out)).max() < 1.05 * clean_step


def test_downsampling_rejects_what_the_lower_rate_cannot_carry() -> None:
    # 6 kHz is above 8 kHz's Nyquist: it must vanish, not fold back to 2 kHz.
    out = Resampler(48000, 8000).process(sine(6000, 0.5, 48000))
    assert np.abs(samples(out)[40:]).max() <= 2  # after the tone's abrupt start has passed


def test_agrees_with_ffmpeg_swresample(speech_pcm: SpeechFactory) -> None:
    pcm = speech_pcm(8000)
    ours = Resampler(8000, 24000).process(pcm)
    swr = av.AudioResampler(format="s16", layout="mono", rate=24000)
    frame = av.AudioFrame.from_ndarray(np.frombuffer(pcm, "<i2").reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = 8000
    theirs = b"".join(
        bytes(f.planes[0])[: f.samples * 2] for f in [*swr.resample(frame), *swr.resample(None)]
    )
    corr, lag = best_correlation(theirs, ours, max_lag=100)
    assert corr > 0.99 and abs(lag) < 48  # the same sound, within 2 ms of filter delay


def test_same_rate_is_identity() -> None:
    tone = sine(300, 0.1, 16000)
    assert Resampler(16000, 16000).process(tone) is tone


def test_empty_chunk_gives_nothing() -> None:
    assert Resampler(8000, 16000).process(b"") == b""


def test_bad_input_is_our_misuse() -> None:
    with pytest.raises(ValueError, match=r"sample rates must be positive, got 0 -> 8000"):
        Resampler(0, 8000)
    with pytest.raises(ValueError, match="PCM of 3 bytes is not whole 16-bit samples"):
        Resampler(8000, 16000).process(b"\x00\x01\x02")
