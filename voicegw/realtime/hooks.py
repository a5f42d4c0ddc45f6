"""Lifecycle hooks: override the methods you care about; each is awaited by the session."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generic

from voicegw.realtime.context import RunContextWrapper, TContext
from voicegw.realtime.tools import FunctionTool

if TYPE_CHECKING:
    from voicegw.realtime.agent import RealtimeAgent


class RealtimeRunHooks(Generic[TContext]):
    """Callbacks on the life of a run, as the Agents SDK's `RunHooks` (same names and arguments).

    A hook that raises becomes an ``error`` event; the session goes on.
    """

    async def on_agent_start(self, context: RunContextWrapper[TContext], agent: RealtimeAgent[Any]) -> None:
        """An agent became the active one (at start and after a handoff)."""

    async def on_agent_end(
        self, context: RunContextWrapper[TContext], agent: RealtimeAgent[Any], output: Any
    ) -> None:
        """An agent stopped being the active one (a handoff, or the end of the session)."""

    async def on_handoff(
        self,
        context: RunContextWrapper[TContext],
        from_agent: RealtimeAgent[Any],
        to_agent: RealtimeAgent[Any],
    ) -> None:
        """The conversation is handed from one agent to another."""

    async def on_tool_start(
        self, context: RunContextWrapper[TContext], agent: RealtimeAgent[Any], tool: FunctionTool
    ) -> None:
        """A tool is about to run."""

    async def on_tool_end(
        self, context: RunContextWrapper[TContext], agent: RealtimeAgent[Any], tool: FunctionTool, result: str
    ) -> None:
        """A tool finished; `result` is the output the model gets."""
