"""RealtimeAgent, handoffs, guardrail bookkeeping and history truncation (no session needed)."""

from __future__ import annotations

import pytest

from voicegw.realtime import (
    GuardrailFunctionOutput,
    RealtimeAgent,
    RunContextWrapper,
    ToolArgumentsError,
    handoff,
    output_guardrail,
)
from voicegw.realtime.guardrails import TranscriptGate, run_output_guardrails
from voicegw.realtime.items import heard_part


async def test_instructions_string_sync_and_async_callable() -> None:
    ctx = RunContextWrapper({"name": "Ada"})
    assert await RealtimeAgent("A", instructions="Be brief.").get_system_prompt(ctx) == "Be brief."

    def sync(c: RunContextWrapper, agent: RealtimeAgent) -> str:
        return f"{agent.name} helps {c.context['name']}"

    async def asynchronous(c: RunContextWrapper, agent: RealtimeAgent) -> str:
        return f"async {c.context['name']}"

    assert await RealtimeAgent("Desk", instructions=sync).get_system_prompt(ctx) == "Desk helps Ada"
    assert await RealtimeAgent("Desk", instructions=asynchronous).get_system_prompt(ctx) == "async Ada"


def test_clone_and_validation() -> None:
    agent = RealtimeAgent("A", instructions="x", voice="alloy")
    twin = agent.clone(name="B")
    assert (twin.name, twin.instructions, twin.voice) == ("B", "x", "alloy")
    assert agent.name == "A"
    with pytest.raises(TypeError, match="name"):
        RealtimeAgent(123)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="tools must be a list"):
        RealtimeAgent("A", tools=())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="greeting or greeting_instructions"):
        RealtimeAgent("A", greeting="hi", greeting_instructions="greet")


async def test_handoffs_from_agents_and_handoff_objects() -> None:
    seen: list[object] = []
    billing = RealtimeAgent("Billing Team", handoff_description="Invoices and refunds.")
    support = RealtimeAgent("Support")
    custom = handoff(
        support,
        tool_name_override="escalate",
        on_handoff=lambda ctx, data: seen.append(data),
        input_json_schema={
            "type": "object",
            "properties": {"reason": {"type": "string"}},
            "required": ["reason"],
            "additionalProperties": False,
        },
        is_enabled=lambda ctx, agent: ctx.context == "on",
    )
    triage = RealtimeAgent("Triage", handoffs=[billing, custom])
    on = await triage.get_handoffs(RunContextWrapper("on"))
    assert [h.tool_name for h in on] == ["transfer_to_billing_team", "escalate"]
    assert (
        on[0].tool_description
        == "Handoff to the Billing Team agent to handle the request. Invoices and refunds."
    )
    assert [h.tool_name for h in await triage.get_handoffs(RunContextWrapper("off"))] == [
        "transfer_to_billing_team"
    ]
    assert await on[1].invoke(RunContextWrapper("on"), '{"reason": "angry"}') is support
    assert seen == [{"reason": "angry"}]
    with pytest.raises(ToolArgumentsError):
        await on[1].invoke(RunContextWrapper("on"), "{}")


async def test_guardrail_runner_skips_failing_guardrails() -> None:
    @output_guardrail
    def broken(ctx, agent, text):
        raise RuntimeError("bug")

    @output_guardrail(name="profanity")
    async def profanity(ctx, agent, text):
        return GuardrailFunctionOutput({"hit": "darn"}, tripwire_triggered="darn" in text)

    tripped = await run_output_guardrails(
        [broken, profanity], RunContextWrapper(None), RealtimeAgent("A"), "oh darn"
    )
    assert [r.guardrail.get_name() for r in tripped] == ["profanity"]
    assert tripped[0].output.output_info == {"hit": "darn"}


def test_transcript_gate_debounces_and_holds_audio() -> None:
    gate = TranscriptGate[bytes](debounce_text_length=10)
    assert gate.add_text("i", "Hello ") == "Hello "  # the first words are checked at once
    assert gate.hold("i", b"a1")  # audio waits while that check runs
    assert gate.add_text("i", "th") is None  # under 10 characters
    assert gate.add_text("i", "ere, friend") == "Hello there, friend"
    assert gate.check_passed("i") == []  # a second check still runs
    assert gate.hold("i", b"a2")
    assert gate.check_passed("i") == [b"a1", b"a2"]
    assert not gate.hold("i", b"a3")  # nothing running: play at once
    assert gate.finish("i") is None  # everything was checked
    assert gate.add_text("i", "!") == "Hello there, friend!"  # 2 x 10 characters
    assert gate.add_text("i", " Bye") is None
    assert gate.finish("i") == "Hello there, friend! Bye"  # the rest, at the end
    with pytest.raises(ValueError, match="at least 1"):
        TranscriptGate[bytes](0)


@pytest.mark.parametrize(
    ("played", "total", "expected"),
    [
        (0, 1000, ""),
        (300, 1000, "one two three"),
        (330, 1000, "one two three"),  # "four" was only half said: not heard
        (1000, 1000, "one two three four five six seven eight nine ten"),
        (1200, 1000, "one two three four five six seven eight nine ten"),
    ],
)
def test_heard_part_cuts_back_to_whole_words(played: int, total: int, expected: str) -> None:
    assert heard_part("one two three four five six seven eight nine ten", played, total) == expected
