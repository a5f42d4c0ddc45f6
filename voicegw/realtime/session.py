"""`RealtimeSession`: one conversation between a transport (the caller) and a model (the agent).

The session is the only thing that talks to both seams. Caller frames go to the model (through
server-side turn detection when the model has none); model audio goes to the transport; tools,
handoffs and guardrails run as tasks the session owns, so that nothing they do stalls audio.
Barge-in flushes the transport in the same call that detects it, then cancels the response and
truncates the assistant item at what the transport says was played.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine
from typing import Any

import structlog

from voicegw.models.base import (
    CancelResponse,
    CommitAudio,
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
    RealtimeModel,
    RealtimeModelCommand,
    RealtimeModelConfig,
    RealtimeModelEvent,
    SendAudio,
    SendUserMessage,
    TruncateItem,
    UpdateSession,
    Usage,
)
from voicegw.models.registry import create_model
from voicegw.realtime.agent import RealtimeAgent
from voicegw.realtime.call_tools import CALL_TOOL_NAMES, CALL_TOOLS, CallHandle
from voicegw.realtime.config import (
    DEFAULT_SAMPLE_RATE,
    DEFAULT_TOOL_FILLER_DELAY,
    RealtimeRunConfig,
    build_model_config,
    debounce_text_length,
    resolve_turn_detection,
)
from voicegw.realtime.context import RunContextWrapper
from voicegw.realtime.events import (
    RealtimeAgentEndEvent,
    RealtimeAgentStartEvent,
    RealtimeAudio,
    RealtimeAudioEnd,
    RealtimeAudioInterrupted,
    RealtimeCallState,
    RealtimeDtmf,
    RealtimeError,
    RealtimeEventInfo,
    RealtimeGuardrailTripped,
    RealtimeHandoffEvent,
    RealtimeHistoryAdded,
    RealtimeHistoryUpdated,
    RealtimeInputAudioTranscriptionCompleted,
    RealtimeInputAudioTranscriptionDelta,
    RealtimeRawModelEvent,
    RealtimeSessionEvent,
    RealtimeTransferResult,
)
from voicegw.realtime.guardrails import TranscriptGate, run_output_guardrails
from voicegw.realtime.hooks import RealtimeRunHooks
from voicegw.realtime.items import (
    History,
    InputText,
    RealtimeItem,
    RealtimeToolCallItem,
    UserMessageItem,
    assistant_audio_item,
    heard_part,
    user_audio_item,
)
from voicegw.realtime.playback import AgentPlayback
from voicegw.realtime.result import EndReason, RealtimeResult, RealtimeTimings
from voicegw.realtime.tool_calls import ToolCallRunner
from voicegw.realtime.transport import (
    AudioTransport,
    CallControl,
    CallStateChanged,
    DtmfReceived,
    TransferResult,
    TransportClosed,
)
from voicegw.realtime.turns import ForwardAudio, ServerTurnDetector, TurnEnded, TurnStarted

log = structlog.get_logger()

CALL_EVENTS_GRACE_S = 0.5
"""How long the end of the caller's audio waits for the call event that says why it ended."""

_END: Any = object()  # queued after the last event: iterators stop at it


