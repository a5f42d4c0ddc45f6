"""`RealtimeAgent`: who the caller is talking to — instructions, voice, tools, handoffs, guardrails."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeAlias

from voicegw.realtime.context import RunContextWrapper, TContext
from voicegw.realtime.guardrails import OutputGuardrail
from voicegw.realtime.handoffs import Handoff, as_handoff
from voicegw.realtime.hooks import RealtimeAgentHooks, RealtimeRunHooks
from voicegw.realtime.tools import FunctionTool

__all__ = ["RealtimeAgent", "RealtimeAgentHooks", "RealtimeRunHooks"]

Instructions: TypeAlias = (
    str | Callable[[RunContextWrapper[Any], "RealtimeAgent[Any]"], str | Awaitable[str]] | None
)


@dataclass
class RealtimeAgent(Generic[TContext]):
    """An agent for a realtime voice conversation.

    Keep instructions voice-shaped: short sentences, no lists or markup, one question at a time.
    Change an agent with `clone(**changes)`, not by mutating one that a session is using.
    """

    name: str
    instructions: Instructions = None
    """The system prompt, or a function ``(ctx, agent) -> str`` (sync or async) that makes it."""

    handoff_description: str | None = None
    """What this agent is for, told to the agents that can hand off to it."""

    tools: list[FunctionTool] = field(default_factory=list)
    handoffs: list[RealtimeAgent[Any] | Handoff] = field(default_factory=list)
    output_guardrails: list[OutputGuardrail] = field(default_factory=list)
    voice: str | None = None
    """The voice of this agent (None: the run's model settings decide)."""

    greeting: str | None = None
    """Said verbatim as soon as the session starts, before the caller says anything."""

    greeting_instructions: str | None = None
    """Or: how to greet — the model composes the greeting from these when the session starts."""

    prompt: Mapping[str, Any] | None = None
    """A stored prompt of the OpenAI platform (``{"id": ..., "version": ..., "variables": ...}``),
    sent with the session; the embedded model refuses it (it cannot fetch one)."""

    hooks: RealtimeAgentHooks[Any] | None = None
    """Callbacks on this agent's life (start, end, handoff to it, its tools)."""

    mcp_servers: list[Any] = field(default_factory=list)
    """The Agents SDK's MCP servers: voicegw runs none, so a non-empty list is refused."""

    mcp_config: dict[str, Any] = field(default_factory=dict)
    """The Agents SDK's MCP settings (meaningless without MCP servers)."""

    dtmf_menu: dict[str, str] = field(default_factory=dict)
    """A keypad menu: a key the caller presses reaches the model as these words of the caller
    (``{"1": "What are your opening hours?"}``), as if said; other keys follow `dtmf_as_text`."""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"RealtimeAgent name must be a non-empty string, got {self.name!r}")
        instructions = self.instructions
        if instructions is not None and not (isinstance(instructions, str) or callable(instructions)):
            raise TypeError(
                f"RealtimeAgent instructions must be a string, a callable or None, "
                f"got {type(self.instructions).__name__}"
            )
        for name in ("tools", "handoffs", "output_guardrails"):
            value = getattr(self, name)
            if not isinstance(value, list):
                raise TypeError(f"RealtimeAgent {name} must be a list, got {type(value).__name__}")
        if self.mcp_servers:
            raise ValueError(
                "RealtimeAgent mcp_servers: voicegw does not run MCP servers; give the agent function tools"
            )
        if self.greeting is not None and self.greeting_instructions is not None:
            raise ValueError("RealtimeAgent takes greeting or greeting_instructions, not both")

    def clone(self, **changes: Any) -> RealtimeAgent[TContext]:
        """A copy with `changes` applied (a shallow copy: lists not passed are shared)."""
        return dataclasses.replace(self, **changes)

    async def get_system_prompt(self, run_context: RunContextWrapper[TContext]) -> str | None:
        """The instructions for this run (calling the instructions function when there is one)."""
        if self.instructions is None or isinstance(self.instructions, str):
            return self.instructions
        result = self.instructions(run_context, self)
        return await result if inspect.isawaitable(result) else result

    async def get_handoffs(self, run_context: RunContextWrapper[TContext]) -> list[Handoff]:
        """The enabled handoffs, agents listed directly turned into default handoffs."""
        handoffs = [as_handoff(item) for item in self.handoffs]
        return [h for h in handoffs if await h.enabled(run_context, self)]
