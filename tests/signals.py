"""Test audio shared by every test package: real speech from espeak-ng, tones, correlation."""

from __future__ import annotations

import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

from voicegw.testing import media


def require_tools(*tools: str) -> None:
    """Fail the test (never skip it) when a tool it needs is missing."""
    try:
        media.require_tools(*tools)
    except RuntimeError as exc:
        pytest.fail(f"test tools {exc}")


def speech(path: Path, rate: int, text: str = "Hello, this is the voice gateway.") -> bytes:
    """Speech synthesized by espeak-ng, converted by sox to mono s16le PCM at `rate`."""
    require_tools("espeak-ng", "sox")
    raw = path.with_suffix(".espeak.wav")
    out = path.with_suffix(f".{rate}.wav")
    subprocess.run(["espeak-ng", "-s", "150", "-w", str(raw), text], check=True, capture_output=True)
    subprocess.run(
        ["sox", str(raw), "-r", str(rate), "-c", "1", "-b", "16", "-e", "signed-integer", str(out)],
        check=True,
        capture_output=True,
    )
    with wave.open(str(out), "rb") as wav:
        return wav.readframes(wav.getnframes())


def sine(freq: float, seconds: float, rate: int, amplitude: float = 0.3) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    return (np.sin(2 * np.pi * freq * t) * amplitude * 32767).astype("<i2").tobytes()


def samples(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, dtype="<i2").astype(np.float64)


def best_correlation(sent: bytes, received: bytes, max_lag: int | None = None) -> tuple[float, int]:
    """Peak normalized cross-correlation of two signals and the lag (samples) where it is."""
    a, b = samples(sent), samples(received)
    n = min(len(a), len(b))
    if n == 0:
        return 0.0, 0
    max_lag = n // 2 if max_lag is None else max_lag
    size = 1 << int(np.ceil(np.log2(len(a) + len(b))))
    corr = np.fft.irfft(np.fft.rfft(b, size) * np.conj(np.fft.rfft(a, size)), size)
    lags = np.concatenate([np.arange(0, max_lag + 1), np.arange(-max_lag, 0)])
    values = corr[lags % size]
    best = int(np.argmax(values))
    lag = int(lags[best])
    x = a[max(0, -lag) :][: len(b) - max(0, lag)]
    y = b[max(0, lag) :][: len(x)]
    denom = float(np.sqrt(np.sum(x * x) * np.sum(y * y)))
    return (float(np.sum(x * y)) / denom if denom else 0.0), lag
