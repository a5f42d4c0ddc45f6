"""Tool calls that wait for the application's approval (`FunctionTool.needs_approval`).

A call of such a tool emits ``tool_approval_required`` and waits until the application answers
with `session.approve_tool_call(call_id)` or `session.reject_tool_call(call_id)`; ``always=True``
answers every later call of that tool the same way. A rejected call gives the model a rejection
message instead of the tool's output; the run config's ``tool_error_formatter`` words it, and the
message for a call of a tool that does not exist (`tool_error_message`).
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from voicegw.realtime.context import RunContextWrapper
from voicegw.realtime.tools import FunctionTool

REJECTION_MESSAGE = "Tool call rejected: the user did not approve running this tool."


@dataclass(frozen=True)
class ToolErrorFormatterArgs:
    """What a ``tool_error_formatter`` is given to word an error for the model."""

    kind: Literal["approval_rejected", "tool_not_found"]
    tool_type: Literal["function"]
    tool_name: str
    call_id: str
    default_message: str
    run_context: RunContextWrapper[Any]


@dataclass(frozen=True)
class _Decision:
    approved: bool
    message: str | None = None


class ToolApprovals:
    """The calls waiting for a decision, and the decisions given for good (``always=True``)."""

    def __init__(self) -> None:
        self._pending: dict[str, tuple[str, asyncio.Future[_Decision]]] = {}
        self._always: dict[str, bool] = {}

    async def decide_call(
        self,
        tool: FunctionTool,
        context: RunContextWrapper[Any],
        arguments: str,
        call_id: str,
        ask: Callable[[], None],
    ) -> tuple[bool, str | None]:
        """Whether call `call_id` may run, and the rejection message given with a refusal.

        A decision given for good answers at once; a tool that needs no approval runs; otherwise
        `ask()` tells the application, and the call waits for `decide`.
        """
        if tool.name in self._always:
            return self._always[tool.name], None
        if not await _needs_approval(tool, context, arguments, call_id):
            return True, None
        future: asyncio.Future[_Decision] = asyncio.get_running_loop().create_future()
        self._pending[call_id] = (tool.name, future)
        ask()
        try:
            decision = await future
        finally:
            self._pending.pop(call_id, None)
        return decision.approved, decision.message

    def decide(
        self, call_id: str, *, approved: bool, always: bool = False, message: str | None = None
    ) -> bool:
        """Answer call `call_id`; False when no call of that id is waiting."""
        pending = self._pending.get(call_id)
        if pending is None:
            return False
        tool_name, future = pending
        if always:
            self._always[tool_name] = approved
        if not future.done():
            future.set_result(_Decision(approved, message))
        return True


async def _needs_approval(
    tool: FunctionTool, context: RunContextWrapper[Any], arguments: str, call_id: str
) -> bool:
    check = tool.needs_approval
    if not callable(check):
        return bool(check)
    try:
        params = json.loads(arguments or "{}")
    except (ValueError, RecursionError):
        params = {}  # invalid arguments fail when the tool runs, with their own message
    result = check(context, params, call_id)
    return bool(await result if inspect.isawaitable(result) else result)


async def tool_error_message(
    formatter: Callable[[ToolErrorFormatterArgs], Any] | None,
    kind: Literal["approval_rejected", "tool_not_found"],
    tool_name: str,
    call_id: str,
    context: RunContextWrapper[Any],
    default: str,
) -> str:
    """The model's output for a tool error: the run's ``tool_error_formatter``'s words (it may be
    async; None or a non-string keeps `default`), else `default`."""
    if formatter is None:
        return default
    worded = formatter(ToolErrorFormatterArgs(kind, "function", tool_name, call_id, default, context))
    if inspect.isawaitable(worded):
        worded = await worded
    return worded if isinstance(worded, str) else default
