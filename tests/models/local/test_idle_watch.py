"""The stuck-step watch on real inference: a healthy llama.cpp step or Piper clause is never
taken for a blocked one (`StepProgress.idle_for`), and Whisper, which computes on CTranslate2's
own threads, is not judged by its calling thread."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from voicegw.models.local.llm import LlamaCppBackend, step_schema
from voicegw.models.local.stt import SpeechToText
from voicegw.models.local.tts import TextToSpeech
from voicegw.models.local.workers import StepProgress
from voicegw.server.model_watch import STEP_IDLE_S, STEP_POLL_S

PROMPT = [
    {"role": "system", "content": "You are a friendly phone assistant. " * 20},
    {"role": "user", "content": "Tell me a little about the weather in Paris in the spring, please."},
]


async def _most_idle(work: Callable[[], object]) -> float:
    """The largest `idle_for` seen while `work` runs as a step, looked at as the watch does."""
    progress = StepProgress()
    running = asyncio.ensure_future(progress.run(work))
    most = 0.0
    while not running.done():
        await asyncio.sleep(STEP_POLL_S / 2)
        most = max(most, progress.idle_for(time.monotonic()))
    await running
    return most


async def test_a_healthy_llm_step_is_never_idle() -> None:
    llm = LlamaCppBackend()
    llm.load()
    schema = step_schema(())
    assert await _most_idle(lambda: list(llm.stream(PROMPT, schema, max_tokens=48, temperature=0.0))) < (
        STEP_IDLE_S / 2
    )


async def test_a_healthy_piper_clause_is_never_idle() -> None:
    tts = TextToSpeech()
    text = "The weather in Paris in the spring is mild, with sunny spells and the odd shower of rain."
    assert await _most_idle(lambda: tts.synthesize(text, 8000)) < STEP_IDLE_S / 2


async def test_whisper_computing_on_its_own_threads_is_not_watched_by_its_thread() -> None:
    tts, stt = TextToSpeech(), SpeechToText()
    pcm = tts.synthesize("Where is my order number forty two, please?", 16000).pcm
    assert await _most_idle(lambda: stt.transcribe(pcm, 16000)) == 0.0
