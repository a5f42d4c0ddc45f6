"""Streaming sample-rate conversion of mono s16le PCM: a numpy polyphase FIR filter.

Chosen over PyAV's `av.AudioResampler` (FFmpeg swresample) because it is cheaper per 20 ms frame
(no frame objects to build, see scripts/bench_codecs.py) and deterministic: the filter state is
just the last input samples, so a stream cut into chunks converts to exactly the same samples as
the whole at once.
"""

from __future__ import annotations

from functools import cache
from math import gcd

import numpy as np

from voicegw.audio.format import BYTES_PER_SAMPLE

ZERO_CROSSINGS = 12
"""Sinc lobes on each side of the filter's centre, in units of the slower rate: sharpness vs cost."""

CUTOFF = 0.9
"""Pass band edge as a fraction of the lower Nyquist frequency (3.6 kHz for 8 kHz telephony)."""

KAISER_BETA = 8.0
"""Window shape: about 80 dB of stop-band rejection, no audible aliasing."""


@cache
def _filter_bank(up: int, down: int) -> np.ndarray:
    """The low-pass filter split into `up` phases, each reversed to dot with an input window.

    Row `p` holds the taps that produce an output falling `p` upsampled positions after an
    input sample; each row sums to 1 so a constant passes unchanged at every phase.
    """
    factor = max(up, down)
    taps = -(-(2 * ZERO_CROSSINGS * factor + 1) // up)
    length = taps * up
    centre = (length - 1) / 2
    width = CUTOFF / factor
    m = np.arange(length) - centre
    h = width * np.sinc(width * m) * np.kaiser(length, KAISER_BETA)
    bank = h.reshape(taps, up).T  # bank[p, k] = h[p + k * up]
    bank = bank / bank.sum(axis=1, keepdims=True)
    return np.ascontiguousarray(bank[:, ::-1], dtype=np.float32)


class Resampler:
    """Converts a continuous stream from one rate to another, chunk by chunk, without clicks.

    Output follows input by the filter's group delay (about 1.5 ms at telephony rates). Chunks
    of any length work; the number of samples out tracks `to_rate / from_rate` over the stream.
    """

    def __init__(self, from_rate: int, to_rate: int) -> None:
        if from_rate <= 0 or to_rate <= 0:
            raise ValueError(f"sample rates must be positive, got {from_rate} -> {to_rate}")
        self.from_rate = from_rate
        self.to_rate = to_rate
        common = gcd(from_rate, to_rate)
        self._up = to_rate // common
        self._down = from_rate // common
        self._bank = _filter_bank(self._up, self._down) if from_rate != to_rate else None
        taps = 0 if self._bank is None else self._bank.shape[1]
        self._history = np.zeros(max(taps - 1, 0), dtype=np.float32)
        self._next = 0
        """Upsampled position of the next output, relative to the first sample of the next chunk."""

    def process(self, pcm: bytes) -> bytes:
        """Convert the next chunk of the stream (mono s16le at `from_rate`)."""
        if len(pcm) % BYTES_PER_SAMPLE:
            raise ValueError(f"PCM of {len(pcm)} bytes is not whole 16-bit samples")
        if self._bank is None or not pcm:
            return pcm
        up, down = self._up, self._down
        chunk = np.frombuffer(pcm, dtype="<i2")
        signal = np.concatenate((self._history, chunk.astype(np.float32)))
        end = len(chunk) * up
        count = -(-(end - self._next) // down) if end > self._next else 0
        if up == 1:
            # Pure decimation: only the windows of the outputs, `down` samples apart.
            out = np.dot(self._windows(signal, self._next, count, down), self._bank[0])
        else:
            # Every phase at every input sample in one product, then the outputs we want:
            # column p of row i is the output `p` upsampled positions after chunk[i].
            every = np.dot(self._windows(signal, 0, len(chunk), 1), self._bank.T)
            out = every.ravel()[self._next :: down][:count]
        self._next += count * down - end
        self._history = signal[len(signal) - len(self._history) :]
        np.rint(out, out=out)
        np.clip(out, -32768, 32767, out=out)
        return out.astype("<i2").tobytes()

    def _windows(self, signal: np.ndarray, start: int, rows: int, step: int) -> np.ndarray:
        """Row j: the filter-length window of `signal` ending at chunk[start + j * step] (a view)."""
        assert self._bank is not None
        item = signal.itemsize
        taps = self._bank.shape[1]
        return np.ndarray((rows, taps), signal.dtype, signal, start * item, (step * item, item))
