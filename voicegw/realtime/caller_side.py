"""The caller's side of a session: the transport's audio and call events, turns, the idle timeout.

`CallerSide` is a part of `RealtimeSession` (a mixin: the session is the only class that uses it):
caller frames go to the model, through server-side turn detection when the model has none; DTMF,
call-state changes and transfer results become events (and end the session when the call ends).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any

from voicegw.contracts.latency import caller_audio_received
from voicegw.contracts.model import CommitAudio, CreateResponse, RealtimeModelCommand, SendAudio
from voicegw.contracts.transport import (
    AnsweringMachineDetected,
    AudioTransport,
    CallStateChanged,
    DtmfReceived,
    EndReason,
    TransferResult,
)
from voicegw.realtime.agent import RealtimeAgent
from voicegw.realtime.config import RealtimeRunConfig, RealtimeUserInput, resolve_turn_detection
from voicegw.realtime.events import (
    RealtimeAnsweringMachine,
    RealtimeCallState,
    RealtimeDtmf,
    RealtimeEventInfo,
    RealtimeInputAudioTimeoutTriggered,
    RealtimeSessionEvent,
    RealtimeTransferResult,
    VoicegwSessionEvent,
)
from voicegw.realtime.idle import IdleTimeout
from voicegw.realtime.turns import ForwardAudio, ServerTurnDetector, TurnEnded, TurnStarted

CALL_EVENTS_GRACE_S = 0.5
"""How long the end of the caller's audio waits for the call event that says why it ended."""


class CallerSide:
    """The caller's side, as a part of `RealtimeSession` (which provides the attributes below)."""

    _transport: AudioTransport | None
    _config: RealtimeRunConfig
    _info: RealtimeEventInfo
    _idle: IdleTimeout | None
    _turns: ServerTurnDetector | None
    _turn_ended_at: float | None
    _send: Callable[[RealtimeModelCommand], Awaitable[None]]
    _emit: Callable[[RealtimeSessionEvent | VoicegwSessionEvent], None]
    _emit_error: Callable[[Any, str], None]
    _spawn: Callable[[Coroutine[Any, Any, None]], Any]
    _finish: Callable[..., None]
    _barge_in: Callable[[], Awaitable[None]]
    _now: Callable[[], float]
    send_message: Callable[[RealtimeUserInput], Awaitable[None]]

    # --- the caller's idle timeout --------------------------------------------------------------

    if TYPE_CHECKING:

        @property
        def current_agent(self) -> RealtimeAgent[Any]: ...

    def _caller_active(self) -> None:
        if self._idle is not None:
            self._idle.cancel()

    def _caller_idle(self) -> None:
        self._spawn(self._on_caller_idle())

    async def _on_caller_idle(self) -> None:
        self._emit(RealtimeInputAudioTimeoutTriggered(self._info))
        settings = resolve_turn_detection(self._config)
        if settings is not None and settings.create_response:
            await self._send(CreateResponse())

    # --- the caller's side -------------------------------------------------------------------

    async def _pump_caller_audio(self, call_events: asyncio.Task[None]) -> None:
        assert self._transport is not None
        try:
            async for frame in self._transport.frames():
                # The model's send times the frame from its arrival (voicegw.contracts.latency).
                caller_audio_received.set(frame.received_at)
                await self._caller_audio(frame.pcm)
        except Exception as exc:
            self._emit_error(exc, f"the transport failed: {exc}")
            self._finish(EndReason.ERROR, str(exc))
            return
        # The audio ended; the call's last state change (who hung up, a transfer) says why.
        await asyncio.wait({call_events}, timeout=CALL_EVENTS_GRACE_S)
        self._finish(EndReason.CALLER_HUNG_UP)

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
                case CallStateChanged(state=state, reason=reason, end_reason=end_reason):
                    self._emit(RealtimeCallState(state, reason, self._info, end_reason))
                    if state == "transferred":
                        self._finish(EndReason.TRANSFERRED)
                    elif state == "ended":
                        self._finish(end_reason or EndReason.CALLER_HUNG_UP)
                case TransferResult(target=target, accepted=accepted, status_code=code):
                    self._emit(RealtimeTransferResult(target, accepted, code, self._info))
                case AnsweringMachineDetected(verdict=verdict, decided_ms=decided_ms, cause=cause):
                    self._emit(RealtimeAnsweringMachine(verdict, decided_ms, cause, self._info))

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
                    self._caller_active()
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