class RealtimeSession:
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
    ) -> None:
        self._transport = transport
        self._model_arg = model
        self._model: RealtimeModel | None = None
        self._agent = agent
        self._context = RunContextWrapper[Any](context)
        self._call: CallHandle | None = None
        if isinstance(transport, CallControl):
            self._call = self._context.call = CallHandle(
                transport,
                speaking=lambda: self._playback.speaking(),
                responses_started=lambda: self._responses_started,
                say=lambda text: self._send(CreateResponse(say=text)),
                spoke=self._tool_call_spoke,
                finish=lambda reason: self._finish(reason),
            )
        self._responses_started = 0
        self._tool_call_responses: dict[str, str] = {}
        self._hooks: RealtimeRunHooks[Any] = hooks or RealtimeRunHooks()
        self._info = RealtimeEventInfo(self._context)
        self._events: asyncio.Queue[RealtimeSessionEvent] = asyncio.Queue()
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
        self._config = config
        self._gate = TranscriptGate[ModelAudio](debounce_text_length(config))
        transport = self._transport
        self._playback = AgentPlayback(
            self._sample_rate(), transport.played_ms if transport is not None else None
        )
        self._tools = ToolCallRunner(
            send=self._send,
            emit=self._emit,
            emit_error=self._emit_error,
            hook=self._hook,
            spawn=self._spawn,
            switch_agent=self._switch_agent,
            record_output=self._record_tool_output,
            context=self._context,
            info=self._info,
            transport=self._transport,
            filler_delay=config.get("tool_filler_delay", DEFAULT_TOOL_FILLER_DELAY),
            agent_audio_pending_ms=self._playback.pending_ms,
        )

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
        model = self._model = self._resolve_model()
        if settings is not None and not model.supports_turn_detection:
            self._turns = ServerTurnDetector(self._sample_rate(), settings)
        model.add_listener(self)
        try:
            await model.connect(await self._agent_config(agent))
        except BaseException as exc:
            model.remove_listener(self)
            await model.close()
            self._finish("error", f"the model could not connect: {exc!r}")  # iterators must end too
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

    def __aiter__(self) -> AsyncIterator[RealtimeSessionEvent]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[RealtimeSessionEvent]:
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
        """Caller audio (mono s16le at the session rate), for sessions without a transport."""
        await self._caller_audio(audio)
        if commit:
            await self._end_turn()

    async def send_message(self, message: str | dict[str, Any]) -> None:
        """A text message from the user (a string, or the SDK's ``{"type": "message", ...}``)."""
        text = message if isinstance(message, str) else _message_text(message)
        self._put_history(UserMessageItem(f"user_text_{len(self._history.items)}", (InputText(text),)))
        self._turn_ended_at = self._now()
        await self._send(SendUserMessage(text))

    async def say(self, text: str) -> None:
        """Have the agent speak `text` verbatim now (a reprompt, an announcement)."""
        await self._send(CreateResponse(say=text))

    async def interrupt(self) -> None:
        """Cut the agent off now, as a barge-in would."""
        await self._interrupt()

    async def update_agent(self, agent: RealtimeAgent[Any]) -> None:
        """Switch to `agent` (no handoff events) and reconfigure the model for it."""
        self._agent = agent
        await self._send(UpdateSession(await self._agent_config(agent)))

    async def close(self) -> None:
        """End the session: cancel and await every task, close the model and the transport."""
        if self._closed:
            return
        self._closed = True
        self._finish("closed")
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
                    event.item_id or event.call_id, event.call_id, event.name, event.arguments
                )
                self._put_history(item)
                self._tool_call_responses[event.call_id] = event.response_id
                self._spawn(self._tools.run(event, self.current_agent))
            case ModelItemTruncated(item_id=item_id, transcript=str() as text):
                self._put_history(assistant_audio_item(item_id, text, "incomplete"))
                self._log.info("item_truncated", item_id=item_id, transcript=text)
            case ModelResponseDone():
                self._usage += event.usage
                self._context.usage = self._usage
                if event.timings_ms:
                    self._model_timings.append(dict(event.timings_ms))
                self._playback.response_done(event.response_id)
            case ModelError(fatal=fatal, message=message):
                self._emit_error(event, message)
                if fatal:
                    self._finish("error", message)

    async def _on_audio(self, event: ModelAudio) -> None:
        if not self._playback.accepts(event.item_id, event.response_id):
            return  # what the model still sends after a cancel must not be played
        self._tools.stop_filler()
        if self._playback.audio(event.item_id, event.content_index, event.response_id, len(event.data)):
            self._ensure_assistant_item(event.item_id)
        if self._turn_ended_at is not None:
            self._latencies.append((self._now() - self._turn_ended_at) * 1000)
            self._turn_ended_at = None
        if not self._gate.hold(event.item_id, event):
            await self._deliver_audio(event)

    async def _deliver_audio(self, event: ModelAudio) -> None:
        """Agent audio to the caller: the transport, and the ``audio`` event (apps without one play it)."""
        if self._transport is not None:
            try:
                await self._transport.play(event.data, item_id=event.item_id)
            except TransportClosed:
                return  # the caller hung up as the audio came: the call's events say so, no error
        self._emit(RealtimeAudio(event, event.item_id, event.content_index, self._info))

    def _on_transcript_delta(self, event: ModelTranscriptDelta) -> None:
        if not self._playback.accepts(event.item_id, event.response_id):
            return
        self._ensure_assistant_item(event.item_id)
        self._transcripts[event.item_id] = self._transcripts.get(event.item_id, "") + event.delta
        if self._guardrails() and (text := self._gate.add_text(event.item_id, event.delta)) is not None:
            self._spawn(self._check_output(event.item_id, event.response_id, text))

    def _on_audio_done(self, item_id: str, content_index: int) -> None:
        self._emit(RealtimeAudioEnd(item_id, content_index, self._info))
        if self._playback.interrupted(item_id):
            return
        transcript = self._transcripts.get(item_id, "")
        self._put_history(assistant_audio_item(item_id, transcript, "completed"))
        if self._guardrails() and (text := self._gate.finish(item_id)) is not None:
            self._spawn(self._check_output(item_id, self._playback.response_of(item_id), text))

    def _ensure_assistant_item(self, item_id: str) -> None:
        if self._history.get(item_id) is None:
            self._put_history(assistant_audio_item(item_id, ""))

    # --- guardrails --------------------------------------------------------------------------

    def _guardrails(self) -> list[Any]:
        combined = [*self.current_agent.output_guardrails, *self._config.get("output_guardrails", [])]
        return list({id(g): g for g in combined}.values())

    async def _check_output(self, item_id: str, response_id: str, text: str) -> None:
        agent = self.current_agent
        tripped = await run_output_guardrails(self._guardrails(), self._context, agent, text)
        if not tripped:
            for audio in self._gate.check_passed(item_id):
                if self._playback.accepts(audio.item_id, audio.response_id):  # no barge-in meanwhile
                    await self._deliver_audio(audio)
            return
        if self._playback.interrupted(item_id):
            return  # an earlier check of this item already tripped
        names = ", ".join(result.guardrail.get_name() for result in tripped)
        self._log.info("output guardrail tripped", item_id=item_id, guardrails=names)
        await self._interrupt(item_id)
        self._emit(RealtimeGuardrailTripped(tripped, text, self._info))
        await self._send(SendUserMessage(f"guardrail triggered: {names}"))

    # --- barge-in ----------------------------------------------------------------------------

    async def _barge_in(self) -> None:
        if self._playback.speaking():
            await self._interrupt()

    async def _interrupt(self, item_id: str | None = None) -> None:
        """Flush, cancel, truncate: the agent stops at once and its items hold what was heard."""
        if self._transport is not None:
            self._transport.flush()  # first, in this very call: nothing stale reaches the caller
        self._tools.filler_flushed()
        if self._playback.cancel_active() is not None:
            await self._send(CancelResponse())
        for cut in self._playback.cut(item_id):
            self._gate.drop(cut.item_id)
            heard = heard_part(self._transcripts.get(cut.item_id, ""), cut.played_ms, cut.received_ms)
            self._put_history(assistant_audio_item(cut.item_id, heard, "incomplete"))
            # After our estimate: a model that knows the exact cut answers with ModelItemTruncated.
            await self._send(TruncateItem(cut.item_id, cut.played_ms, cut.content_index))
            self._emit(RealtimeAudioInterrupted(cut.item_id, cut.content_index, cut.played_ms, self._info))
            self._log.info("audio_interrupted", item_id=cut.item_id, played_ms=cut.played_ms, heard=heard)

    # --- the caller's side -------------------------------------------------------------------

    async def _pump_caller_audio(self, call_events: asyncio.Task[None]) -> None:
        assert self._transport is not None
        try:
            async for frame in self._transport.frames():
                await self._caller_audio(frame.pcm)
        except Exception as exc:
            self._emit_error(exc, f"the transport failed: {exc}")
            self._finish("error", str(exc))
            return
        # The audio ended; the call's last state change (who hung up, a transfer) says why.
        await asyncio.wait({call_events}, timeout=CALL_EVENTS_GRACE_S)
        self._finish("caller_hung_up")

    async def _pump_call_events(self) -> None:
        assert self._transport is not None
        try:
            await self._handle_call_events(self._transport)
        except Exception as exc:  # control is lost, not the audio: the session goes on
            self._emit_error(exc, f"the transport's call events failed: {exc}")

    async def _handle_call_events(self, transport: AudioTransport) -> None:
        async for event in transport.events():
            match event:
                case DtmfReceived(digit=digit, duration_ms=duration):
                    self._emit(RealtimeDtmf(digit, duration, self._info))
                    if (text := self._dtmf_text(digit)) is not None:
                        await self.send_message(text)
                case CallStateChanged(state=state, reason=reason):
                    self._emit(RealtimeCallState(state, reason, self._info))
                    if state == "transferred":
                        self._finish("transferred")
                    elif state == "ended":
                        self._finish(_end_reason(reason))
                case TransferResult(target=target, accepted=accepted, status_code=code):
                    self._emit(RealtimeTransferResult(target, accepted, code, self._info))

    def _dtmf_text(self, digit: str) -> str | None:
        """What the model is told of a key press: the agent's menu entry, or the plain fact."""
        menu_text = self.current_agent.dtmf_menu.get(digit)
        if menu_text is not None:
            return menu_text
        return f"The caller pressed {digit}" if self._config.get("dtmf_as_text", False) else None

    async def _caller_audio(self, pcm: bytes) -> None:
        if self._turns is None:
            await self._send(SendAudio(pcm))
            return
        for action in self._turns.feed(pcm):
            match action:
                case TurnStarted():
                    settings = resolve_turn_detection(self._config)
                    if settings is not None and settings.interrupt_response:
                        await self._barge_in()
                case ForwardAudio(pcm=speech):
                    await self._send(SendAudio(speech))
                case TurnEnded():
                    await self._end_turn()

    async def _end_turn(self) -> None:
        self._turn_ended_at = self._now()
        await self._send(CommitAudio())
        settings = resolve_turn_detection(self._config)
        if settings is None or settings.create_response:
            await self._send(CreateResponse())

    # --- helpers shared with tool calls ------------------------------------------------------

    async def _agent_config(self, agent: RealtimeAgent[Any]) -> RealtimeModelConfig:
        """The model configuration for `agent`; also makes its tools the callable ones."""
        builtin = CALL_TOOLS if self._call is not None and self._config.get("call_tools", True) else ()
        if any(tool.name in CALL_TOOL_NAMES for tool in agent.tools):
            builtin = ()  # an agent with call control of its own chose which it wants
        specs = await self._tools.use_agent(agent, self._context, builtin)
        return build_model_config(
            self._config,
            sample_rate=self._transport.sample_rate if self._transport is not None else None,
            instructions=await agent.get_system_prompt(self._context),
            voice=agent.voice,
            tools=specs,
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

    def _record_tool_output(self, call_id: str, output: str) -> None:
        item = self._history.tool_output(call_id, output)
        if item is not None:
            self._put_history(item)

    async def _send(self, command: RealtimeModelCommand) -> None:
        try:
            await self.model.send_event(command)
        except Exception as exc:  # a dropped model connection must not kill the audio path
            self._emit_error(exc, f"sending {command.type} to the model failed: {exc}")

    def _put_history(self, item: RealtimeItem) -> None:
        if self._history.put(item):
            self._emit(RealtimeHistoryAdded(item, self._info))
        else:
            self._emit(RealtimeHistoryUpdated(self._history.items, self._info))

    def _emit(self, event: RealtimeSessionEvent) -> None:
        if self._end_reason is None:
            self._events.put_nowait(event)

    def _emit_error(self, error: Any, message: str) -> None:
        self._log.warning("session error", error=message)
        self._emit(RealtimeError(error, message, self._info))

    async def _hook(self, name: str, *args: Any) -> None:
        try:
            await getattr(self._hooks, name)(*args)
        except Exception as exc:
            self._emit_error(exc, f"hook {name} failed: {exc}")

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
            self._log.exception("session task failed")
            self._failure = exc
            self._emit_error(exc, f"internal error: {exc}")
            self._finish("error", str(exc))

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
        self._log.info("session ended", end_reason=reason)

    def _resolve_model(self) -> RealtimeModel:
        model = self._model_arg if self._model_arg is not None else self._config.get("model")
        if isinstance(model, RealtimeModel):
            return model
        return create_model(model)

    def _sample_rate(self) -> int:
        if self._transport is not None:
            return self._transport.sample_rate
        return self._config.get("model_settings", {}).get("sample_rate", DEFAULT_SAMPLE_RATE)

    @staticmethod
    def _now() -> float:
        return asyncio.get_running_loop().time()


def _end_reason(reason: str) -> EndReason:
    text = reason.lower()
    if "timeout" in text:
        return "timeout"
    if "transfer" in text:
        return "transferred"
    if "agent" in text:
        return "agent_hung_up"
    return "caller_hung_up"


def _message_text(message: dict[str, Any]) -> str:
    parts = message.get("content", [])
    return " ".join(part.get("text", "") for part in parts if part.get("type") == "input_text")
