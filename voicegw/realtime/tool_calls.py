"""Running the model's function calls for a session: tools, handoffs, and the filler while they run.

Each call runs in a task the session owns, so a slow tool never stalls audio. Every call ends in
exactly one `SendToolOutput`: the tool's result, or an error text the model can act on (invalid
JSON arguments, an unknown tool, an exception in the tool). A tool still running after the
filler delay gets a soft thinking tone on the line until its result is in.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import structlog

from voicegw.contracts.model import ModelToolCall, SendToolOutput, ToolSpec
from voicegw.contracts.transport import AudioTransport, TransportClosed
from voicegw.realtime.agent import RealtimeAgent
from voicegw.realtime.approvals import (
    REJECTION_MESSAGE,
    ToolApprovals,
    ToolErrorFormatterArgs,
    tool_error_message,
)
from voicegw.realtime.context import RunContextWrapper, ToolContext
from voicegw.realtime.events import RealtimeToolApprovalRequired, RealtimeToolEnd, RealtimeToolStart
from voicegw.realtime.filler import PERIOD_MS, thinking_tone
from voicegw.realtime.handoffs import Handoff
from voicegw.realtime.port import SessionPort
from voicegw.realtime.tools import (
    FunctionTool,
    ToolArgumentsError,
    enabled,
    invoke_function_tool,
    parse_arguments,
)

FILLER_ITEM_ID = "voicegw_filler"
FILLER_CHUNK_MS = 3 * PERIOD_MS
"""Tone queued at a time; topped up when half of it is left, flushed the moment the result is in."""

log = structlog.get_logger()


class ToolCallRunner:
    """The tools and handoffs of the current agent, and the calls of them in progress."""

    def __init__(
        self, session: SessionPort, *, transport: AudioTransport | None, filler_delay: float | None
    ) -> None:
        """`filler_delay`: seconds a tool may run before the tone starts (None: never); the tone
        needs a `transport` to play on."""
        self._session = session
        self._transport = transport
        self._filler_delay = filler_delay
        self._tools: dict[str, FunctionTool] = {}
        self._handoffs: dict[str, Handoff] = {}
        self._running: set[str] = set()
        self._filler_timer: asyncio.TimerHandle | None = None
        self._filler_task: asyncio.Task[None] | None = None
        self._filler_queued = False
        self.approvals = ToolApprovals()
        self.error_formatter: Callable[[ToolErrorFormatterArgs], Any] | None = None

    async def use_agent(
        self,
        agent: RealtimeAgent[Any],
        context: RunContextWrapper[Any],
        builtin: Sequence[FunctionTool] = (),
    ) -> tuple[ToolSpec, ...]:
        """Make `agent`'s tools and enabled handoffs the callable ones; their specs for the model.

        `builtin` tools (call control) come after the agent's; an agent tool of the same name wins.
        """
        self._tools = {
            tool.name: tool for tool in agent.tools if await enabled(tool.is_enabled, context, agent)
        }
        for tool in builtin:
            self._tools.setdefault(tool.name, tool)
        self._handoffs = {h.tool_name: h for h in await agent.get_handoffs(context)}
        return tuple(t.spec() for t in self._tools.values()) + tuple(
            h.spec() for h in self._handoffs.values()
        )

    async def run(self, call: ModelToolCall, agent: RealtimeAgent[Any]) -> None:
        """Run one call to its single `SendToolOutput`."""
        if (handoff := self._handoffs.get(call.name)) is not None:
            await self._run_handoff(call, handoff)
            return
        tool = self._tools.get(call.name)
        if tool is None:
            available = ", ".join([*self._tools, *self._handoffs]) or "none"
            output = f"Error: there is no tool named {call.name!r}. Available tools: {available}."
            self._session.report_error(call, f"the model called an unknown tool {call.name!r}")
            await self._output(
                call,
                await tool_error_message(
                    self.error_formatter,
                    "tool_not_found",
                    call.name,
                    call.call_id,
                    self._session.context,
                    output,
                ),
            )
            return
        session = self._session
        ctx = ToolContext(
            session.context.context,
            session.context.usage,
            session.context.call,
            tool_name=call.name,
            tool_call_id=call.call_id,
            tool_arguments=call.arguments,
        )
        approved, message = await self.approvals.decide_call(
            tool,
            ctx,
            call.arguments,
            call.call_id,
            ask=lambda: session.emit(
                RealtimeToolApprovalRequired(agent, tool, call.call_id, call.arguments, session.info)
            ),
        )
        if not approved:
            await self._output(
                call,
                message
                or await tool_error_message(
                    self.error_formatter, "approval_rejected", tool.name, call.call_id, ctx, REJECTION_MESSAGE
                ),
            )
            return
        session.emit(RealtimeToolStart(agent, tool, call.arguments, call.call_id, session.info))
        await session.hook("on_tool_start", session.context, agent, tool)
        self._started(call.call_id)
        try:
            output = await self._invoke(tool, ctx, call)
        finally:
            self._finished(call.call_id)
        session.emit(RealtimeToolEnd(agent, tool, call.arguments, output, call.call_id, session.info))
        log.info("tool_call", tool=call.name, arguments=call.arguments, output=output[:200])
        await session.hook("on_tool_end", session.context, agent, tool, output)
        await self._output(call, output)

    async def _invoke(self, tool: FunctionTool, ctx: ToolContext[Any], call: ModelToolCall) -> str:
        try:
            parse_arguments(call.arguments, tool.params_json_schema)
        except ToolArgumentsError as exc:
            self._session.report_error(exc, f"invalid arguments for tool {call.name!r}: {exc}")
            return (
                f"Error: invalid arguments for tool {call.name!r}: {exc}. Call it again with valid arguments."
            )
        try:
            return await invoke_function_tool(tool, ctx, call.arguments)
        except Exception as exc:  # failure_error_function=None: still the model must get an answer
            self._session.report_error(exc, f"tool {call.name!r} failed: {exc}")
            return f"Error: the tool {call.name!r} failed: {exc}"

    async def _run_handoff(self, call: ModelToolCall, handoff: Handoff) -> None:
        try:
            agent = await handoff.invoke(self._session.context, call.arguments)
        except ToolArgumentsError as exc:
            self._session.report_error(exc, f"invalid arguments for handoff {call.name!r}: {exc}")
            await self._output(call, f"Error: invalid arguments for {call.name!r}: {exc}")
            return
        await self._session.switch_agent(agent)
        await self._output(call, handoff.transfer_message())

    async def _output(self, call: ModelToolCall, output: str) -> None:
        await self._session.send(SendToolOutput(call.call_id, output))

    # --- the filler ------------------------------------------------------------------------

    def _started(self, call_id: str) -> None:
        self._running.add(call_id)
        if self._transport is None or self._filler_delay is None or self._filler_timer or self._filler_task:
            return
        self._filler_timer = asyncio.get_running_loop().call_later(self._filler_delay, self._start_filler)

    def _finished(self, call_id: str) -> None:
        self._running.discard(call_id)
        if not self._running:
            self.stop_filler()

    def _start_filler(self) -> None:
        self._filler_timer = None
        if self._running:
            self._filler_task = self._session.spawn(self._play_filler())

    async def _play_filler(self) -> None:
        assert self._transport is not None
        transport = self._transport
        await asyncio.sleep(self._session.pending_audio_ms() / 1000)  # let the agent finish its sentence
        tone = thinking_tone(transport.sample_rate, FILLER_CHUNK_MS)
        queued_ms = 0
        already_played = transport.played_ms(FILLER_ITEM_ID)  # by earlier fillers of this call
        while True:
            if queued_ms - (transport.played_ms(FILLER_ITEM_ID) - already_played) < FILLER_CHUNK_MS // 2:
                try:
                    await transport.play(tone, item_id=FILLER_ITEM_ID)
                except TransportClosed:
                    return  # the caller hung up during the tool call: a normal end, not a failure
                queued_ms += FILLER_CHUNK_MS
                self._filler_queued = True
            await asyncio.sleep(FILLER_CHUNK_MS / 4000)

    def stop_filler(self) -> None:
        """Stop the tone (a result is in, or the agent speaks again) and drop what is queued of it."""
        if self._filler_timer is not None:
            self._filler_timer.cancel()
            self._filler_timer = None
        if self._filler_task is not None:
            self._filler_task.cancel()
            self._filler_task = None
        if self._filler_queued and self._transport is not None:
            self._transport.flush()
        self._filler_queued = False

    def filler_flushed(self) -> None:
        """The transport was flushed by someone else (a barge-in): no tone is queued any more."""
        self._filler_queued = False
