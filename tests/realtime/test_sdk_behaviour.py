"""The Agents SDK's documented behaviour of a session without a transport (its normal set-up):
the application plays the ``audio`` events, reports playback, approves tools, handles every
event with ``assert_never``. Driven through `RealtimeRunner` as SDK code does, on a scripted model.
"""

from __future__ import annotations

import asyncio
import dataclasses
import typing
from typing import Any, assert_never

import pytest

from voicegw.audio.codecs import PCMU
from voicegw.contracts.model import (
    CreateResponse,
    InputTokensDetails,
    ModelInputTranscript,
    ModelSpeechStarted,
    SendAudio,
    SendToolOutput,
    SendUserMessage,
    TruncateItem,
    Usage,
    UserImage,
)
from voicegw.models.testing import ScriptedModel, ScriptStep, speech, tone, tool_call
from voicegw.realtime import (
    RealtimeAgent,
    RealtimeAgentHooks,
    RealtimeModelEvent,
    RealtimeModelOtherEvent,
    RealtimeModelUsageEvent,
    RealtimePlaybackTracker,
    RealtimeRunner,
    RealtimeSession,
    RealtimeSessionEvent,
    function_tool,
)
from voicegw.realtime.config import UnsupportedSetting
from voicegw.realtime.events import VOICEGW_EVENT_TYPES, RealtimeInputAudioTranscriptionDelta
from voicegw.realtime.model_inputs import RealtimeModelSendSessionUpdate
from voicegw.transports.testing import settle

RATE = 24000


def sdk_handler(seen: list[str]) -> Any:
    """An event handler written as the SDK's app example writes it."""

    def handle(event: RealtimeSessionEvent) -> None:
        match event.type:
            case (
                "agent_start" | "agent_end" | "handoff" | "tool_start" | "tool_end"
                | "tool_approval_required" | "raw_model_event" | "audio_end" | "audio"
                | "audio_interrupted" | "error" | "history_updated" | "history_added"
                | "guardrail_tripped" | "input_audio_timeout_triggered"
            ):  # fmt: skip
                seen.append(event.type)
            case _:
                assert_never(event)

    return handle


async def run_sdk(
    model: ScriptedModel,
    agent: RealtimeAgent[Any],
    *,
    config: dict[str, Any] | None = None,
    model_config: dict[str, Any] | None = None,
) -> tuple[RealtimeSession, list[RealtimeSessionEvent], asyncio.Task[None]]:
    """Start a session in the SDK's form and collect its events (plain ``async for``)."""
    runner = RealtimeRunner(agent, model=model, config={"turn_detection": None, **(config or {})})  # type: ignore[typeddict-item]
    session = await runner.run(model_config=model_config)  # type: ignore[arg-type]
    await session.enter()
    events: list[RealtimeSessionEvent] = []

    async def consume() -> None:
        async for event in session:
            events.append(event)

    task = asyncio.create_task(consume())
    await settle()
    return session, events, task


async def test_voicegw_events_reach_sdk_code_only_inside_raw_model_events() -> None:
    model = ScriptedModel(
        [
            ScriptStep(
                SendAudio,
                [
                    ModelInputTranscript("item_u", "what is", is_final=False),
                    ModelInputTranscript("item_u", "what is the time", is_final=True),
                ],
            )
        ]
    )
    session, events, task = await run_sdk(model, RealtimeAgent(name="A"))
    await session.send_audio(tone(RATE, 20))
    await settle()
    await session.close()
    await task
    seen: list[str] = []
    for event in events:
        sdk_handler(seen)(event)  # assert_never raises for an unknown event type
    wrapped = [
        e.data.data
        for e in events
        if e.type == "raw_model_event"
        and isinstance(e.data, RealtimeModelOtherEvent)
        and isinstance(e.data.data, VOICEGW_EVENT_TYPES)
    ]
    assert [type(e).__name__ for e in wrapped] == [
        "RealtimeInputAudioTranscriptionDelta",
        "RealtimeInputAudioTranscriptionCompleted",
    ]
    assert isinstance(wrapped[0], RealtimeInputAudioTranscriptionDelta) and wrapped[0].transcript == "what is"
    # The model events themselves arrive in the SDK's types (voicegw's partial transcript, which
    # the SDK has no event for, as an "other" event).
    model_events = [e.data for e in events if e.type == "raw_model_event"]
    sdk_model_types = typing.get_args(RealtimeModelEvent)
    assert all(isinstance(data, sdk_model_types) for data in model_events)
    completed = [d for d in model_events if d.type == "input_audio_transcription_completed"]
    assert [(d.item_id, d.transcript) for d in completed] == [("item_u", "what is the time")]


