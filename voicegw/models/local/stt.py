"""Speech-to-text: faster-whisper (CTranslate2, int8 on CPU) with the packaged Whisper model.

A phone turn lasts a few seconds, but Whisper reads 30-second windows: faster-whisper pads every
utterance to 30 s and the encoder pays for all of it. CTranslate2's encoder takes a shorter
window, so an utterance is padded only to `MIN_WINDOW_FRAMES` (or its length plus
`TAIL_FRAMES` of silence, which keeps the decoder from looping on a window that ends in
speech). Measured on espeak questions through 8 kHz: 97 ms per question instead of 485 ms, the
same words.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from voicegw.audio.resample import Resampler
from voicegw.models.local.packaged import whisper_model_dir
from voicegw.models.local.workers import StepProgress, progressed, run_blocking, shared

STT_RATE = 16000
"""Whisper's input rate."""

CPU_THREADS = 2
MIN_AUDIO_MS = 200
"""Shorter buffers are not worth a decode (and Whisper invents words on them)."""

FULL_WINDOW_FRAMES = 3000
"""Whisper's own window: 30 s of 10 ms mel frames."""
MIN_WINDOW_FRAMES = 1000
TAIL_FRAMES = 800
TOKENS_PER_SECOND = 8
"""The most a speaker says (about 3 words a second), so a decoder that loops stops early."""
MAX_TOKENS = 224
REPETITION_PENALTY = 1.2
"""Tiny Whisper prompted with the agent's vocabulary tends to say the utterance twice; this
stops it. Measured on the 24 bench questions through 8 kHz: WER with a vocabulary 47 % -> 0.7 %
(Piper voice) and 68 % -> 39 % (espeak); without one, 4.5 % -> 1.5 % and 48 % -> 46 %. Only
in a short window: over a long utterance it suppresses what the caller really said again."""


def vocabulary_prompt(vocabulary: tuple[str, ...]) -> str | None:
    """The decoder prompt for `vocabulary`: a finished sentence, so Whisper starts a new one
    rather than continuing the list."""
    return f"Glossary: {', '.join(vocabulary)}." if vocabulary else None


@dataclass(frozen=True, slots=True)
class Transcription:
    text: str
    audio_ms: int
    elapsed_ms: float


def _load(model_dir: str) -> Any:
    # The model is a local directory: keep huggingface_hub from ever looking online.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from faster_whisper import WhisperModel

    return WhisperModel(model_dir, device="cpu", compute_type="int8", cpu_threads=CPU_THREADS, num_workers=2)


def window_frames(frames: int) -> int:
    """The encoder window for an utterance of `frames` mel frames: at least `MIN_WINDOW_FRAMES`,
    with `TAIL_FRAMES` of silence after the speech."""
    return min(FULL_WINDOW_FRAMES, max(MIN_WINDOW_FRAMES, frames + TAIL_FRAMES))


