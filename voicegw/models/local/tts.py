"""Text-to-speech: Piper with the packaged voice, one clause at a time, at the session's rate."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from voicegw.audio.resample import Resampler
from voicegw.models.local.packaged import voice_model_file
from voicegw.models.local.workers import StepProgress, computing, run_blocking, shared

CHUNK_MS = 40
"""Size of the audio events: a cancel takes effect within one of them."""


@dataclass(frozen=True, slots=True)
class Speech:
    pcm: bytes
    """Mono s16le at the requested rate."""

    elapsed_ms: float
    voice_rate: int


def _load(model_path: str) -> Any:
    from piper import PiperVoice

    return PiperVoice.load(model_path, config_path=model_path + ".json")


class TextToSpeech:
    """Synthesizes text with one shared Piper voice; `synthesize` blocks, `asynthesize` doesn't
    (a step of `progress` when given)."""

    def __init__(self, model_path: Path | None = None, *, progress: StepProgress | None = None) -> None:
        self.model_path = str(model_path or voice_model_file())
        self._voice: Any = None
        self._progress = progress

    def load(self) -> None:
        self._voice = shared(("piper", self.model_path), lambda: _load(self.model_path))

    @property
    def voice_rate(self) -> int:
        if self._voice is None:
            self.load()
        return int(self._voice.config.sample_rate)

    def synthesize(self, text: str, sample_rate: int) -> Speech:
        """Speak `text`; return PCM resampled to `sample_rate`."""
        if self._voice is None:
            self.load()
        started = time.perf_counter()
        voice_rate = self.voice_rate
        computing()  # espeak-ng and onnxruntime work on the calling thread
        pcm = b"".join(chunk.audio_int16_bytes for chunk in self._voice.synthesize(text))
        pcm = Resampler(voice_rate, sample_rate).process(pcm)
        return Speech(pcm, (time.perf_counter() - started) * 1000, voice_rate)

    async def asynthesize(self, text: str, sample_rate: int) -> Speech:
        if self._progress is not None:
            return await self._progress.run("tts", self.synthesize, text, sample_rate)
        return await run_blocking(self.synthesize, text, sample_rate)


def chunks(pcm: bytes, sample_rate: int, chunk_ms: int = CHUNK_MS) -> Iterator[bytes]:
    """Cut PCM into `chunk_ms` pieces (the last may be shorter)."""
    size = sample_rate * chunk_ms // 1000 * 2
    for start in range(0, len(pcm), size):
        yield pcm[start : start + size]


SPEECH_FLOOR = 300
"""Sample level above which the voice is speaking (Piper's silences are digital zeros or near)."""


def speech_span(pcm: bytes, sample_rate: int) -> tuple[int, int]:
    """Where the speech in `pcm` starts and ends, in ms (0, 0 when there is none)."""
    samples = np.abs(np.frombuffer(pcm, dtype="<i2").astype(np.int32))
    loud = np.flatnonzero(samples > SPEECH_FLOOR)
    if not len(loud):
        return 0, 0
    return int(loud[0]) * 1000 // sample_rate, (int(loud[-1]) + 1) * 1000 // sample_rate
