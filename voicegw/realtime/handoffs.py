"""Handoffs: an agent passes the conversation to another agent mid-call.

The model sees each handoff as a tool named ``transfer_to_<agent name>``; when it calls one, the
session switches agents and reconfigures the model with the new agent's instructions, voice and
tools. `handoff(agent, ...)` customises the tool; listing an agent directly in
`RealtimeAgent.handoffs` uses the defaults.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

from pydantic import TypeAdapter, ValidationError

from voicegw.contracts.model import ToolSpec
from voicegw.realtime.context import RunContextWrapper
from voicegw.realtime.tools import IsEnabled, ToolArgumentsError, enabled, parse_arguments, tool_output_text

if TYPE_CHECKING:
    from voicegw.realtime.agent import RealtimeAgent

OnHandoff: TypeAlias = Callable[[RunContextWrapper[Any]], Any] | Callable[[RunContextWrapper[Any], Any], Any]

_NO_ARGUMENTS: dict[str, Any] = {
    "type": "object",
    "properties": {},
    "required": [],
    "additionalProperties": False,
}


def default_tool_name(agent: RealtimeAgent[Any]) -> str:
    """``transfer_to_`` and the agent's name in lower snake case (what the Agents SDK uses)."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", f"transfer_to_{agent.name}").lower()


@dataclass(frozen=True)
class Handoff:
    """A handoff to `agent`, shown to the model as the tool `tool_name`."""

    agent: RealtimeAgent[Any]
    tool_name: str
    tool_description: str
    input_json_schema: dict[str, Any]
    on_handoff: OnHandoff | None = None
    """Called with the run context (and the parsed input, when the schema has properties)."""

    is_enabled: IsEnabled = True

    input_type: type[Any] | None = None
    """The type the input is validated into (the SDK's ``input_type``: a pydantic model, a
    dataclass, a TypedDict); None: `on_handoff` gets the arguments as a dict."""

    @property
    def agent_name(self) -> str:
        return self.agent.name

    def spec(self) -> ToolSpec:
        return ToolSpec(self.tool_name, self.tool_description, self.input_json_schema)

    async def enabled(self, ctx: RunContextWrapper[Any], agent: RealtimeAgent[Any]) -> bool:
        return await enabled(self.is_enabled, ctx, agent)

    async def invoke(self, ctx: RunContextWrapper[Any], arguments: str) -> RealtimeAgent[Any]:
        """Run `on_handoff` and return the agent to switch to; bad arguments raise `ToolArgumentsError`."""
        values: Any = parse_arguments(arguments, self.input_json_schema)
        if self.input_type is not None:
            try:
                values = TypeAdapter(self.input_type).validate_python(values)
            except ValidationError as exc:
                raise ToolArgumentsError(str(exc)) from None
        if self.on_handoff is not None:
            takes_input = bool(self.input_json_schema["properties"])
            result = self.on_handoff(ctx, values) if takes_input else self.on_handoff(ctx)  # type: ignore[call-arg]
            if inspect.isawaitable(result):
                await result
        return self.agent

    def transfer_message(self) -> str:
        """The tool output the model gets when the handoff is done."""
        return tool_output_text({"assistant": self.agent.name})


def handoff(
    agent: RealtimeAgent[Any],
    *,
    tool_name_override: str | None = None,
    tool_description_override: str | None = None,
    on_handoff: OnHandoff | None = None,
    input_json_schema: dict[str, Any] | None = None,
    is_enabled: IsEnabled = True,
    input_type: type[Any] | None = None,
) -> Handoff:
    """A handoff to `agent`. With `input_json_schema`, the model passes an input object that
    `on_handoff(ctx, input)` receives (as a dict); with `input_type` (the SDK's form), the input is
    validated into that type and its schema comes from it; without, `on_handoff(ctx)` is called."""
    if input_type is not None:
        if input_json_schema is not None:
            raise ValueError("handoff takes input_type or input_json_schema, not both")
        input_json_schema = _strict(TypeAdapter(input_type).json_schema())
    description = (
        f"Handoff to the {agent.name} agent to handle the request. {agent.handoff_description or ''}"
    )

    return Handoff(
        agent=agent,
        tool_name=tool_name_override or default_tool_name(agent),
        tool_description=tool_description_override or description.strip(),
        input_json_schema=input_json_schema or _NO_ARGUMENTS,
        on_handoff=on_handoff,
        is_enabled=is_enabled,
        input_type=input_type,
    )


def _strict(schema: dict[str, Any]) -> dict[str, Any]:
    """A flat object schema as strict function calling wants it (every property required, no other)."""
    if schema.get("type") != "object" or "$defs" in schema:
        raise ValueError("handoff input_type must be a flat object type (fields of plain JSON types)")
    properties = {
        name: {k: v for k, v in prop.items() if k != "title"} for name, prop in schema["properties"].items()
    }
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


realtime_handoff = handoff
"""The Agents SDK's name for `handoff`."""


def as_handoff(item: RealtimeAgent[Any] | Handoff) -> Handoff:
    return item if isinstance(item, Handoff) else handoff(item)
