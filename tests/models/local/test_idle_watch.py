"""The stuck-step watch on real inference: a healthy llama.cpp step or Piper clause never looks
blocked (`StepGap.idle_s`), and Whisper, which computes on CTranslate2's own threads, is not
judged by its calling thread."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from voicegw.models.local.llm import LlamaCppBackend, step_schema
from voicegw.models.local.stt import SpeechToText
from voicegw.models.local.tts import TextToSpeech
from voicegw.models.local.workers import STEP_IDLE_S, Stage, StepProgress
from voicegw.server.model_watch import STEP_POLL_S

PROMPT = [
    {"role": "system", "content": "You are a friendly phone assistant. " * 20},
    {"role": "user", "content": "Tell me a little about the weather in Paris in the spring, please."},
]


async def _most_idle(stage: Stage, work: Callable[[], object]) -> float | None:
    """The largest blocked-looking gap seen while `work` runs as a step, looked at as the watch
    does; None when the step was never watched by its thread."""
    progress = StepProgress()
    running = asyncio.ensure_future(progress.run(stage, work))
    most: float | None = None
    while not running.done():
        await asyncio.sleep(STEP_POLL_S / 2)
        for gap in progress.gaps(time.monotonic()):
            if gap.idle_s is not None:
                most = max(most or 0.0, gap.idle_s)
    await running
    return most


async def test_a_healthy_llm_step_never_looks_blocked() -> None:
    llm = LlamaCppBackend()
    llm.load()
    schema = step_schema(())
    most = await _most_idle("llm", lambda: list(llm.stream(PROMPT, schema, max_tokens=48, temperature=0.0)))
    assert most is not None and most < STEP_IDLE_S / 2


async def test_a_healthy_piper_clause_never_looks_blocked() -> None:
    tts = TextToSpeech()
    text = "The weather in Paris in the spring is mild, with sunny spells and the odd shower of rain."
    most = await _most_idle("tts", lambda: tts.synthesize(text, 8000))
    assert most is not None and most < STEP_IDLE_S / 2


async def test_whisper_computing_on_its_own_threads_is_not_watched_by_its_thread() -> None:
    tts, stt = TextToSpeech(), SpeechToText()
    pcm = tts.synthesize("Where is my order number forty two, please?", 16000).pcm
    assert await _most_idle("stt", lambda: stt.transcribe(pcm, 16000)) is None