async def test_all_events_gives_voicegw_code_its_events_as_they_are() -> None:
    model = ScriptedModel([ScriptStep(SendAudio, [ModelInputTranscript("item_u", "hi", is_final=False)])])
    runner = RealtimeRunner(RealtimeAgent(name="A"), model=model, config={"turn_detection": None})
    async with await runner.run() as session:
        await session.send_audio(tone(RATE, 20))
        await settle()
        await session.close()
        kinds = [type(e).__name__ for e in [e async for e in session.all_events()]]
    assert "RealtimeInputAudioTranscriptionDelta" in kinds
    assert [k for k in kinds if k == "RealtimeRawModelEvent"]  # voicegw's model events, unwrapped


async def test_a_barge_in_truncates_at_what_the_application_reports_played() -> None:
    tracker = RealtimePlaybackTracker()
    answer = speech("one two three four five six seven eight", sample_rate=RATE, duration_ms=2000)
    model = ScriptedModel(
        [ScriptStep(SendUserMessage, answer[:-2]), ScriptStep(SendAudio, [ModelSpeechStarted(0)])]
    )
    session, events, task = await run_sdk(
        model, RealtimeAgent(name="A"), model_config={"playback_tracker": tracker}
    )
    await session.send_message("count")
    await settle()
    audio = [e for e in events if e.type == "audio"]
    assert sum(len(e.audio.data) for e in audio) == RATE * 2 * 2  # all 2 s arrived at once
    # The application played 500 ms of it, in 100 ms pieces, as its audio device consumed them.
    for event in audio[:5]:
        tracker.on_play_bytes(event.item_id, event.content_index, event.audio.data)
    assert tracker.get_state() == {
        "current_item_id": "item_1",
        "current_item_content_index": 0,
        "elapsed_ms": 500,
    }
    await session.send_audio(tone(RATE, 20))  # the model hears the caller start speaking
    await settle()
    await session.close()
    await task
    [interrupted] = [e for e in events if e.type == "audio_interrupted"]
    assert (interrupted.item_id, interrupted.content_index) == ("item_1", 0)
    assert model.sent(TruncateItem) == [TruncateItem("item_1", 500)]
    [item] = [i for i in session.history if i.item_id == "item_1"]
    assert item.status == "incomplete"
    assert item.content[0].transcript == "one two"  # 500 of 2000 ms: the words heard
    assert tracker.get_state()["current_item_id"] is None


async def test_without_a_tracker_audio_is_assumed_to_play_in_real_time() -> None:
    answer = speech("a long answer that takes ten seconds", sample_rate=RATE, duration_ms=10_000)
    model = ScriptedModel([ScriptStep(SendUserMessage, answer[:-2])])
    session, events, task = await run_sdk(model, RealtimeAgent(name="A"))
    await session.send_message("talk")
    await settle()
    await session.interrupt()
    await session.close()
    await task
    [truncate] = model.sent(TruncateItem)
    # All ten seconds arrived at once; only the moments since then count as played.
    assert truncate.audio_end_ms < 5_000
    assert [e.type for e in events if e.type == "audio_interrupted"] == ["audio_interrupted"]


@pytest.mark.parametrize("fmt", ["g711_ulaw", {"type": "audio/pcmu"}])
async def test_g711_audio_in_and_out_without_a_transport(fmt: Any) -> None:
    answer = speech("hello", sample_rate=8000, duration_ms=200)
    model = ScriptedModel([ScriptStep(SendAudio, answer)])
    config = {"model_settings": {"input_audio_format": fmt, "audio": {"output": {"format": fmt}}}}
    session, events, task = await run_sdk(model, RealtimeAgent(name="A"), config=config)
    caller = tone(8000, 100)
    await session.send_audio(PCMU().encode(caller))
    await settle()
    await session.close()
    await task
    assert model.configs[0].sample_rate == 8000
    [sent] = model.sent(SendAudio)
    assert sent.pcm == PCMU().decode(PCMU().encode(caller))  # the model got PCM
    out = b"".join(e.audio.data for e in events if e.type == "audio")
    assert len(out) == 8000 * 200 // 1000  # one byte a sample: μ-law
    assert PCMU().decode(out) == PCMU().decode(PCMU().encode(tone(8000, 200)))


