"""`SessionPort`: the one seam through which a session's helpers act on it.

Tool calls (`ToolCallRunner`) and call control (`CallHandle`) need a few of the session's
powers: send a model command, emit an event, run a hook, own a task, hand off to another agent,
know whether the agent is speaking, end the session. They get them through this protocol rather
than a bundle of callbacks, so each can be tested against a small fake and the session's inside
stays its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, Protocol

from voicegw.contracts.model import RealtimeModelCommand
from voicegw.contracts.transport import EndReason
from voicegw.realtime.agent import RealtimeAgent
from voicegw.realtime.context import RunContextWrapper
from voicegw.realtime.events import RealtimeEventInfo, RealtimeSessionEvent


class SessionPort(Protocol):
    """What a session offers the helpers that act for it."""

    @property
    def context(self) -> RunContextWrapper[Any]:
        """The run context (tools get theirs from it)."""
        ...

    @property
    def info(self) -> RealtimeEventInfo:
        """What every session event carries."""
        ...

    async def send(self, command: RealtimeModelCommand) -> None:
        """Send a command to the model; a tool output is also recorded in the history."""
        ...

    def emit(self, event: RealtimeSessionEvent) -> None:
        """Hand an event to the session's consumers."""
        ...

    def report_error(self, error: Any, message: str) -> None:
        """Log `message` and emit it as an ``error`` event; the session goes on."""
        ...

    async def hook(self, name: str, *args: Any) -> None:
        """Run the run hook `name` (a failing hook becomes an ``error`` event)."""
        ...

    def spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run `coro` as a task the session owns: cancelled and awaited when it closes."""
        ...

    async def switch_agent(self, agent: RealtimeAgent[Any]) -> None:
        """Hand the conversation to `agent` (a handoff)."""
        ...

    @property
    def responses_started(self) -> int:
        """How many responses the model has started so far."""
        ...

    def speaking(self) -> bool:
        """Whether agent audio is still being generated or played."""
        ...

    def pending_audio_ms(self) -> float:
        """Agent audio sent to the transport and not yet played, in ms."""
        ...

    def spoke_before(self, tool_call_id: str) -> bool:
        """Whether the response that made this tool call also spoke to the caller."""
        ...

    def end(self, reason: EndReason) -> None:
        """End the session for `reason` (the call is over)."""
        ...
