"""Voice activity detection on webrtcvad, sans-I/O: PCM in, speech started/stopped out.

Time is the position in the fed stream, so the detector behaves the same on live audio, on a
WAV file read as fast as possible, and in tests.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Literal, TypeAlias

import numpy as np
import webrtcvad

from voicegw.audio.format import BYTES_PER_SAMPLE, FRAME_MS
from voicegw.audio.resample import Resampler

FRAME_CHOICES_MS = (10, 20, 30)
VAD_RATES = (8000, 16000, 32000, 48000)
"""Rates webrtcvad accepts; any other rate (24 kHz) is resampled to `FALLBACK_RATE` for the
decision only: events, positions and the prefix stay at the input rate."""

FALLBACK_RATE = 8000
"""webrtcvad decides on 8 kHz audio whatever it is given (it halves 16 kHz itself), so 8 kHz loses
nothing, and 24 -> 8 kHz is the cheapest conversion (a plain decimation by 3)."""

ENERGY_FLOOR_RMS = 100
"""About -50 dBFS. webrtcvad keeps saying "speech" for ~80 ms after any burst (its hangover),
even over digital silence; a frame must also carry some energy to count, so a click stays a click."""

WHITENESS_SIGMAS = 4.0
"""webrtcvad calls steady hiss speech (always when loud, and for its first ~100 ms at any level,
before its noise model has adapted). In hiss neighbouring samples are uncorrelated: over n samples
the lag-1 autocorrelation is ~N(0, 1/n). Speech is strongly correlated, positively when voiced,
negatively in most fricatives. A frame within this many sigmas of zero is hiss-like (about 20 times
cheaper than a spectral-flatness test, and as good on hiss)."""

CONFIRM_FRAMES = 2
"""Correlated frames a run needs (within `MAX_UNVOICED_ONSET_MS`) to start speech: a single one
turns up by chance in loud hiss every few minutes, two within that window almost never."""

MAX_UNVOICED_ONSET_MS = 200
"""Speech may open with a hiss-like consonant (a plosive burst, an "s"): the onset is dated back
to the start of the run, but no further than this before its correlated frames."""


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """Speech began at `at_ms` (stream position of the first frame of the onset run)."""

    at_ms: int
    type: Literal["speech_started"] = "speech_started"


@dataclass(frozen=True, slots=True)
class SpeechStopped:
    """Speech ended at `at_ms` (stream position where the closing silence began)."""

    at_ms: int
    type: Literal["speech_stopped"] = "speech_stopped"


VadEvent: TypeAlias = SpeechStarted | SpeechStopped


def aggressiveness_for(threshold: float) -> int:
    """A speech threshold from 0 (most sensitive) to 1 as webrtcvad's aggressiveness 0..3.

    Four equal bands, so the default threshold of 0.5 is webrtcvad's mode 2.
    """
    return max(0, min(3, int(threshold * 4)))


class VoiceActivityDetector:
    """Turns a PCM stream into speech-started and speech-stopped events.

    A frame is speech-like when webrtcvad says so and it carries energy. Speech starts once a run
    of speech-like frames spans `min_speech_ms` (clicks and short echo stay below it) and holds
    frames that are not hiss-like, so steady noise does not start speech. It stops after
    `silence_ms` without a speech-like, correlated frame. Both events carry the stream position
    where the run that caused them began, exact to a frame however long confirmation took.
    """

    def __init__(
        self,
        sample_rate: int,
        *,
        aggressiveness: int = 2,
        min_speech_ms: int = 80,
        silence_ms: int = 500,
        prefix_padding_ms: int = 300,
        frame_ms: int = FRAME_MS,
    ) -> None:
        if not 0 <= aggressiveness <= 3:
            raise ValueError(f"aggressiveness must be 0..3, got {aggressiveness}")
        if sample_rate <= 0 or sample_rate % 1000:
            raise ValueError(f"sample rate must be a positive multiple of 1000 Hz, got {sample_rate}")
        if frame_ms not in FRAME_CHOICES_MS:
            raise ValueError(f"frame_ms must be 10, 20 or 30 (webrtcvad's frames), got {frame_ms}")
        # Durations shorter than a frame act as one frame: a state change needs one frame of evidence.
        durations = {
            "min_speech_ms": min_speech_ms,
            "silence_ms": silence_ms,
            "prefix_padding_ms": prefix_padding_ms,
        }
        for name, value in durations.items():
            if value < 0:
                raise ValueError(f"{name} must not be negative, got {value}")
        self.sample_rate = sample_rate
        self.frame_ms = frame_ms
        self.min_speech_ms = min_speech_ms
        self.silence_ms = silence_ms
        self.prefix_padding_ms = prefix_padding_ms
        self._vad = webrtcvad.Vad(aggressiveness)
        self._vad_rate = sample_rate if sample_rate in VAD_RATES else FALLBACK_RATE
        self._to_vad = Resampler(sample_rate, self._vad_rate) if sample_rate != self._vad_rate else None
        self._frame_bytes = sample_rate * frame_ms // 1000 * BYTES_PER_SAMPLE
        self._whiteness_limit = WHITENESS_SIGMAS / math.sqrt(sample_rate * frame_ms // 1000)
        self._pending = bytearray()
        self._position_ms = 0
        self._speaking = False
        self._run_start: int | None = None
        """Not speaking: where the current run of speech-like frames began."""
        self._correlated: deque[int] = deque()
        """Not speaking: positions of the run's recent frames that are not hiss-like."""
        self._silence_start: int | None = None
        """Speaking: where the current run of silence began."""
        self._onset = 0
        # (position, frame): the padding plus the longest possible onset run, trimmed on start.
        longest_ms = prefix_padding_ms + max(min_speech_ms, MAX_UNVOICED_ONSET_MS) + frame_ms
        self._prefix: deque[tuple[int, bytes]] = deque(maxlen=-(-longest_ms // frame_ms))

    @property
    def speaking(self) -> bool:
        return self._speaking

    @property
    def position_ms(self) -> int:
        """Milliseconds of audio fed so far (whole frames)."""
        return self._position_ms

    @property
    def silence_started_ms(self) -> int | None:
        """While speaking: where the current run of silence began (None while voiced)."""
        return self._silence_start if self._speaking else None

    def take_prefix(self) -> bytes:
        """The buffered audio, at the input rate, then cleared.

        Right after `SpeechStarted` that is `prefix_padding_ms` from before the onset plus the
        onset run up to the current position, so nothing of the turn is lost or doubled.
        """
        start = self._onset - self.prefix_padding_ms
        audio = b"".join(frame for position, frame in self._prefix if position >= start)
        self._prefix.clear()
        return audio

    def feed(self, pcm: bytes) -> list[VadEvent]:
        """Feed any amount of PCM; return the events it completes."""
        self._pending += pcm
        events: list[VadEvent] = []
        while len(self._pending) >= self._frame_bytes:
            frame = bytes(self._pending[: self._frame_bytes])
            del self._pending[: self._frame_bytes]
            event = self._frame(frame)
            if event is not None:
                events.append(event)
        return events

    def _classify(self, frame: bytes) -> tuple[bool, bool]:
        """(speech-like, correlated) for one frame."""
        # webrtcvad sees every frame, even ones the energy test rejects: its noise model adapts.
        if self._to_vad is None:
            said_speech = self._vad.is_speech(frame, self.sample_rate)
        else:
            # A whole frame at any rate that is a multiple of 1000 Hz resamples to a whole frame.
            said_speech = self._vad.is_speech(self._to_vad.process(frame), self._vad_rate)
        if not said_speech:
            return False, False
        samples = np.frombuffer(frame, dtype="<i2").astype(np.float32)
        energy = float(np.dot(samples, samples))
        if energy < ENERGY_FLOOR_RMS**2 * len(samples):
            return False, False
        lag1 = float(np.dot(samples[1:], samples[:-1])) / energy
        return True, abs(lag1) >= self._whiteness_limit

    def _frame(self, frame: bytes) -> VadEvent | None:
        position = self._position_ms
        self._position_ms += self.frame_ms
        speech_like, correlated = self._classify(frame)
        if self._speaking:
            return self._while_speaking(position, speech_like and correlated)
        self._prefix.append((position, frame))
        return self._while_quiet(position, speech_like, correlated)

    def _while_quiet(self, position: int, speech_like: bool, correlated: bool) -> SpeechStarted | None:
        if not speech_like:
            self._run_start = None
            self._correlated.clear()
            return None
        if self._run_start is None:
            self._run_start = position
        if correlated:
            self._correlated.append(position)
        while self._correlated and self._correlated[0] < position - MAX_UNVOICED_ONSET_MS:
            self._correlated.popleft()
        if len(self._correlated) < CONFIRM_FRAMES:
            return None
        onset = max(self._run_start, self._correlated[0] - MAX_UNVOICED_ONSET_MS)
        if self._position_ms - onset < self.min_speech_ms:
            return None
        self._speaking, self._onset = True, onset
        self._run_start = self._silence_start = None
        self._correlated.clear()
        return SpeechStarted(at_ms=onset)

    def _while_speaking(self, position: int, voiced: bool) -> SpeechStopped | None:
        if voiced:
            self._silence_start = None
            return None
        if self._silence_start is None:
            self._silence_start = position
        if self._position_ms - self._silence_start < self.silence_ms:
            return None
        at_ms, self._silence_start, self._speaking = self._silence_start, None, False
        return SpeechStopped(at_ms=at_ms)