async def test_a_tool_that_needs_approval_waits_and_runs_once_approved() -> None:
    ran: list[str] = []

    @function_tool(needs_approval=True)
    def refund(order: str) -> str:
        """Refund an order."""
        ran.append(order)
        return "refunded"

    model = ScriptedModel(
        [
            ScriptStep(SendUserMessage, tool_call("refund", {"order": "A1"}, call_id="c1")),
            ScriptStep(SendToolOutput, tool_call("refund", {"order": "B2"}, call_id="c2", response_id="r2")),
        ]
    )
    session, events, task = await run_sdk(model, RealtimeAgent(name="A", tools=[refund]))
    await session.send_message("refund A1")
    await settle()
    [required] = [e for e in events if e.type == "tool_approval_required"]
    assert (required.call_id, required.tool.name, required.arguments) == ("c1", "refund", '{"order": "A1"}')
    assert ran == [] and model.sent(SendToolOutput) == []
    await session.approve_tool_call("c1")
    await settle()
    assert ran == ["A1"]
    await session.reject_tool_call("c2", rejection_message="The manager said no.")
    await settle()
    await session.close()
    await task
    assert ran == ["A1"]
    assert [o.output for o in model.sent(SendToolOutput)] == ["refunded", "The manager said no."]


async def test_always_rejected_tools_are_refused_without_asking_again() -> None:
    @function_tool(needs_approval=lambda ctx, params, call_id: params["amount"] > 100)
    def pay(amount: int) -> str:
        """Pay an amount."""
        return "paid"

    def formatter(args: Any) -> str:
        return f"{args.tool_name} was refused ({args.kind})"

    model = ScriptedModel(
        [
            ScriptStep(SendUserMessage, tool_call("pay", {"amount": 500}, call_id="c1")),
            ScriptStep(SendToolOutput, tool_call("pay", {"amount": 900}, call_id="c2", response_id="r2")),
            ScriptStep(SendToolOutput, tool_call("pay", {"amount": 5}, call_id="c3", response_id="r3")),
        ]
    )
    session, events, task = await run_sdk(
        model, RealtimeAgent(name="A", tools=[pay]), config={"tool_error_formatter": formatter}
    )
    await session.send_message("pay")
    await settle()
    await session.reject_tool_call("c1", always=True)
    await settle()
    await session.close()
    await task
    assert [e.call_id for e in events if e.type == "tool_approval_required"] == ["c1"]
    assert [o.output for o in model.sent(SendToolOutput)] == [
        "pay was refused (approval_rejected)",
        "pay was refused (approval_rejected)",
        "pay was refused (approval_rejected)",
    ]


async def test_input_audio_timeout_triggers_after_the_agent_finished_speaking() -> None:
    answer = speech("anything else?", sample_rate=RATE, duration_ms=100)
    model = ScriptedModel([ScriptStep(SendUserMessage, answer)])
    config = {"turn_detection": {"idle_timeout_ms": 50, "create_response": True}}
    session, events, task = await run_sdk(model, RealtimeAgent(name="A"), config=config)
    await session.send_message("hi")
    for _ in range(100):  # the timer: 100 ms of audio, then 50 ms of silence (wide margin here)
        if any(e.type == "input_audio_timeout_triggered" for e in events):
            break
        await asyncio.sleep(0.05)
    await session.close()
    await task
    assert [e.type for e in events].count("input_audio_timeout_triggered") == 1
    assert model.sent(CreateResponse) == [CreateResponse()]


async def test_agent_hooks_are_called_for_their_agent() -> None:
    calls: list[tuple[str, str]] = []

    class Hooks(RealtimeAgentHooks[Any]):
        async def on_start(self, context: Any, agent: RealtimeAgent[Any]) -> None:
            calls.append(("start", agent.name))

        async def on_tool_start(self, context: Any, agent: RealtimeAgent[Any], tool: Any) -> None:
            calls.append(("tool_start", tool.name))

        async def on_tool_end(self, context: Any, agent: RealtimeAgent[Any], tool: Any, result: Any) -> None:
            calls.append(("tool_end", result))

        async def on_end(self, context: Any, agent: RealtimeAgent[Any], output: Any) -> None:
            calls.append(("end", agent.name))

    @function_tool
    def now() -> str:
        """The time."""
        return "noon"

    model = ScriptedModel([ScriptStep(SendUserMessage, tool_call("now", {}))])
    session, _, task = await run_sdk(model, RealtimeAgent(name="A", tools=[now], hooks=Hooks()))
    await session.send_message("time?")
    await settle()
    await session.close()
    await task
    assert calls == [("start", "A"), ("tool_start", "now"), ("tool_end", "noon"), ("end", "A")]


