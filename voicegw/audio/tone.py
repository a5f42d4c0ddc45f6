"""Single-tone detection (an answering machine's beep), sans-I/O: PCM in, tone events out.

Each 20 ms frame is windowed and transformed; a frame is *tonal* when one narrow peak between
`low_hz` and `high_hz` holds nearly all its energy (speech spreads its energy over harmonics and
formants; a beep does not). A tone is a run of tonal frames at one frequency lasting at least
`min_ms`. Its end is dated inside the last frame from the signal's envelope, so the end time is
finer than a frame. Time is the position in the fed stream, as in `voicegw.audio.vad`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeAlias

import numpy as np
import numpy.typing as npt

from voicegw.audio.format import BYTES_PER_SAMPLE, FRAME_MS

FFT_SIZE_AT_8K = 512
"""Zero-padded transform length at 8 kHz (scaled with the rate): ~16 Hz bins, enough to tell a
tone's frequency from its neighbour's, while the 20 ms window sets what counts as one peak."""

PEAK_HALF_WIDTH_HZ = 100.0
"""A Hann-windowed 20 ms tone spreads over about ±100 Hz: the peak's energy is summed over this."""

MIN_TONE_RMS = 300.0
"""About -40 dBFS: quieter peaks are line noise, not a beep meant to be heard."""

ENVELOPE_STEP_MS = 2
"""Resolution of the end time inside the last tonal frame."""


@dataclass(frozen=True, slots=True)
class ToneSettings:
    """What counts as a beep."""

    low_hz: float = 400.0
    high_hz: float = 2000.0
    min_ms: int = 100
    """Shortest tone reported (a beep lasts 100 ms to 1 s; a vowel holds one pitch for less)."""

    purity: float = 0.8
    """Share of a frame's energy that must sit in the peak for the frame to be tonal."""

    max_drift_hz: float = 40.0
    """How far the frequency may wander between frames of one tone."""


@dataclass(frozen=True, slots=True)
class ToneStarted:
    """A tone has lasted `settings.min_ms`; it began at `at_ms`."""

    at_ms: int
    frequency_hz: float
    type: Literal["tone_started"] = "tone_started"


@dataclass(frozen=True, slots=True)
class ToneEnded:
    """The tone that began at `started_ms` stopped at `at_ms` (to `ENVELOPE_STEP_MS`)."""

    started_ms: int
    at_ms: int
    frequency_hz: float
    type: Literal["tone_ended"] = "tone_ended"

    @property
    def duration_ms(self) -> int:
        return self.at_ms - self.started_ms


ToneEvent: TypeAlias = ToneStarted | ToneEnded


