"""`SessionAdapter`: a `RealtimeSession` as its tool calls and call control see it (`SessionPort`)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from voicegw.contracts.model import RealtimeModelCommand
from voicegw.contracts.transport import EndReason
from voicegw.realtime.agent import RealtimeAgent
from voicegw.realtime.context import RunContextWrapper
from voicegw.realtime.events import RealtimeEventInfo, RealtimeSessionEvent

if TYPE_CHECKING:
    from voicegw.realtime.session import RealtimeSession


class SessionAdapter:
    """The session as its tool calls and call control see it (`SessionPort`)."""

    def __init__(self, session: RealtimeSession) -> None:
        self._session = session

    @property
    def context(self) -> RunContextWrapper[Any]:
        return self._session._context

    @property
    def info(self) -> RealtimeEventInfo:
        return self._session._info

    async def send(self, command: RealtimeModelCommand) -> None:
        await self._session._send(command)

    def emit(self, event: RealtimeSessionEvent) -> None:
        self._session._emit(event)

    def report_error(self, error: Any, message: str) -> None:
        self._session._emit_error(error, message)

    async def hook(self, name: str, *args: Any) -> None:
        await self._session._hook(name, *args)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        return self._session._spawn(coro)

    async def switch_agent(self, agent: RealtimeAgent[Any]) -> None:
        await self._session._switch_agent(agent)

    @property
    def responses_started(self) -> int:
        return self._session._responses_started

    def speaking(self) -> bool:
        return self._session._playback.speaking()

    def pending_audio_ms(self) -> float:
        return self._session._playback.pending_ms()

    def spoke_before(self, tool_call_id: str) -> bool:
        return self._session._tool_call_spoke(tool_call_id)

    def end(self, reason: EndReason) -> None:
        self._session._finish(reason)
