"""The speaking part of the embedded model: one response at a time, its clauses spoken by Piper.

A response is one owned task running a body (an LLM step, a tool's answer, a fixed text). The
body hands clauses to `speak_clause` (or to a `ClauseSpeaker`, when the LLM streams them): each
is announced (transcript delta), synthesized and sent as paced audio chunks, so a cancel lands
between two chunks. What was spoken, clause by clause, lets `truncate` keep what the caller heard.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal, TypeAlias

from voicegw.audio.resample import Resampler
from voicegw.contracts.model import (
    ModelAudio,
    ModelAudioDone,
    ModelError,
    ModelItemTruncated,
    ModelResponseDone,
    ModelResponseStarted,
    ModelTranscriptDelta,
    ModelUsage,
    Usage,
)
from voicegw.models.local.core import ModelCore
from voicegw.models.local.dialog import SpokenClause, spoken_prefix
from voicegw.models.local.llm import LlmError
from voicegw.models.local.tts import CHUNK_MS, TextToSpeech, chunks, speech_span
from voicegw.models.local.workers import InferenceQueue, shared

FILLER_TEXT = "One moment."
"""Said at once when a turn has to wait for an inference slot (pre-synthesized, costs nothing)."""

DEFAULT_LEAD_MS = 300
"""How far audio may run ahead of real time: the transport's buffer, not the whole answer."""

REPAIR_TEXT = "Sorry, could you say that again?"
"""Said when the LLM fails in the middle of a step."""

ResponseStatus: TypeAlias = Literal["completed", "cancelled", "failed", "incomplete"]


@dataclass
class Response:
    """One response in progress: its ids, stage timings and the clauses spoken so far."""

    response_id: str
    item_id: str
    started: float
    timings: dict[str, float] = field(default_factory=dict)
    clauses: list[SpokenClause] = field(default_factory=list)
    audio_ms: int = 0
    llm_requests: int = 0
    output_tokens: int = 0
    """LLM steps run and tokens they produced, for the response's `ModelUsage`."""

    clock: float | None = None
    """When the first audio chunk went out: pacing keeps the rest near real time."""

    task: asyncio.Task[None] | None = None

    def mark(self, name: str) -> None:
        self.timings.setdefault(name, round((time.perf_counter() - self.started) * 1000, 1))

    @property
    def text(self) -> str:
        return " ".join(clause.text for clause in self.clauses)


Body: TypeAlias = Callable[[Response], Awaitable[None]]
"""What a response does: speak, or decide on a tool call."""


