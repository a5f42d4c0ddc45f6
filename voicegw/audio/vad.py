"""Voice activity detection on webrtcvad, sans-I/O: PCM in, speech started/stopped out.

Time is the position in the fed stream, so the detector behaves the same on live audio, on a
WAV file read as fast as possible, and in tests.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Literal, TypeAlias

import numpy as np
import webrtcvad

from voicegw.audio.resample import Resampler

FRAME_MS = 20
BYTES_PER_SAMPLE = 2
VAD_RATES = (8000, 16000, 32000, 48000)
"""Rates webrtcvad accepts; others (24 kHz) are resampled to 16 kHz for the decision only."""

ENERGY_FLOOR_RMS = 100
"""About -50 dBFS. webrtcvad keeps saying "speech" for ~80 ms after any burst (its hangover),
even over digital silence; a frame must also carry some energy to count, so a click stays a click."""


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """Speech began at `at_ms` (stream position of the first voiced frame of the run)."""

    at_ms: int
    type: Literal["speech_started"] = "speech_started"


@dataclass(frozen=True, slots=True)
class SpeechStopped:
    """Speech ended at `at_ms` (stream position where the closing silence began)."""

    at_ms: int
    type: Literal["speech_stopped"] = "speech_stopped"


VadEvent: TypeAlias = SpeechStarted | SpeechStopped


class VoiceActivityDetector:
    """Turns a PCM stream into speech-started and speech-stopped events.

    Speech starts after `min_speech_ms` of consecutive voiced frames (clicks and short echo stay
    below it) and stops after `silence_ms` of consecutive unvoiced ones.
    """

    def __init__(
        self,
        sample_rate: int,
        *,
        aggressiveness: int = 2,
        min_speech_ms: int = 80,
        silence_ms: int = 500,
        prefix_padding_ms: int = 300,
    ) -> None:
        if not 0 <= aggressiveness <= 3:
            raise ValueError(f"aggressiveness must be 0..3, got {aggressiveness}")
        if sample_rate % 1000 or sample_rate <= 0:
            raise ValueError(f"unsupported sample rate {sample_rate}")
        self.sample_rate = sample_rate
        self.min_speech_ms = min_speech_ms
        self.silence_ms = silence_ms
        self._vad = webrtcvad.Vad(aggressiveness)
        self._vad_rate = sample_rate if sample_rate in VAD_RATES else 16000
        self._to_vad = Resampler(sample_rate, self._vad_rate) if sample_rate != self._vad_rate else None
        self._frame_bytes = sample_rate * FRAME_MS // 1000 * BYTES_PER_SAMPLE
        self._vad_frame_bytes = self._vad_rate * FRAME_MS // 1000 * BYTES_PER_SAMPLE
        self._pending = bytearray()
        self._vad_pending = bytearray()
        self._position_ms = 0
        self._speaking = False
        self._run_ms = 0
        """Length of the current run of frames that would change the state."""
        self._prefix: deque[bytes] = deque(maxlen=max(1, (prefix_padding_ms + min_speech_ms) // FRAME_MS))

    @property
    def speaking(self) -> bool:
        return self._speaking

    @property
    def position_ms(self) -> int:
        """Milliseconds of audio fed so far."""
        return self._position_ms

    def take_prefix(self) -> bytes:
        """The audio buffered from before (and through) the onset, at the input rate; then cleared."""
        audio = b"".join(self._prefix)
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

    def _is_speech(self, frame: bytes) -> bool:
        if self._to_vad is None:
            return self._vad.is_speech(frame, self.sample_rate)
        self._vad_pending += self._to_vad.process(frame)
        if len(self._vad_pending) < self._vad_frame_bytes:
            return self._speaking  # the resampler's start-up delay: keep the current state
        chunk = bytes(self._vad_pending[: self._vad_frame_bytes])
        del self._vad_pending[: self._vad_frame_bytes]
        return self._vad.is_speech(chunk, self._vad_rate)

    def _frame(self, frame: bytes) -> VadEvent | None:
        samples = np.frombuffer(frame, dtype="<i2").astype(np.float32)
        loud = float(np.sqrt(np.mean(samples * samples))) >= ENERGY_FLOOR_RMS
        voiced = self._is_speech(frame) and loud
        if not self._speaking:
            self._prefix.append(frame)
        self._position_ms += FRAME_MS
        # A frame agreeing with the current state breaks the run that would change it.
        if voiced == self._speaking:
            self._run_ms = 0
            return None
        self._run_ms += FRAME_MS
        if not self._speaking and self._run_ms >= self.min_speech_ms:
            self._speaking, self._run_ms = True, 0
            return SpeechStarted(at_ms=self._position_ms - self.min_speech_ms)
        if self._speaking and self._run_ms >= self.silence_ms:
            self._speaking, self._run_ms = False, 0
            return SpeechStopped(at_ms=self._position_ms - self.silence_ms)
        return None