class SpeechToText:
    """Transcribes whole utterances; the model is loaded once per process and shared.

    `transcribe` is blocking (call it from a worker); `atranscribe` runs it in the pool, as a step
    of `progress` when given.
    """

    def __init__(self, model_dir: Path | None = None, *, progress: StepProgress | None = None) -> None:
        self.model_dir = str(model_dir or whisper_model_dir())
        self._model: Any = None
        self._progress = progress

    def load(self) -> None:
        """Load (or reuse) the shared model; blocking."""
        self._model = shared(("whisper", self.model_dir), lambda: _load(self.model_dir))

    def warm(self) -> None:
        """Transcribe a second of silence: CTranslate2's first run sets up what later runs reuse."""
        self.transcribe(bytes(2 * STT_RATE), STT_RATE)

    def transcribe(self, pcm: bytes, sample_rate: int, vocabulary: tuple[str, ...] = ()) -> Transcription:
        """Transcribe mono s16le `pcm` at `sample_rate`, biased towards `vocabulary`."""
        if self._model is None:
            self.load()
        started = time.perf_counter()
        audio16 = Resampler(sample_rate, STT_RATE).process(pcm)
        audio_ms = len(audio16) * 1000 // (2 * STT_RATE)
        if audio_ms < MIN_AUDIO_MS:
            return Transcription("", audio_ms, 0.0)
        samples = np.frombuffer(audio16, dtype="<i2").astype(np.float32) / 32768.0
        prompt = vocabulary_prompt(vocabulary)
        features = self._model.feature_extractor(samples)
        if features.shape[-1] + TAIL_FRAMES > FULL_WINDOW_FRAMES:
            text = self._transcribe_long(samples, prompt)
        else:
            text = self._transcribe_window(features, audio_ms, prompt)
        return Transcription(text, audio_ms, (time.perf_counter() - started) * 1000)

    def _transcribe_window(self, features: np.ndarray, audio_ms: int, prompt: str | None) -> str:
        """One utterance in one short window: encode and decode greedily, no timestamps."""
        import ctranslate2
        from faster_whisper.tokenizer import Tokenizer
        from faster_whisper.transcribe import get_suppressed_tokens

        model = self._model
        window = window_frames(features.shape[-1])
        padded = np.zeros((1, features.shape[0], window), dtype=np.float32)
        padded[0, :, : features.shape[-1]] = features
        tokenizer = Tokenizer(
            model.hf_tokenizer, model.model.is_multilingual, task="transcribe", language="en"
        )
        previous = tokenizer.encode(" " + prompt.strip()) if prompt else []
        tokens = model.get_prompt(tokenizer, previous, without_timestamps=True, hotwords=None)
        limit = min(MAX_TOKENS, len(tokens) + 4 + audio_ms * TOKENS_PER_SECOND // 1000)
        result = model.model.generate(
            ctranslate2.StorageView.from_array(padded),
            [tokens],
            beam_size=1,
            max_length=limit,
            repetition_penalty=REPETITION_PENALTY,
            suppress_blank=True,
            suppress_tokens=get_suppressed_tokens(tokenizer, (-1,)),
        )[0]
        ids = [token for token in result.sequences_ids[0] if token < tokenizer.eot]
        return str(tokenizer.decode(ids)).strip()

    def _transcribe_long(self, samples: np.ndarray, prompt: str | None) -> str:
        """An utterance longer than a window: faster-whisper's own segmenting transcription."""
        segments, _info = self._model.transcribe(
            samples,
            language="en",
            beam_size=1,
            without_timestamps=True,
            condition_on_previous_text=False,
            initial_prompt=prompt,
            vad_filter=False,  # our VAD already cut the utterance
        )
        texts = []
        for segment in segments:  # a window at a time: seconds on busy cores, each one progress
            progressed()
            texts.append(segment.text.strip())
        return " ".join(texts).strip()

    async def atranscribe(
        self, pcm: bytes, sample_rate: int, vocabulary: tuple[str, ...] = ()
    ) -> Transcription:
        if self._progress is not None:
            return await self._progress.run("stt", self.transcribe, pcm, sample_rate, vocabulary)
        return await run_blocking(self.transcribe, pcm, sample_rate, vocabulary)


class TranscriptionLane:
    """The transcriptions of one utterance: one at a time, and only the newest one waiting.

    Partials and the speculative transcript of a pause are asked for faster than Whisper answers
    on a small CPU; run them all and they slow each other down, the one the end of the turn
    waits for included. A request made while one runs replaces the waiting one, whose future
    then resolves to None (its audio is older: nobody needs it any more).
    """

    def __init__(
        self,
        stt: SpeechToText,
        sample_rate: int,
        vocabulary: tuple[str, ...],
        spawn: Callable[[Awaitable[None]], object],
        on_result: Callable[[Transcription], Awaitable[None]],
    ) -> None:
        """`spawn` starts the lane's task under its owner; `on_result` hears every transcript."""
        self._stt = stt
        self._sample_rate = sample_rate
        self._vocabulary = vocabulary
        self._spawn = spawn
        self._on_result = on_result
        self._waiting: tuple[bytes, asyncio.Future[Transcription | None]] | None = None
        self.busy = False

    def request(self, audio: bytes) -> asyncio.Future[Transcription | None]:
        """Transcribe `audio` once the running transcription is done; resolves to None if a
        newer request replaces this one before it starts."""
        future: asyncio.Future[Transcription | None] = asyncio.get_running_loop().create_future()
        if self._waiting is not None:
            self._waiting[1].set_result(None)
        self._waiting = (audio, future)
        if not self.busy:
            self.busy = True
            self._spawn(self._run())
        return future

    async def _run(self) -> None:
        try:
            while self._waiting is not None:
                (audio, future), self._waiting = self._waiting, None
                try:
                    result = await self._stt.atranscribe(audio, self._sample_rate, self._vocabulary)
                except Exception as exc:
                    future.set_exception(exc)
                    continue
                future.set_result(result)
                await self._on_result(result)
        finally:
            self.busy = False
