"""Running the model's function calls for a session: tools, handoffs, and the filler while they run.

Each call runs in a task the session owns, so a slow tool never stalls audio. Every call ends in
exactly one `SendToolOutput`: the tool's result, or an error text the model can act on (invalid
JSON arguments, an unknown tool, an exception in the tool). A tool still running after the
filler delay gets a soft thinking tone on the line until its result is in.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any

import structlog

from voicegw.models.base import ModelToolCall, RealtimeModelCommand, SendToolOutput, ToolSpec
from voicegw.realtime.agent import RealtimeAgent
from voicegw.realtime.context import RunContextWrapper, ToolContext
from voicegw.realtime.events import RealtimeSessionEvent, RealtimeToolEnd, RealtimeToolStart
from voicegw.realtime.filler import PERIOD_MS, thinking_tone
from voicegw.realtime.handoffs import Handoff
from voicegw.realtime.tools import FunctionTool, ToolArgumentsError, invoke_function_tool, parse_arguments
from voicegw.realtime.transport import AudioTransport, TransportClosed

FILLER_ITEM_ID = "voicegw_filler"
FILLER_CHUNK_MS = 3 * PERIOD_MS
"""Tone queued at a time; topped up when half of it is left, flushed the moment the result is in."""

log = structlog.get_logger()


class ToolCallRunner:
    """The tools and handoffs of the current agent, and the calls of them in progress."""

    def __init__(
        self,
        *,
        send: Callable[[RealtimeModelCommand], Awaitable[None]],
        emit: Callable[[RealtimeSessionEvent], None],
        emit_error: Callable[[Any, str], None],
        hook: Callable[..., Awaitable[None]],
        spawn: Callable[[Coroutine[Any, Any, None]], asyncio.Task[None]],
        switch_agent: Callable[[RealtimeAgent[Any]], Awaitable[None]],
        record_output: Callable[[str, str], None],
        context: RunContextWrapper[Any],
        info: Any,
        transport: AudioTransport | None,
        filler_delay: float | None,
        agent_audio_pending_ms: Callable[[], float],
    ) -> None:
        self._send = send
        self._emit = emit
        self._emit_error = emit_error
        self._hook = hook
        self._spawn = spawn
        self._switch_agent = switch_agent
        self._record_output = record_output
        self._context = context
        self._info = info
        self._transport = transport
        self._filler_delay = filler_delay
        self._agent_audio_pending_ms = agent_audio_pending_ms
        self._tools: dict[str, FunctionTool] = {}
        self._handoffs: dict[str, Handoff] = {}
        self._running: set[str] = set()
        self._filler_timer: asyncio.TimerHandle | None = None
        self._filler_task: asyncio.Task[None] | None = None
        self._filler_queued = False

    async def use_agent(
        self,
        agent: RealtimeAgent[Any],
        context: RunContextWrapper[Any],
        builtin: Sequence[FunctionTool] = (),
    ) -> tuple[ToolSpec, ...]:
        """Make `agent`'s tools and enabled handoffs the callable ones; their specs for the model.

        `builtin` tools (call control) come after the agent's; an agent tool of the same name wins.
        """
        self._tools = {tool.name: tool for tool in agent.tools}
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
            self._emit_error(call, f"the model called an unknown tool {call.name!r}")
            await self._output(call, output)
            return
        ctx = ToolContext(
            self._context.context,
            self._context.usage,
            self._context.call,
            tool_name=call.name,
            tool_call_id=call.call_id,
            tool_arguments=call.arguments,
        )
        self._emit(RealtimeToolStart(agent, tool, call.arguments, call.call_id, self._info))
        await self._hook("on_tool_start", self._context, agent, tool)
        self._started(call.call_id)
        try:
            output = await self._invoke(tool, ctx, call)
        finally:
            self._finished(call.call_id)
        self._emit(RealtimeToolEnd(agent, tool, call.arguments, output, call.call_id, self._info))
        log.info("tool_call", tool=call.name, arguments=call.arguments, output=output[:200])
        await self._hook("on_tool_end", self._context, agent, tool, output)
        await self._output(call, output)

    async def _invoke(self, tool: FunctionTool, ctx: ToolContext[Any], call: ModelToolCall) -> str:
        try:
            parse_arguments(call.arguments, tool.params_json_schema)
        except ToolArgumentsError as exc:
            self._emit_error(exc, f"invalid arguments for tool {call.name!r}: {exc}")
            return (
                f"Error: invalid arguments for tool {call.name!r}: {exc}. Call it again with valid arguments."
            )
        try:
            return await invoke_function_tool(tool, ctx, call.arguments)
        except Exception as exc:  # failure_error_function=None: still the model must get an answer
            self._emit_error(exc, f"tool {call.name!r} failed: {exc}")
            return f"Error: the tool {call.name!r} failed: {exc}"

    async def _run_handoff(self, call: ModelToolCall, handoff: Handoff) -> None:
        try:
            agent = await handoff.invoke(self._context, call.arguments)
        except ToolArgumentsError as exc:
            self._emit_error(exc, f"invalid arguments for handoff {call.name!r}: {exc}")
            await self._output(call, f"Error: invalid arguments for {call.name!r}: {exc}")
            return
        await self._switch_agent(agent)
        await self._output(call, handoff.transfer_message())

    async def _output(self, call: ModelToolCall, output: str) -> None:
        self._record_output(call.call_id, output)
        await self._send(SendToolOutput(call.call_id, output))

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
            self._filler_task = self._spawn(self._play_filler())

    async def _play_filler(self) -> None:
        assert self._transport is not None
        transport = self._transport
        await asyncio.sleep(self._agent_audio_pending_ms() / 1000)  # let the agent finish its sentence
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
