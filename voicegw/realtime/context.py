"""The run context handed to instructions, tools, guardrails and hooks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic

from typing_extensions import TypeVar

from voicegw.contracts.model import Usage

if TYPE_CHECKING:
    from voicegw.realtime.call_tools import CallHandle

TContext = TypeVar("TContext", default=Any)
"""The type of the caller's context object (Any when not given)."""


@dataclass
class RunContextWrapper(Generic[TContext]):
    """Wraps the caller's context object; tools that declare it as first parameter receive it."""

    context: TContext
    """The object passed as ``context=`` to the runner or session (None when none was)."""

    usage: Usage = field(default_factory=Usage)
    """Model usage of the session so far."""

    call: CallHandle | None = None
    """The phone call under the session (who called, hang up, transfer, DTMF); None off the phone."""


@dataclass
class ToolContext(RunContextWrapper[TContext]):
    """The run context of one tool call: what a tool sees when it asks for its context."""

    tool_name: str = ""
    tool_call_id: str = ""
    tool_arguments: str = ""
