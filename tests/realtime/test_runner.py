"""The two runner forms: the spec's `RealtimeRunner.run(agent, session=...)` and the SDK's."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from tests.realtime.helpers import RATE
from voicegw.contracts.model import CreateResponse, SendToolOutput, Usage
from voicegw.models.testing import ScriptedModel, ScriptStep, speech, tool_call
from voicegw.realtime import (
    RealtimeAgent,
    RealtimeResult,
    RealtimeRunConfig,
    RealtimeRunHooks,
    RealtimeRunner,
    RealtimeSession,
    RealtimeSessionEvent,
    RunContextWrapper,
    function_tool,
)
from voicegw.transports.testing import FakeTransport, settle

CONFIG: RealtimeRunConfig = {"turn_detection": None}


@function_tool
def opening_hours(day: str) -> str:
    """Opening hours of the shop.

    Args:
        day: Day of the week.
    """
    return "9 to 5"


AGENT = RealtimeAgent("Shop", instructions="Be brief.", tools=[opening_hours], greeting="Hi, Acme shop.")


def script() -> ScriptedModel:
    usage = Usage(input_tokens=7, output_tokens=3, total_tokens=10)
    greeting = speech(
        "Hi, Acme shop.", sample_rate=RATE, duration_ms=300, item_id="a1", response_id="r1", usage=usage
    )
    answer = speech(
        "We open nine to five.", sample_rate=RATE, duration_ms=300, item_id="a2", response_id="r3"
    )
    return ScriptedModel(
        [
            ScriptStep(
                CreateResponse, [*greeting, *tool_call("opening_hours", {"day": "monday"}, usage=usage)]
            ),
            ScriptStep(SendToolOutput, answer),
        ]
    )


async def play_call(transport: FakeTransport) -> None:
    """The caller listens to everything, then hangs up."""
    await settle()
    await transport.advance(800)
    transport.caller_hang_up()


def comparable(result: RealtimeResult) -> RealtimeResult:
    return dataclasses.replace(
        result, timings=dataclasses.replace(result.timings, duration_s=0, turn_latencies_ms=())
    )


class Recorder(RealtimeRunHooks):
    def __init__(self) -> None:
        self.calls: list[str] = []

    async def on_agent_start(self, context: RunContextWrapper, agent: RealtimeAgent) -> None:
        self.calls.append(f"agent_start:{agent.name}:{context.context}")

    async def on_tool_start(self, context, agent, tool) -> None:
        self.calls.append(f"tool_start:{tool.name}")

    async def on_tool_end(self, context, agent, tool, result) -> None:
        self.calls.append(f"tool_end:{result}")

    async def on_agent_end(self, context, agent, output) -> None:
        self.calls.append(f"agent_end:{agent.name}")


async def test_both_runner_forms_leave_the_same_result() -> None:
    # Spec form: run to the end on the class, events consumed from another task.
    transport = FakeTransport(RATE)
    model = script()
    session = RealtimeSession(transport, model=model)
    hooks = Recorder()
    events: list[RealtimeSessionEvent] = []

    async def consume() -> None:
        async for event in session:
            events.append(event)

    consumer = asyncio.create_task(consume())
    caller = asyncio.create_task(play_call(transport))
    spec_result = await RealtimeRunner.run(AGENT, session=session, context="ctx", hooks=hooks, config=CONFIG)
    await asyncio.gather(consumer, caller)

    # SDK form: an instance's run() gives the session, `async with` runs it.
    transport2 = FakeTransport(RATE)
    model2 = script()
    runner = RealtimeRunner(AGENT, model=model2, config=CONFIG)
    events2: list[RealtimeSessionEvent] = []
    async with await runner.run(transport=transport2, context="ctx") as session2:
        caller2 = asyncio.create_task(play_call(transport2))
        async for event in session2:
            events2.append(event)
    await caller2
    sdk_result = session2.result

    assert spec_result.end_reason == "caller_hung_up"
    assert [c.output for c in spec_result.tool_calls] == ["9 to 5"]
    assert [item.text for item in spec_result.history if item.type == "message"] == [
        "Hi, Acme shop.",
        "We open nine to five.",
    ]
    assert spec_result.usage == Usage(14, 6, 20)
    assert comparable(spec_result) == comparable(sdk_result)
    assert len(spec_result.timings.turn_latencies_ms) == len(sdk_result.timings.turn_latencies_ms)
    assert [e.type for e in events] == [e.type for e in events2]
    model.assert_complete()
    model2.assert_complete()
    assert transport.closed and model.closed and transport2.closed and model2.closed
    assert hooks.calls == [
        "agent_start:Shop:ctx",
        "tool_start:opening_hours",
        "tool_end:9 to 5",
        "agent_end:Shop",
    ]


async def test_sdk_form_without_transport_takes_audio_through_send_audio() -> None:
    model = ScriptedModel([ScriptStep(CreateResponse, speech("ok", sample_rate=24000, duration_ms=100))])
    runner = RealtimeRunner(RealtimeAgent("A"), model=model, config=CONFIG)
    async with await runner.run() as session:
        await session.send_audio(b"\0\0" * 480, commit=True)
        await settle()
    kinds = [c.type for c in model.commands]
    assert kinds == ["send_audio", "commit_audio", "create_response"]
    assert model.configs[0].sample_rate == 24000
    assert session.result.end_reason == "closed"
    assert session.result.history[0].type == "message"


async def test_a_model_that_cannot_connect_fails_the_run_and_ends_iteration() -> None:
    class Unreachable(ScriptedModel):
        async def connect(self, config) -> None:
            raise ConnectionRefusedError("no route to model")

    session = RealtimeSession(FakeTransport(RATE), model=Unreachable())
    events: list[RealtimeSessionEvent] = []

    async def consume() -> None:
        async for event in session:
            events.append(event)

    consumer = asyncio.create_task(consume())
    with pytest.raises(ConnectionRefusedError):
        await RealtimeRunner.run(AGENT, session=session, config=CONFIG)
    await asyncio.wait_for(consumer, 1)
    assert session.result.end_reason == "error"
    assert "no route to model" in (session.result.error or "")


async def test_sdk_style_config_dicts_configure_the_model() -> None:
    model = ScriptedModel(supports_turn_detection=True)
    config: RealtimeRunConfig = {
        "model_settings": {
            "voice": "marin",
            "temperature": 0.7,
            "modalities": ["audio"],
            "turn_detection": {"type": "semantic_vad", "eagerness": "low", "idle_timeout_ms": 5000},
        }
    }
    runner = RealtimeRunner(RealtimeAgent("A", instructions="Hi."), model=model, config=config)
    session = await runner.run(model_config={"initial_model_settings": {"model_name": "gpt-realtime"}})
    async with session:
        pass
    [first] = model.configs
    assert (first.voice, first.temperature, first.model_name, first.instructions) == (
        "marin",
        0.7,
        "gpt-realtime",
        "Hi.",
    )
    assert first.extra == {"modalities": ["audio"]}
    assert first.turn_detection is not None
    assert (first.turn_detection.type, first.turn_detection.eagerness) == ("semantic_vad", "low")
    with pytest.raises(ValueError, match="unknown turn_detection setting"):
        bad = {"turn_detection": {"speed": 1}}
        await RealtimeSession(model=ScriptedModel(), agent=AGENT, config=bad).start()  # type: ignore[arg-type]