class Speaking:
    """The agent's voice: starts, runs and cancels responses; keeps what each item said."""

    def __init__(self, core: ModelCore, *, filler: bool, lead_ms: int) -> None:
        self.tts = TextToSpeech(progress=core.progress)
        self.queue: InferenceQueue | None = None
        """The shared inference slots a response body waits for (set on connect)."""

        self._core = core
        self._filler = filler
        self._lead_ms = lead_ms
        self._filler_pcm = b""
        self._response: Response | None = None
        self._items: dict[str, list[SpokenClause]] = {}

    def load_filler(self) -> None:
        """Synthesize the filler once per process, converted once per call rate (blocking: run it
        in the pool)."""
        voiced = shared(("filler",), lambda: self.tts.synthesize(FILLER_TEXT, self.tts.voice_rate))
        rate = self._core.config.sample_rate
        self._filler_pcm = shared(
            ("filler", rate), lambda: Resampler(voiced.voice_rate, rate).process(voiced.pcm)
        )

    async def start(self, body: Body, timings: dict[str, float] | None = None) -> None:
        """Cancel the response in progress, then run `body` as the new one."""
        await self.cancel()
        core = self._core
        response = Response(core.new_id("resp"), core.new_id("item"), time.perf_counter())
        response.timings.update(timings or {})
        self._response = response
        response.task = core.spawn(self._run(response, body))

    async def cancel(self) -> None:
        """Stop the response in progress (its end is reported as ``cancelled``)."""
        response = self._response
        if response is None or response.task is None or response.task.done():
            return
        response.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await response.task

    async def _run(self, response: Response, body: Body) -> None:
        status: ResponseStatus = "completed"
        queue = self.queue
        try:
            self._core.emit(ModelResponseStarted(response.response_id))
            if queue is not None and queue.busy and self._filler:
                await self.speak_clause(response, FILLER_TEXT, self._filler_pcm)
            async with queue.slot() if queue is not None else contextlib.nullcontext():
                response.mark("queue")
                await body(response)
        except asyncio.CancelledError:
            status = "cancelled"
            raise
        except LlmError as exc:
            status = "failed"
            self._core.stats.failed_steps += 1
            self._core.log.warning("llm_step_failed", error=str(exc))
            self._core.emit(ModelError(str(exc), code="llm_error"))
        finally:
            self._end(response, status)

    def _end(self, response: Response, status: ResponseStatus) -> None:
        if self._response is response:
            self._response = None
        if response.clauses:
            self._items[response.item_id] = response.clauses
            self._core.history.add("assistant", response.text, response.item_id)
            self._core.emit(ModelAudioDone(response.item_id))
        # One token a streamed piece (as llama.cpp streams; a fixed opening of the grammar counts as
        # one): an estimate. The prompt is not counted (input_tokens 0).
        tokens = response.output_tokens
        usage = Usage(
            output_tokens=tokens,
            total_tokens=tokens,
            output_audio_ms=response.audio_ms,
            requests=response.llm_requests,
        )
        self._core.emit(ModelUsage(usage))
        self._core.emit(ModelResponseDone(response.response_id, status, dict(response.timings)))

    async def speak_clause(self, response: Response, text: str, pcm: bytes | None = None) -> None:
        """Announce the clause's text, then send its audio in chunks (a cancel lands between two)."""
        rate = self._core.config.sample_rate
        if pcm is None:
            speech = await self.tts.asynthesize(text, rate)
            pcm = speech.pcm
        start_ms = response.audio_ms
        duration_ms = len(pcm) * 1000 // (2 * rate)
        speech_from, speech_to = speech_span(pcm, rate)
        response.clauses.append(SpokenClause(text, start_ms + speech_from, start_ms + speech_to))
        self._core.emit(ModelTranscriptDelta(response.item_id, response.response_id, text + " "))
        sent_ms = start_ms
        for chunk in chunks(pcm, rate, CHUNK_MS):
            response.mark("tts_first_audio")
            if response.clock is None:
                response.clock = time.perf_counter()
            # Stay at most `lead_ms` ahead of real time, so a cancel still has audio to stop.
            ahead_s = (sent_ms - self._lead_ms) / 1000 - (time.perf_counter() - response.clock)
            if ahead_s > 0:
                await asyncio.sleep(ahead_s)
            self._core.emit(ModelAudio(response.item_id, response.response_id, chunk))
            sent_ms += len(chunk) * 1000 // (2 * rate)
        response.audio_ms = start_ms + duration_ms

    def truncate(self, item_id: str, audio_end_ms: int) -> None:
        """The caller heard `audio_end_ms` of `item_id`: the history keeps the words said by then."""
        clauses = self._items.get(item_id)
        if clauses is None and self._response is not None and self._response.item_id == item_id:
            clauses = self._response.clauses
        if clauses is None:
            return
        heard = spoken_prefix(clauses, audio_end_ms)
        self._core.history.replace(item_id, heard)
        self._items[item_id] = [c for c in clauses if c.end_ms <= audio_end_ms]
        self._core.emit(ModelItemTruncated(item_id, audio_end_ms, heard))


class ClauseSpeaker:
    """Clauses queued as the LLM streams them, spoken in order by a task of their own.

    ``async with ClauseSpeaker(speaking, response) as speaker``: `say` queues, and leaving the
    block waits until everything queued has been spoken. If the LLM fails (`LlmError`) the
    caller hears `REPAIR_TEXT` after what was already queued; any other exit (a cancel) stops
    the speech at once.
    """

    def __init__(self, speaking: Speaking, response: Response) -> None:
        self._speaking = speaking
        self._response = response
        self._clauses: asyncio.Queue[str | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def say(self, *clauses: str) -> None:
        for clause in clauses:
            self._clauses.put_nowait(clause)

    async def _run(self) -> None:
        while (clause := await self._clauses.get()) is not None:
            await self._speaking.speak_clause(self._response, clause)

    async def __aenter__(self) -> ClauseSpeaker:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        assert self._task is not None
        if exc is None or isinstance(exc, LlmError):
            if exc is not None:
                self.say(REPAIR_TEXT)
            self._clauses.put_nowait(None)
            await self._task
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