class ToneDetector:
    """Finds sustained single tones in a PCM stream: `feed(pcm)` returns the events it completes."""

    def __init__(self, sample_rate: int, settings: ToneSettings | None = None) -> None:
        if sample_rate <= 0 or sample_rate % 1000:
            raise ValueError(f"sample rate must be a positive multiple of 1000 Hz, got {sample_rate}")
        self.settings = settings or ToneSettings()
        if not 0 < self.settings.low_hz < self.settings.high_hz < sample_rate / 2:
            raise ValueError(
                f"tone band {self.settings.low_hz:g}-{self.settings.high_hz:g} Hz does not fit "
                f"below the Nyquist frequency of {sample_rate} Hz"
            )
        self.sample_rate = sample_rate
        self._samples = sample_rate * FRAME_MS // 1000
        self._frame_bytes = self._samples * BYTES_PER_SAMPLE
        self._fft_size = FFT_SIZE_AT_8K * sample_rate // 8000
        self._window = np.hanning(self._samples)
        self._hz_per_bin = sample_rate / self._fft_size
        self._half_width = max(1, round(PEAK_HALF_WIDTH_HZ / self._hz_per_bin))
        self._band = (
            int(np.ceil(self.settings.low_hz / self._hz_per_bin)),
            int(self.settings.high_hz / self._hz_per_bin) + 1,
        )
        self._pending = bytearray()
        self._position_ms = 0
        self._run_start: int | None = None
        self._run_hz: list[float] = []
        self._run_level = 0.0
        self._last_tonal: npt.NDArray[np.float64] = np.zeros(self._samples)
        self._reported = False

    @property
    def position_ms(self) -> int:
        return self._position_ms

    @property
    def in_tone(self) -> bool:
        """A tone long enough to report is sounding now."""
        return self._reported

    def feed(self, pcm: bytes) -> list[ToneEvent]:
        """Feed any amount of PCM; return the events it completes."""
        self._pending += pcm
        events: list[ToneEvent] = []
        while len(self._pending) >= self._frame_bytes:
            frame = np.frombuffer(bytes(self._pending[: self._frame_bytes]), dtype="<i2").astype(np.float64)
            del self._pending[: self._frame_bytes]
            events.extend(self._frame(frame))
        return events

    def tone_of(self, frame: npt.NDArray[np.float64]) -> float | None:
        """The frequency of the single tone filling `frame`, or None if it is not tonal."""
        energy = float(np.dot(frame, frame))
        if energy < MIN_TONE_RMS**2 * len(frame):
            return None
        power = np.abs(np.fft.rfft(frame * self._window, self._fft_size)) ** 2
        low, high = self._band
        peak = low + int(np.argmax(power[low:high]))
        around = power[max(0, peak - self._half_width) : peak + self._half_width + 1]
        if float(around.sum()) < self.settings.purity * float(power.sum()):
            return None
        return self._interpolate(power, peak) * self._hz_per_bin

    @staticmethod
    def _interpolate(power: npt.NDArray[np.float64], peak: int) -> float:
        """The peak's position between bins (a parabola through the log power of three bins)."""
        if not 0 < peak < len(power) - 1:
            return float(peak)
        left, centre, right = np.log(power[peak - 1 : peak + 2] + 1e-12)
        curvature = left - 2 * centre + right
        return peak + (0.5 * (left - right) / curvature if curvature else 0.0)

    def _frame(self, frame: npt.NDArray[np.float64]) -> list[ToneEvent]:
        position = self._position_ms
        self._position_ms += FRAME_MS
        hz = self.tone_of(frame)
        same_tone = (
            hz is not None
            and self._run_start is not None
            and abs(hz - self._run_hz[-1]) <= self.settings.max_drift_hz
        )
        if same_tone:
            assert hz is not None
            self._run_hz.append(hz)
            self._run_level = max(self._run_level, float(np.sqrt(np.mean(frame * frame))))
            self._last_tonal = frame
            return self._maybe_started()
        events: list[ToneEvent] = []
        if self._run_start is not None and self._reported:
            events.append(self._ended(frame, position))
        self._run_start, self._run_hz, self._reported = None, [], False
        if hz is not None:
            self._run_start, self._run_hz = position, [hz]
            self._run_level = float(np.sqrt(np.mean(frame * frame)))
            self._last_tonal = frame
            events.extend(self._maybe_started())
        return events

    def _maybe_started(self) -> list[ToneEvent]:
        assert self._run_start is not None
        if self._reported or len(self._run_hz) * FRAME_MS < self.settings.min_ms:
            return []
        self._reported = True
        return [ToneStarted(self._run_start, self._frequency())]

    def _frequency(self) -> float:
        return float(np.median(self._run_hz))

    def _ended(self, frame: npt.NDArray[np.float64], position: int) -> ToneEnded:
        """The tone stopped in `frame` (the first one not tonal) or in the last tonal frame before
        it (whose silent tail left it tonal): where its envelope last stood above half its level."""
        assert self._run_start is not None
        loud_next = self._loud_blocks(frame)
        # Only a tail contiguous with the tone counts: loud blocks after a gap are what follows it.
        tail = 0
        while tail < len(loud_next) and loud_next[tail]:
            tail += 1
        if tail:
            at_ms = position + tail * ENVELOPE_STEP_MS
        else:
            loud_last = np.flatnonzero(self._loud_blocks(self._last_tonal))
            last_end = (int(loud_last[-1]) + 1) * ENVELOPE_STEP_MS if len(loud_last) else FRAME_MS
            at_ms = position - FRAME_MS + last_end
        return ToneEnded(self._run_start, at_ms, self._frequency())

    def _loud_blocks(self, frame: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
        step = self.sample_rate * ENVELOPE_STEP_MS // 1000
        blocks = frame[: len(frame) // step * step].reshape(-1, step)
        return np.sqrt(np.mean(blocks * blocks, axis=1)) >= self._run_level / 2
