"""Lifecycle hooks: override the methods you care about; each is awaited by the session."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generic

from voicegw.realtime.context import RunContextWrapper, TContext
from voicegw.realtime.tools import FunctionTool

if TYPE_CHECKING:
    from voicegw.realtime.agent import RealtimeAgent


class _ToolHooks(Generic[TContext]):
    """The tool callbacks, the same for a run's hooks and an agent's."""

    async def on_tool_start(
        self, context: RunContextWrapper[TContext], agent: RealtimeAgent[Any], tool: FunctionTool
    ) -> None:
        """A tool is about to run."""

    async def on_tool_end(
        self, context: RunContextWrapper[TContext], agent: RealtimeAgent[Any], tool: FunctionTool, result: str
    ) -> None:
        """A tool finished; `result` is the output the model gets."""


class RealtimeRunHooks(_ToolHooks[TContext]):
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


class RealtimeAgentHooks(_ToolHooks[TContext]):
    """Callbacks on the life of one agent, set as ``RealtimeAgent(hooks=...)`` (the Agents SDK's
    `AgentHooks`: same names and arguments). A hook that raises becomes an ``error`` event."""

    async def on_start(self, context: RunContextWrapper[TContext], agent: RealtimeAgent[Any]) -> None:
        """This agent became the active one (at start, or handed off to)."""

    async def on_end(
        self, context: RunContextWrapper[TContext], agent: RealtimeAgent[Any], output: Any
    ) -> None:
        """This agent stopped being the active one."""

    async def on_handoff(
        self, context: RunContextWrapper[TContext], agent: RealtimeAgent[Any], source: RealtimeAgent[Any]
    ) -> None:
        """The conversation is being handed to this agent by `source`."""


def agent_hook(
    name: str, args: tuple[Any, ...]
) -> tuple[RealtimeAgentHooks[Any], str, tuple[Any, ...]] | None:
    """The agent hook that run hook `name` called with `args` implies: (hooks, method, arguments),
    or None when the agent concerned has no hooks."""
    match name, args:
        case "on_agent_start", (context, agent):
            return _of(agent, "on_start", (context, agent))
        case "on_agent_end", (context, agent, output):
            return _of(agent, "on_end", (context, agent, output))
        case "on_handoff", (context, from_agent, to_agent):
            return _of(to_agent, "on_handoff", (context, to_agent, from_agent))
        case (("on_tool_start" | "on_tool_end"), (context, agent, *rest)):
            return _of(agent, name, (context, agent, *rest))
    return None


def _of(
    agent: RealtimeAgent[Any], method: str, args: tuple[Any, ...]
) -> tuple[RealtimeAgentHooks[Any], str, tuple[Any, ...]] | None:
    return (agent.hooks, method, args) if agent.hooks is not None else None
