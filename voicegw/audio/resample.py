"""Streaming sample-rate conversion of mono s16le PCM (FFmpeg's swresample through PyAV)."""

from __future__ import annotations

import av
import numpy as np


class Resampler:
    """Converts a continuous stream from one rate to another, frame by frame, without clicks.

    The filter keeps state between calls, so a stream cut into 20 ms chunks converts to the same
    audio as the whole at once; output lags input by the filter's few-sample delay.
    """

    def __init__(self, from_rate: int, to_rate: int) -> None:
        if from_rate <= 0 or to_rate <= 0:
            raise ValueError(f"sample rates must be positive, got {from_rate} -> {to_rate}")
        self.from_rate = from_rate
        self.to_rate = to_rate
        self._resampler = (
            None if from_rate == to_rate else av.AudioResampler(format="s16", layout="mono", rate=to_rate)
        )
        self._pts = 0

    def process(self, pcm: bytes) -> bytes:
        """Convert the next chunk of the stream."""
        if self._resampler is None or not pcm:
            return pcm
        samples = np.frombuffer(pcm, dtype="<i2")
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = self.from_rate
        frame.pts = self._pts
        self._pts += len(samples)
        return b"".join(bytes(out.planes[0])[: out.samples * 2] for out in self._resampler.resample(frame))