async def test_prompt_and_images_reach_the_model() -> None:
    model = ScriptedModel()
    prompt = {"id": "pmpt_1", "version": "2"}
    session, _, task = await run_sdk(model, RealtimeAgent(name="A", prompt=prompt))
    await session.send_message(
        {
            "type": "message",
            "role": "user",
            "content": [
                {"type": "input_text", "text": "what is this?"},
                {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "high"},
            ],
        }
    )
    await session.close()
    await task
    assert model.configs[0].prompt == prompt
    image = UserImage("data:image/png;base64,AAAA", "high")  # the app example asks for detail "high"
    assert model.sent(SendUserMessage) == [SendUserMessage("what is this?", (image,))]
    [item] = session.history
    assert [part.type for part in item.content] == ["input_text", "input_image"]
    assert item.content[1].model_dump()["detail"] == "high"


@pytest.mark.parametrize(
    ("config", "named"),
    [
        ({"no_such_key": 1}, "no_such_key"),
        ({"model_settings": {"voise": "x"}}, "voise"),
        ({"model_settings": {"audio": {"input": {"fromat": "pcm16"}}}}, "audio.input.fromat"),
        ({"model_settings": {"input_audio_format": "opus"}}, "'opus'"),
        ({"model_settings": {"handoffs": [object()]}}, "model_settings.handoffs"),
        ({"model_settings": {"input_audio_format": "g711_ulaw"}}, "8000 and 24000 Hz"),
        (
            {"tool_execution": {"pre_approval_tool_input_guardrails": True}},
            "pre_approval_tool_input_guardrails",
        ),
    ],
)
def test_a_setting_voicegw_cannot_honour_is_refused_by_name(config: dict[str, Any], named: str) -> None:
    with pytest.raises(UnsupportedSetting, match=named.replace(".", r"\.")):
        RealtimeSession(config=config, agent=RealtimeAgent(name="A"))  # type: ignore[arg-type]


def test_an_unknown_model_config_key_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="api_kye"):
        RealtimeSession(agent=RealtimeAgent(name="A"), model_config={"api_kye": "x"})  # type: ignore[typeddict-unknown-key]


def test_an_agent_with_mcp_servers_is_refused_by_name() -> None:
    assert RealtimeAgent(name="A", mcp_config={}).mcp_servers == []
    with pytest.raises(ValueError, match="mcp_servers"):
        RealtimeAgent(name="A", mcp_servers=[object()])


async def test_an_async_tool_error_formatter_words_an_unknown_tool() -> None:
    async def formatter(args: Any) -> str:
        return f"{args.kind}: {args.tool_name}"

    model = ScriptedModel([ScriptStep(SendUserMessage, tool_call("teleport", {}))])
    session, _, task = await run_sdk(
        model, RealtimeAgent(name="A"), config={"tool_error_formatter": formatter}
    )
    await session.send_message("beam me up")
    await settle()
    await session.close()
    await task
    assert [o.output for o in model.sent(SendToolOutput)] == ["tool_not_found: teleport"]


async def test_initial_model_settings_go_over_the_run_configs_in_both_runner_forms() -> None:
    model = ScriptedModel()
    session = RealtimeSession(
        model=model,
        config={"turn_detection": None, "model_settings": {"voice": "run", "temperature": 0.3}},
        agent=RealtimeAgent(name="A"),
        model_config={"initial_model_settings": {"voice": "initial"}},
    )
    async with session:
        pass
    assert (model.configs[0].voice, model.configs[0].temperature) == ("initial", 0.3)


async def test_max_output_tokens_inf_is_the_models_own_limit() -> None:
    model = ScriptedModel()
    session, _, task = await run_sdk(
        model, RealtimeAgent(name="A"), config={"model_settings": {"max_output_tokens": "inf"}}
    )
    await session.close()
    await task
    assert model.configs[0].max_output_tokens is None  # an int limit of ours would break on "inf"


