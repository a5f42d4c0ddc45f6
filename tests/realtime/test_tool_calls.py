"""`ToolCallRunner` alone, against a small `SessionPort` of the test's own (no session, no model)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from voicegw.contracts.model import ModelToolCall, RealtimeModelCommand, SendToolOutput
from voicegw.contracts.transport import EndReason
from voicegw.realtime import RealtimeAgent, RealtimeToolEnd, RealtimeToolStart, function_tool
from voicegw.realtime.context import RunContextWrapper
from voicegw.realtime.events import RealtimeError, RealtimeEventInfo, RealtimeSessionEvent
from voicegw.realtime.port import SessionPort
from voicegw.realtime.tool_calls import ToolCallRunner


class Port:
    """Records what the runner asks of its session."""

    def __init__(self) -> None:
        self.context = RunContextWrapper[Any](None)
        self.info = RealtimeEventInfo(self.context)
        self.sent: list[RealtimeModelCommand] = []
        self.events: list[RealtimeSessionEvent] = []
        self.errors: list[str] = []
        self.hooks: list[str] = []
        self.agents: list[RealtimeAgent[Any]] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.responses_started = 0
        self.ended: list[EndReason] = []

    async def send(self, command: RealtimeModelCommand) -> None:
        self.sent.append(command)

    def emit(self, event: RealtimeSessionEvent) -> None:
        self.events.append(event)

    def report_error(self, error: Any, message: str) -> None:
        self.errors.append(message)
        self.emit(RealtimeError(error, message, self.info))

    async def hook(self, name: str, *args: Any) -> None:
        self.hooks.append(name)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(coro)
        self.tasks.append(task)
        return task

    async def switch_agent(self, agent: RealtimeAgent[Any]) -> None:
        self.agents.append(agent)

    def speaking(self) -> bool:
        return False

    def pending_audio_ms(self) -> float:
        return 0.0

    def spoke_before(self, tool_call_id: str) -> bool:
        return False

    def end(self, reason: EndReason) -> None:
        self.ended.append(reason)


@function_tool
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


async def test_a_tool_call_goes_through_the_port_to_one_output() -> None:
    port = Port()
    session: SessionPort = port
    runner = ToolCallRunner(session, transport=None, filler_delay=0.0)
    agent = RealtimeAgent("A", tools=[add])
    specs = await runner.use_agent(agent, port.context)
    assert [spec.name for spec in specs] == ["add"]
    await runner.run(ModelToolCall("call_1", "add", '{"a": 2, "b": 3}'), agent)
    assert port.sent == [SendToolOutput("call_1", "5")]
    assert [type(e) for e in port.events] == [RealtimeToolStart, RealtimeToolEnd]
    assert port.hooks == ["on_tool_start", "on_tool_end"]
    assert port.tasks == []  # no transport: no filler tone to play


async def test_an_unknown_tool_is_an_error_event_and_an_output_the_model_can_act_on() -> None:
    port = Port()
    runner = ToolCallRunner(port, transport=None, filler_delay=None)
    agent = RealtimeAgent("A", tools=[add])
    await runner.use_agent(agent, port.context)
    await runner.run(ModelToolCall("call_1", "subtract", "{}"), agent)
    assert port.errors == ["the model called an unknown tool 'subtract'"]
    (output,) = port.sent
    assert isinstance(output, SendToolOutput) and "Available tools: add" in output.output
