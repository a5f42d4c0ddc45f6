"""`RealtimeSession`: one conversation between a transport (the caller) and a model (the agent).

The session is the only thing that talks to both seams. Caller frames go to the model (through
server-side turn detection when the model has none); model audio goes to the transport; tools,
handoffs and guardrails run as tasks the session owns, so that nothing they do stalls audio.
Barge-in flushes the transport in the same call that detects it, then cancels the response and
truncates the assistant item at what the transport says was played.

This module keeps the loop: life cycle, the model's events, commands, events out. The agent's
speech and barge-in live in `agent_speech`, the caller's side in `caller_side`, the view its
helpers get in `session_port`, tool calls in `tool_calls`, guardrails in `guardrails`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import structlog

from voicegw.contracts.model import (
    CreateResponse,
    ModelAudio,
    ModelAudioDone,
    ModelError,
    ModelInputTranscript,
    ModelItemTruncated,
    ModelResponseDone,
    ModelResponseStarted,
    ModelSpeechStarted,
    ModelSpeechStopped,
    ModelToolCall,
    ModelTranscriptDelta,
    ModelUsage,
    RealtimeModel,
    RealtimeModelCommand,
    RealtimeModelConfig,
    RealtimeModelEvent,
    SendToolOutput,
    UpdateSession,
    Usage,
)
from voicegw.contracts.transport import (
    AudioTransport,
    CallControl,
    EndReason,
)
from voicegw.realtime.agent import RealtimeAgent
from voicegw.realtime.agent_speech import AgentSpeech
from voicegw.realtime.approvals import REJECTION_MESSAGE
from voicegw.realtime.audio_formats import session_audio
from voicegw.realtime.call_tools import CALL_TOOL_NAMES, CALL_TOOLS, CallHandle
from voicegw.realtime.caller_side import CallerSide
from voicegw.realtime.config import (
    DEFAULT_TOOL_FILLER_DELAY,
    RealtimeRunConfig,
    RealtimeUserInput,
    build_model_config,
    debounce_text_length,
    resolve_turn_detection,
    user_message,
)
from voicegw.realtime.context import RunContextWrapper
from voicegw.realtime.events import (
    RealtimeAgentEndEvent,
    RealtimeAgentStartEvent,
    RealtimeError,
    RealtimeEventInfo,
    RealtimeHandoffEvent,
    RealtimeInputAudioTranscriptionCompleted,
    RealtimeInputAudioTranscriptionDelta,
    RealtimeRawModelEvent,
    RealtimeSessionEvent,
    VoicegwSessionEvent,
    sdk_event,
)
from voicegw.realtime.guardrails import TranscriptGate
from voicegw.realtime.hooks import RealtimeRunHooks, agent_hook
from voicegw.realtime.idle import IdleTimeout
from voicegw.realtime.items import (
    History,
    InputAudio,
    InputImage,
    InputText,
    RealtimeItem,
    RealtimeToolCallItem,
    UserMessageItem,
    assistant_audio_item,
    user_audio_item,
)
from voicegw.realtime.model import RealtimeModelConfig as ConnectionOptions
from voicegw.realtime.model_selection import check_model_config, resolve_model
from voicegw.realtime.playback import AgentPlayback
from voicegw.realtime.result import RealtimeResult, RealtimeTimings
from voicegw.realtime.session_port import SessionAdapter
from voicegw.realtime.settings import check_run_config
from voicegw.realtime.tool_calls import ToolCallRunner
from voicegw.realtime.turns import ServerTurnDetector

__all__ = ["REJECTION_MESSAGE", "RealtimeSession"]

log = structlog.get_logger()

_END: Any = object()  # queued after the last event: iterators stop at it


class RealtimeSession(AgentSpeech, CallerSide):
    """A conversation over one transport, not started until `async with` (or a runner) starts it.

    Iterate it (``async for event in session``) for its events; the iteration ends with the
    session. `result` holds the `RealtimeResult` once it has ended.
    """

    def __init__(
        self,
        transport: AudioTransport | None = None,
        *,
        model: RealtimeModel | None = None,
        config: RealtimeRunConfig | None = None,
        agent: RealtimeAgent[Any] | None = None,
        context: Any = None,
        hooks: RealtimeRunHooks[Any] | None = None,
        model_config: ConnectionOptions | None = None,
    ) -> None:
        """`model_config` is the SDK's connection options (see `voicegw.realtime.model`)."""
        self._transport = transport
        self._model_config: ConnectionOptions = model_config or {}
        check_model_config(self._model_config)
        self._tracker = self._model_config.get("playback_tracker")
        self._model_arg = model
        self._model: RealtimeModel | None = None
        self._agent = agent
        self._context = RunContextWrapper[Any](context)
        self._port = SessionAdapter(self)
        self._call: CallHandle | None = None
        if isinstance(transport, CallControl):
            self._call = self._context.call = CallHandle(transport, self._port)
        self._responses_started = 0
        self._tool_call_responses: dict[str, str] = {}
        self._hooks: RealtimeRunHooks[Any] = hooks or RealtimeRunHooks()
        self._info = RealtimeEventInfo(self._context)
        self._events: asyncio.Queue[RealtimeSessionEvent | VoicegwSessionEvent] = asyncio.Queue()
        self._history = History()
        self._tasks: set[asyncio.Task[None]] = set()
        self._turns: ServerTurnDetector | None = None
        self._transcripts: dict[str, str] = {}
        self._usage = Usage()
        self._turn_ended_at: float | None = None
        self._latencies: list[float] = []
        self._model_timings: list[dict[str, float]] = []
        self._started_at: float | None = None
        self._ended_at: float | None = None
        self._end_reason: EndReason | None = None
        self._error: str | None = None
        self._failure: BaseException | None = None
        self._ended = asyncio.Event()
        self._closed = False
        # Transports of a call (SIP, Twilio) carry its id: every log line of the session names it.
        self._log = log.bind(call_id=getattr(transport, "call_id", None), agent=agent.name if agent else None)
        self._apply_config(config or {})

    # --- public API ----------------------------------------------------------------------

    @property
    def model(self) -> RealtimeModel:
        if self._model is None:
            raise RuntimeError("the session has not started: use `async with session` or a runner")
        return self._model

    @property
    def transport(self) -> AudioTransport | None:
        return self._transport

    @property
    def current_agent(self) -> RealtimeAgent[Any]:
        if self._agent is None:
            raise RuntimeError("the session has no agent yet")
        return self._agent

    @property
    def context(self) -> RunContextWrapper[Any]:
        return self._context

    @property
    def history(self) -> list[RealtimeItem]:
        return self._history.items

    @property
    def config(self) -> RealtimeRunConfig:
        return self._config

    @property
    def result(self) -> RealtimeResult:
        """The outcome so far; final once the session has ended (`end_reason` set)."""
        loop_time = asyncio.get_running_loop().time() if self._started_at is not None else 0.0
        end = self._ended_at if self._ended_at is not None else loop_time
        return RealtimeResult(
            final_agent=self.current_agent,
            history=tuple(self._history.items),
            tool_calls=tuple(self._history.tool_calls()),
            usage=self._usage,
            timings=RealtimeTimings(
                turn_latencies_ms=tuple(self._latencies),
                duration_s=end - self._started_at if self._started_at is not None else 0.0,
                model_timings_ms=tuple(self._model_timings),
            ),
            end_reason=self._end_reason,
            error=self._error,
        )

    def configure(
        self,
        *,
        agent: RealtimeAgent[Any] | None = None,
        context: Any = None,
        hooks: RealtimeRunHooks[Any] | None = None,
        config: RealtimeRunConfig | None = None,
    ) -> None:
        """Set what a runner provides; only before the session starts. None keeps the current value."""
        if self._started_at is not None:
            raise RuntimeError("the session has already started")
        if agent is not None:
            self._agent = agent
            self._log = self._log.bind(agent=agent.name)
        if context is not None:
            self._context.context = context
        if hooks is not None:
            self._hooks = hooks
        if config is not None:
            self._apply_config(config)

    def _apply_config(self, config: RealtimeRunConfig) -> None:
        if "initial_model_settings" in self._model_config:  # the SDK's: over the run's settings
            settings = {**config.get("model_settings", {}), **self._model_config["initial_model_settings"]}
            config = {**config, "model_settings": settings}  # type: ignore[typeddict-item]
        check_run_config(config)
        self._config = config
        self._formats = session_audio(config, self._transport.sample_rate if self._transport else None)
        if self._tracker is not None:
            self._tracker.set_audio_format(self._formats.output.name)
        self._gate = TranscriptGate[ModelAudio](debounce_text_length(config))
        source = self._played_ms_source()
        self._playback = AgentPlayback(self._sample_rate(), source, None if source else time.monotonic)
        self._tools = ToolCallRunner(
            self._port,
            transport=self._transport,
            filler_delay=config.get("tool_filler_delay", DEFAULT_TOOL_FILLER_DELAY),
        )
        self._tools.error_formatter = config.get("tool_error_formatter")
        turns = resolve_turn_detection(config)
        timeout_ms = turns.idle_timeout_ms if turns is not None else None
        self._idle = IdleTimeout(timeout_ms, self._caller_idle) if timeout_ms else None

    async def __aenter__(self) -> RealtimeSession:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Connect the model and start the conversation (the greeting, then the caller's audio)."""
        if self._started_at is not None:
            raise RuntimeError("the session has already started")
        agent = self.current_agent
        settings = resolve_turn_detection(self._config)  # a bad config fails before anything opens
        self._started_at = asyncio.get_running_loop().time()
        model = self._model = await resolve_model(
            self._model_arg if self._model_arg is not None else self._config.get("model"), self._model_config
        )
        if settings is not None and not model.supports_turn_detection:
            self._turns = ServerTurnDetector(self._sample_rate(), settings)
        model.add_listener(self)
        try:
            await model.connect(await self._agent_config(agent))
        except BaseException as exc:
            model.remove_listener(self)
            await model.close()
            self._finish(EndReason.ERROR, f"the model could not connect: {exc!r}")  # iterators must end too
            raise
        self._emit(RealtimeAgentStartEvent(agent, self._info))
        await self._hook("on_agent_start", self._context, agent)
        if self._transport is not None:
            call_events = self._spawn(self._pump_call_events())
            self._spawn(self._pump_caller_audio(call_events))
        if agent.greeting is not None:
            await self._send(CreateResponse(say=agent.greeting))
        elif agent.greeting_instructions is not None:
            await self._send(CreateResponse(instructions=agent.greeting_instructions))

    async def enter(self) -> RealtimeSession:
        """Start the session (the SDK's form of ``async with``); `close()` ends it."""
        await self.start()
        return self

    def __aiter__(self) -> AsyncIterator[RealtimeSessionEvent]:
        """The SDK's events only: voicegw's own arrive inside ``raw_model_event`` (see `all_events`)."""
        return (sdk_event(event) async for event in self._iterate())

    def all_events(self) -> AsyncIterator[RealtimeSessionEvent | VoicegwSessionEvent]:
        """Every event, voicegw's own (`VoicegwSessionEvent`: DTMF, call state, transfer results,
        the caller's transcript) as they are: for code written for voicegw, not ported SDK code."""
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[RealtimeSessionEvent | VoicegwSessionEvent]:
        while (event := await self._events.get()) is not _END:
            yield event
        self._events.put_nowait(_END)  # for the next iterator
        if self._failure is not None:
            raise self._failure

    async def wait(self) -> RealtimeResult:
        """Wait until the session ends (the call ends, a fatal error, `close()`); its result."""
        await self._ended.wait()
        return self.result

    async def send_audio(self, audio: bytes, *, commit: bool = False) -> None:
        """Caller audio, for sessions without a transport: in the run's ``input_audio_format``
        (default ``pcm16``: mono s16le at the session rate)."""
        await self._caller_audio(self._formats.input.to_pcm(audio))
        if commit:
            await self._end_turn()

    async def send_message(self, message: RealtimeUserInput) -> None:
        """A message from the user: a string, or the SDK's ``{"type": "message", "role": "user",
        "content": [...]}`` with ``input_text`` and ``input_image`` parts."""
        self._caller_active()
        command = user_message(message)
        content: list[InputText | InputAudio | InputImage] = (
            [InputText(text=command.text)] if command.text else []
        )
        content += [InputImage(image_url=image.url, detail=image.detail) for image in command.images]
        self._put_history(UserMessageItem(item_id=f"user_text_{len(self._history.items)}", content=content))
        self._turn_ended_at = self._now()
        await self._send(command)

    async def say(self, text: str) -> None:
        """Have the agent speak `text` verbatim now (a reprompt, an announcement)."""
        await self._send(CreateResponse(say=text))

    async def interrupt(self) -> None:
        """Cut the agent off now, as a barge-in would."""
        await self._interrupt()

    async def approve_tool_call(self, call_id: str, *, always: bool = False) -> None:
        """Let the waiting call `call_id` run (``always``: every later call of its tool too)."""
        self._tools.approvals.decide(call_id, approved=True, always=always)

    async def reject_tool_call(
        self, call_id: str, *, always: bool = False, rejection_message: str | None = None
    ) -> None:
        """Refuse the waiting call `call_id`: the model gets `rejection_message` (or the run's
        ``tool_error_formatter``'s, or a default) instead of the tool's output."""
        self._tools.approvals.decide(call_id, approved=False, always=always, message=rejection_message)

    async def update_agent(self, agent: RealtimeAgent[Any]) -> None:
        """Switch to `agent` (no handoff events) and reconfigure the model for it."""
        self._agent = agent
        await self._send(UpdateSession(await self._agent_config(agent)))

    async def close(self) -> None:
        """End the session: cancel and await every task, close the model and the transport."""
        if self._closed:
            return
        self._closed = True
        self._finish(EndReason.CLOSED)
        self._caller_active()  # no idle timeout after the end
        self._tools.stop_filler()
        current = asyncio.current_task()
        tasks = [task for task in self._tasks if task is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._model is not None:
            self._model.remove_listener(self)
            await self._model.close()
        if self._transport is not None:
            await self._transport.close()
        if self._agent is not None and self._started_at is not None:
            await self._hook("on_agent_end", self._context, self._agent, None)

    # --- the model's events ------------------------------------------------------------------

    async def on_event(self, event: RealtimeModelEvent) -> None:
        """`RealtimeModelListener`: one model event."""
        self._emit(RealtimeRawModelEvent(event, self._info))
        match event:
            case ModelSpeechStarted():
                self._caller_active()
                settings = resolve_turn_detection(self._config)
                if settings is None or settings.interrupt_response:
                    await self._barge_in()
            case ModelSpeechStopped():
                self._turn_ended_at = self._now()
            case ModelInputTranscript(item_id=item_id, transcript=text, is_final=False):
                self._emit(RealtimeInputAudioTranscriptionDelta(item_id, text, self._info))
            case ModelInputTranscript(item_id=item_id, transcript=text, is_final=True):
                self._put_history(user_audio_item(item_id, text))
                self._emit(RealtimeInputAudioTranscriptionCompleted(item_id, text, self._info))
            case ModelResponseStarted(response_id=response_id):
                self._responses_started += 1
                self._playback.response_started(response_id)
            case ModelAudio():
                await self._on_audio(event)
            case ModelTranscriptDelta():
                self._on_transcript_delta(event)
            case ModelAudioDone(item_id=item_id, content_index=index):
                self._on_audio_done(item_id, index)
            case ModelToolCall():
                item = RealtimeToolCallItem(
                    item_id=event.item_id or event.call_id,
                    call_id=event.call_id,
                    name=event.name,
                    arguments=event.arguments,
                )
                self._put_history(item)
                self._tool_call_responses[event.call_id] = event.response_id
                if self._config.get("async_tool_calls", True):
                    self._spawn(self._tools.run(event, self.current_agent))
                else:  # the SDK's synchronous mode: nothing else of the model meanwhile
                    await self._tools.run(event, self.current_agent)
            case ModelItemTruncated(item_id=item_id, transcript=str() as text):
                self._put_history(assistant_audio_item(item_id, text, "incomplete"))
                self._log.info("item_truncated", item_id=item_id, transcript=text)
            case ModelUsage(usage=usage):
                self._usage += usage
                self._context.usage = self._usage
            case ModelResponseDone():
                if event.timings_ms:
                    self._model_timings.append(dict(event.timings_ms))
                self._playback.response_done(event.response_id)
                if self._idle is not None and event.status == "completed":
                    self._idle.agent_done(self._playback.pending_ms())
            case ModelError(fatal=fatal, message=message):
                self._emit_error(event, message)
                if fatal:
                    self._finish(EndReason.ERROR, message)

    # --- helpers shared with tool calls ------------------------------------------------------

    async def _agent_config(self, agent: RealtimeAgent[Any]) -> RealtimeModelConfig:
        """The model configuration for `agent`; also makes its tools the callable ones."""
        builtin = CALL_TOOLS if self._call is not None and self._config.get("call_tools", True) else ()
        if any(tool.name in CALL_TOOL_NAMES for tool in agent.tools):
            builtin = ()  # an agent with call control of its own chose which it wants
        run_tools = self._config.get("model_settings", {}).get("tools", [])
        specs = await self._tools.use_agent(agent, self._context, (*run_tools, *builtin))
        return build_model_config(
            self._config,
            sample_rate=self._sample_rate(),
            instructions=await agent.get_system_prompt(self._context),
            voice=agent.voice,
            tools=specs,
            prompt=agent.prompt,
        )

    async def _switch_agent(self, agent: RealtimeAgent[Any]) -> None:
        """A handoff: end the current agent, start `agent`, reconfigure the model."""
        previous = self.current_agent
        self._emit(RealtimeAgentEndEvent(previous, self._info))
        await self._hook("on_agent_end", self._context, previous, None)
        await self._hook("on_handoff", self._context, previous, agent)
        self._emit(RealtimeHandoffEvent(previous, agent, self._info))
        self._agent = agent
        self._log = self._log.bind(agent=agent.name)
        await self._send(UpdateSession(await self._agent_config(agent)))
        self._emit(RealtimeAgentStartEvent(agent, self._info))
        await self._hook("on_agent_start", self._context, agent)

    def _tool_call_spoke(self, call_id: str) -> bool:
        """Whether the response that made tool call `call_id` had audio for the caller."""
        response_id = self._tool_call_responses.get(call_id)
        return response_id is not None and self._playback.spoke(response_id)

    async def _send(self, command: RealtimeModelCommand) -> None:
        if isinstance(command, SendToolOutput):
            item = self._history.tool_output(command.call_id, command.output)
            if item is not None:
                self._put_history(item)
        try:
            await self.model.send_event(command)
        except Exception as exc:  # a dropped model connection must not kill the audio path
            self._emit_error(exc, f"sending {command.type} to the model failed: {exc}")

    def _emit(self, event: RealtimeSessionEvent | VoicegwSessionEvent) -> None:
        if self._end_reason is None:
            self._events.put_nowait(event)

    def _emit_error(self, error: Any, message: str) -> None:
        self._log.warning("session_error", error=message)
        self._emit(RealtimeError(error, message, self._info))

    async def _hook(self, name: str, *args: Any) -> None:
        """Run hook `name`, then the agent hook it implies (`RealtimeAgent.hooks`)."""
        calls: list[tuple[Any, str, tuple[Any, ...]]] = [(self._hooks, name, args)]
        if (implied := agent_hook(name, args)) is not None:
            calls.append(implied)
        for hooks, method, arguments in calls:
            try:
                await getattr(hooks, method)(*arguments)
            except Exception as exc:
                self._emit_error(exc, f"hook {method} failed: {exc}")

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run `coro` as a task the session owns (cancelled and awaited on close)."""
        task = asyncio.get_running_loop().create_task(self._guarded(coro))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _guarded(self, coro: Coroutine[Any, Any, None]) -> None:
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug of ours: surface it, end the session, re-raise to iterators
            self._log.exception("session_task_failed")
            self._failure = exc
            self._emit_error(exc, f"internal error: {exc}")
            self._finish(EndReason.ERROR, str(exc))

    def _finish(self, reason: EndReason, error: str | None = None) -> None:
        if self._end_reason is not None:
            return
        if self._agent is not None:
            self._emit(RealtimeAgentEndEvent(self._agent, self._info))
        self._events.put_nowait(_END)
        self._end_reason = reason
        self._error = error
        self._ended_at = self._now() if self._started_at is not None else None
        self._ended.set()
        self._log.info("session_finished", end_reason=reason)

    def _sample_rate(self) -> int:
        return self._formats.sample_rate

    def _played_ms_source(self) -> Callable[[str], int] | None:
        """Where the truth about what the caller heard comes from: the transport, the application's
        tracker, else (None) the assumption that audio plays as it arrives."""
        if self._transport is not None:
            return self._transport.played_ms
        return self._tracker.played_ms if self._tracker is not None else None

    @staticmethod
    def _now() -> float:
        return asyncio.get_running_loop().time()