async def test_a_handoff_with_an_input_type_validates_the_models_input() -> None:
    from pydantic import BaseModel

    from voicegw.realtime import realtime_handoff

    class Escalation(BaseModel):
        reason: str
        priority: int

    got: list[Any] = []

    async def on_handoff(ctx: Any, escalation: Escalation) -> None:
        got.append(escalation)

    manager = RealtimeAgent(name="Manager")
    handoff = realtime_handoff(manager, on_handoff=on_handoff, input_type=Escalation)
    assert handoff.input_json_schema == {
        "type": "object",
        "properties": {"reason": {"type": "string"}, "priority": {"type": "integer"}},
        "required": ["reason", "priority"],
        "additionalProperties": False,
    }
    model = ScriptedModel(
        [ScriptStep(SendUserMessage, tool_call("transfer_to_manager", {"reason": "refund", "priority": 2}))]
    )
    session, events, task = await run_sdk(model, RealtimeAgent(name="Desk", handoffs=[handoff]))
    await session.send_message("I want the manager")
    await settle()
    await session.close()
    await task
    assert got == [Escalation(reason="refund", priority=2)]
    assert [e.type for e in events if e.type == "handoff"] == ["handoff"]


async def test_function_tool_options_of_the_sdk() -> None:
    @function_tool(is_enabled=lambda ctx, agent: agent.name == "Admin")
    def reset() -> str:
        """Reset everything."""
        return "done"

    @function_tool(timeout=0.05)
    async def slow() -> str:
        """A slow lookup."""
        await asyncio.sleep(10)
        return "late"

    @function_tool(use_docstring_info=False)
    def plain(city: str) -> str:
        """Described nowhere else."""
        return city

    assert plain.description == ""
    with pytest.raises(ValueError, match="docstring_style='numpy'"):
        function_tool(docstring_style="numpy")(plain)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="tool guardrails"):
        function_tool(tool_input_guardrails=[object()])(lambda: None)

    model = ScriptedModel([ScriptStep(SendUserMessage, tool_call("slow", {}))])
    session, _, task = await run_sdk(model, RealtimeAgent(name="Desk", tools=[reset, slow]))
    await session.send_message("look it up")
    for _ in range(100):
        if model.sent(SendToolOutput):
            break
        await asyncio.sleep(0.02)
    await session.close()
    await task
    assert [t.name for t in model.configs[0].tools] == ["slow"]  # reset is for the Admin agent only
    assert [o.output for o in model.sent(SendToolOutput)] == ["Tool 'slow' timed out after 0.05 seconds."]


async def test_usage_reaches_sdk_code_as_a_usage_event_and_adds_up_in_the_context() -> None:
    used = Usage(4, 6, 10, requests=1, input_tokens_details=InputTokensDetails(cached_tokens=2))
    reply = speech("hi", sample_rate=RATE, duration_ms=60, usage=used)
    session, events, task = await run_sdk(
        ScriptedModel([ScriptStep(SendUserMessage, reply)] * 2), RealtimeAgent(name="A")
    )
    await session.send_message("one")
    await session.send_message("two")
    await settle()
    await session.close()
    await task
    raw = [e.data for e in events if e.type == "raw_model_event"]
    usage_events = [d for d in raw if isinstance(d, RealtimeModelUsageEvent)]
    assert [d.usage for d in usage_events] == [used, used]
    # As the SDK's model: the usage of a response comes just before its turn ends.
    kinds = [d.type for d in raw]
    assert kinds[kinds.index("usage") + 1] == "turn_ended"
    total = session.context.usage
    last = next(e for e in reversed(events) if e.type == "raw_model_event" and e.data.type == "usage")
    assert last.info.context.usage == total  # what the SDK's app logs as the session's usage
    assert (total.requests, total.input_tokens, total.total_tokens) == (2, 8, 20)
    assert total.input_tokens_details.cached_tokens == 4
    assert dataclasses.asdict(total)["output_tokens_details"] == {"reasoning_tokens": 0}


async def test_a_session_update_changes_only_what_it_names() -> None:
    model = ScriptedModel()
    session, _, task = await run_sdk(
        model,
        RealtimeAgent(name="A", instructions="Be brief."),
        config={"model_settings": {"temperature": 0.3}},
    )
    update = RealtimeModelSendSessionUpdate(session_settings={"instructions": "Be French.", "speed": 1.1})
    await session.model.send_event(update)
    await session.close()
    await task
    before, after = model.configs[0], model.configs[-1]
    assert (after.instructions, after.extra["speed"]) == ("Be French.", 1.1)
    assert (after.temperature, after.sample_rate, after.turn_detection) == (0.3, before.sample_rate, None)
