"""The conversation loop, driven by a scripted model over a fake transport with a manual clock."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from tests.realtime.helpers import RATE, start
from voicegw.contracts.model import (
    CancelResponse,
    CreateResponse,
    ModelError,
    ModelInputTranscript,
    ModelItemTruncated,
    ModelSpeechStarted,
    SendAudio,
    SendToolOutput,
    SendUserMessage,
    TruncateItem,
    UpdateSession,
    Usage,
)
from voicegw.models.testing import ScriptStep, speech, tool_call
from voicegw.realtime import (
    AnsweringMachineDetected,
    AssistantMessageItem,
    DtmfReceived,
    EndReason,
    GuardrailFunctionOutput,
    RealtimeAgent,
    RealtimeAnsweringMachine,
    RealtimeAudio,
    RealtimeAudioInterrupted,
    RealtimeCallState,
    RealtimeDtmf,
    RealtimeError,
    RealtimeGuardrailTripped,
    RealtimeHandoffEvent,
    RealtimeHistoryAdded,
    RealtimeInputAudioTranscriptionCompleted,
    RealtimeInputAudioTranscriptionDelta,
    RealtimeModelOtherEvent,
    RealtimeRawModelEvent,
    RealtimeRunHooks,
    RealtimeToolEnd,
    RealtimeToolStart,
    UserMessageItem,
    function_tool,
    output_guardrail,
)
from voicegw.realtime.events import sdk_event
from voicegw.realtime.tool_calls import FILLER_ITEM_ID
from voicegw.transports.testing import settle

TEN_WORDS = "one two three four five six seven eight nine ten"


@function_tool
def get_weather(city: str) -> str:
    """Get the current weather.

    Args:
        city: The city to look up.
    """
    return f"Sunny in {city}"


def answer(text: str = "It is sunny", item_id: str = "a1", response_id: str = "r1", ms: int = 400) -> list:
    return speech(text, sample_rate=RATE, duration_ms=ms, item_id=item_id, response_id=response_id)


async def test_tool_output_reaches_the_model_and_it_continues() -> None:
    agent = RealtimeAgent("Weather", instructions="Answer briefly.", tools=[get_weather])
    run = await start(
        agent,
        [
            ScriptStep(SendUserMessage, tool_call("get_weather", {"city": "Paris"})),
            ScriptStep(SendToolOutput, answer("It is sunny in Paris")),
        ],
    )
    await run.session.send_message("What's the weather in Paris?")
    await settle()

    assert run.model.sent(SendToolOutput) == [SendToolOutput("call_1", "Sunny in Paris")]
    run.model.assert_complete()
    assert run.model.configs[0].tools[0].name == "get_weather"
    [tool_start] = run.of(RealtimeToolStart)
    [tool_end] = run.of(RealtimeToolEnd)
    assert (tool_start.arguments, tool_end.output) == ('{"city": "Paris"}', "Sunny in Paris")
    await run.transport.advance(400)
    assert len(run.transport.played_audio("a1")) == RATE * 2 * 400 // 1000
    result = run.session.result
    assert [c.output for c in result.tool_calls] == ["Sunny in Paris"]
    assert isinstance(result.history[-1], AssistantMessageItem)
    assert result.history[-1].text == "It is sunny in Paris"
    await run.close()


async def test_handoff_switches_instructions_and_tools() -> None:
    @function_tool
    def refund(order_id: str) -> str:
        """Refund an order."""
        return "refunded"

    billing = RealtimeAgent("Billing", instructions="You handle billing.", tools=[refund], voice="ash")
    triage = RealtimeAgent("Triage", instructions="Route the call.", tools=[get_weather], handoffs=[billing])
    handoffs: list[tuple[str, str]] = []

    class Hooks(RealtimeRunHooks):
        async def on_handoff(self, context, from_agent, to_agent) -> None:
            handoffs.append((from_agent.name, to_agent.name))

    run = await start(
        triage,
        [
            ScriptStep(SendUserMessage, tool_call("transfer_to_billing", {})),
            ScriptStep(SendToolOutput, answer("Billing here")),
        ],
        hooks=Hooks(),
    )
    assert [t.name for t in run.model.configs[0].tools] == ["get_weather", "transfer_to_billing"]
    await run.session.send_message("I want a refund")
    await settle()

    [update] = run.model.sent(UpdateSession)
    assert update.config.instructions == "You handle billing."
    assert update.config.voice == "ash"
    assert [t.name for t in update.config.tools] == ["refund"]
    kinds = [type(c) for c in run.model.commands]
    assert kinds.index(UpdateSession) < kinds.index(SendToolOutput)  # continue as the new agent
    [event] = run.of(RealtimeHandoffEvent)
    assert (event.from_agent.name, event.to_agent.name) == ("Triage", "Billing")
    assert handoffs == [("Triage", "Billing")]
    assert run.model.sent(SendToolOutput)[0].output == '{"assistant": "Billing"}'
    assert run.session.current_agent is billing
    assert run.types().index("agent_end") < run.types().index("handoff") < run.types().index("agent_start", 1)
    await run.close()
    assert run.session.result.final_agent is billing


async def test_guardrail_checks_text_before_its_audio_is_played() -> None:
    @output_guardrail
    def no_secrets(ctx, agent, text: str) -> GuardrailFunctionOutput:
        return GuardrailFunctionOutput(output_info=None, tripwire_triggered="secret" in text)

    agent = RealtimeAgent("Guarded", instructions="Be careful.", output_guardrails=[no_secrets])
    text_first = speech(
        "well the secret code is 1234",
        sample_rate=RATE,
        duration_ms=600,
        item_id="a1",
        response_id="r1",
        text_first=True,
    )
    run = await start(
        agent,
        [ScriptStep(SendUserMessage, text_first)],
        config={"guardrails_settings": {"debounce_text_length": 1}},
    )
    await run.session.send_message("tell me the code")
    await settle()
    await run.transport.advance(200)

    [tripped] = run.of(RealtimeGuardrailTripped)
    assert "secret" in tripped.message
    assert tripped.guardrail_results[0].guardrail is no_secrets
    assert run.transport.enqueued_bytes.get("a1", 0) == 0  # not a sample of it reached the line
    assert run.of(RealtimeAudio) == []  # nor an app playing the audio events itself
    assert run.transport.played_audio("a1") == b""
    assert TruncateItem("a1", 0) in run.model.commands
    assert run.model.sent(SendUserMessage)[-1].text == "guardrail triggered: no_secrets"
    item = run.session.result.history[1]
    assert isinstance(item, AssistantMessageItem)
    assert (item.text, item.status) == ("", "incomplete")
    await run.close()


async def test_guardrail_interrupts_audio_already_playing() -> None:
    @output_guardrail(name="no_refunds")
    async def no_refunds(ctx, agent, text: str) -> GuardrailFunctionOutput:
        return GuardrailFunctionOutput(output_info={"word": "refund"}, tripwire_triggered="refund" in text)

    agent = RealtimeAgent("Guarded", output_guardrails=[no_refunds])
    run = await start(agent, [ScriptStep(SendUserMessage, answer("sure I will refund you now", ms=1000))])
    await run.session.send_message("refund me")
    await settle()  # the transcript lags its audio: the check runs once the text is complete
    await run.transport.advance(100)

    assert len(run.of(RealtimeGuardrailTripped)) == 1
    assert run.transport.queued_ms == 0
    assert run.transport.flushes == [0]
    assert TruncateItem("a1", 0) in run.model.commands
    await run.close()


async def test_barge_in_truncates_at_what_the_transport_played() -> None:
    agent = RealtimeAgent("Talker")
    run = await start(
        agent,
        [ScriptStep(SendUserMessage, answer(TEN_WORDS, ms=1000))],
        config={"turn_detection": {"min_speech_ms": 80}},
        supports_turn_detection=True,
    )
    await run.session.send_message("count to ten")
    await settle()
    await run.transport.advance(300)
    await run.model.emit(ModelSpeechStarted(audio_start_ms=2000, item_id="u2"))
    await settle()

    played = run.transport.played_ms("a1")
    assert played == 300
    assert run.transport.flushes == [300]
    [truncate] = run.model.sent(TruncateItem)
    assert truncate == TruncateItem("a1", 300)
    [interrupted] = run.of(RealtimeAudioInterrupted)
    assert interrupted.played_ms == 300
    item = run.session.result.history[1]
    assert isinstance(item, AssistantMessageItem)
    assert (item.text, item.status) == ("one two three", "incomplete")
    await run.transport.advance(200)
    assert run.transport.played_ms("a1") == 300  # nothing stale after the flush
    assert run.model.sent(CancelResponse) == []  # the response had already ended: playback only
    await run.close()


async def test_barge_in_during_the_response_cancels_it() -> None:
    agent = RealtimeAgent("Talker")
    events = answer(TEN_WORDS, ms=1000)[:-2]  # still generating: no audio_done / response_done yet
    run = await start(
        agent,
        [ScriptStep(SendUserMessage, events)],
        supports_turn_detection=True,
        config={"turn_detection": {}},
    )
    await run.session.send_message("count")
    await settle()
    await run.transport.advance(100)
    await run.session.interrupt()

    assert run.model.sent(CancelResponse) == [CancelResponse()]
    assert run.model.sent(TruncateItem) == [TruncateItem("a1", 100)]
    await run.close()


async def test_tool_exception_becomes_error_output_not_a_crash() -> None:
    @function_tool
    async def lookup(order_id: str) -> str:
        """Look an order up."""
        raise ConnectionError("database down")

    agent = RealtimeAgent("Orders", tools=[lookup])
    run = await start(
        agent,
        [
            ScriptStep(SendUserMessage, tool_call("lookup", {"order_id": "42"})),
            ScriptStep(SendToolOutput, answer("Sorry, try later")),
            ScriptStep(SendUserMessage, answer("Still here", item_id="a2", response_id="r2")),
        ],
    )
    await run.session.send_message("where is order 42")
    await settle()
    [output] = run.model.sent(SendToolOutput)
    assert "database down" in output.output and "error" in output.output.lower()
    await run.session.send_message("hello?")
    await settle()
    run.model.assert_complete()
    assert run.session.result.end_reason is None
    await run.close()


@pytest.mark.parametrize(
    ("name", "arguments", "expected"),
    [
        ("get_weather", '{"city": "Par', "not valid JSON"),
        ("get_weather", '{"town": "Paris"}', "missing required argument(s): city"),
        ("get_stock", '{"symbol": "X"}', "no tool named 'get_stock'. Available tools: get_weather"),
    ],
)
async def test_bad_tool_calls_get_a_clear_error_output_and_event(
    name: str, arguments: str, expected: str
) -> None:
    agent = RealtimeAgent("Weather", tools=[get_weather])
    run = await start(agent, [ScriptStep(SendUserMessage, tool_call(name, arguments))])
    await run.session.send_message("go")
    await settle()
    [output] = run.model.sent(SendToolOutput)
    assert output.output.startswith("Error:")
    assert expected in output.output
    assert len(run.of(RealtimeError)) == 1
    await run.close()


async def test_model_error_becomes_an_error_event() -> None:
    run = await start(RealtimeAgent("A"), [])
    await run.model.emit(ModelError("rate limited", code="rate_limit_exceeded"))
    await settle()
    [error] = run.of(RealtimeError)
    assert error.message == "rate limited"
    assert error.error.code == "rate_limit_exceeded"
    assert run.session.result.end_reason is None
    await run.model.emit(ModelError("socket closed", fatal=True))
    await settle()
    assert run.session.result.end_reason == "error"
    assert run.session.result.error == "socket closed"
    await run.close()
    assert run.consumer is not None and run.consumer.done()


async def test_closing_mid_tool_cancels_the_tool_task() -> None:
    started, cancelled = asyncio.Event(), asyncio.Event()

    @function_tool
    async def slow_search(query: str) -> str:
        """Search slowly."""
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "never"

    run = await start(
        RealtimeAgent("A", tools=[slow_search]),
        [ScriptStep(SendUserMessage, tool_call("slow_search", {"query": "x"}))],
    )
    await run.session.send_message("search")
    await settle()
    assert started.is_set()
    await run.close()
    assert cancelled.is_set()
    assert run.model.sent(SendToolOutput) == []
    assert run.model.closed and run.transport.closed
    assert run.session.result.end_reason == "closed"
    await run.session.close()  # idempotent


async def test_greeting_is_spoken_first() -> None:
    agent = RealtimeAgent("Desk", greeting="Hello, Acme support, how can I help?")
    run = await start(agent, [ScriptStep(CreateResponse, answer("Hello, Acme support, how can I help?"))])
    assert run.model.commands[0] == CreateResponse(say="Hello, Acme support, how can I help?")
    await run.transport.advance(400)
    assert len(run.transport.played_audio("a1")) > 0
    await run.close()

    composed = RealtimeAgent("Desk", greeting_instructions="Greet the caller by name: Ada.")
    run = await start(composed, [])
    assert run.model.commands == [CreateResponse(instructions="Greet the caller by name: Ada.")]
    await run.close()


async def test_dtmf_becomes_an_event_and_optionally_text() -> None:
    run = await start(RealtimeAgent("IVR"), [], config={"dtmf_as_text": True})
    run.transport.push_event(DtmfReceived("5", 120))
    await settle()
    [dtmf] = run.of(RealtimeDtmf)
    assert (dtmf.digit, dtmf.duration_ms) == ("5", 120)
    assert run.model.sent(SendUserMessage) == [SendUserMessage("The caller pressed 5")]
    item = run.session.result.history[0]
    assert isinstance(item, UserMessageItem) and item.text == "The caller pressed 5"
    await run.close()

    quiet = await start(RealtimeAgent("IVR"), [])
    quiet.transport.push_event(DtmfReceived("#", 80))
    await settle()
    assert len(quiet.of(RealtimeDtmf)) == 1
    assert quiet.model.sent(SendUserMessage) == []
    await quiet.close()


async def test_who_answered_a_dialled_call_is_a_voicegw_event_only() -> None:
    run = await start(RealtimeAgent("Caller"), [])
    run.transport.push_event(AnsweringMachineDetected("human", 1840, "a short greeting, then silence"))
    await settle()
    [answered] = run.of(RealtimeAnsweringMachine)
    assert (answered.verdict, answered.decided_ms, answered.cause) == (
        "human",
        1840,
        "a short greeting, then silence",
    )
    # SDK code iterating the session sees it wrapped, never as an event type it does not know.
    wrapped = sdk_event(answered)
    assert isinstance(wrapped, RealtimeRawModelEvent) and isinstance(wrapped.data, RealtimeModelOtherEvent)
    assert wrapped.data.data is answered
    await run.close()


async def test_slow_tool_gets_a_soft_thinking_tone_until_its_result() -> None:
    release = asyncio.Event()

    @function_tool
    async def check_inventory(item: str) -> str:
        """Check the stock."""
        await release.wait()
        return "12 in stock"

    run = await start(
        RealtimeAgent("Shop", tools=[check_inventory]),
        [
            ScriptStep(SendUserMessage, tool_call("check_inventory", {"item": "lamp"})),
            ScriptStep(SendToolOutput, answer("We have twelve", item_id="a2", response_id="r2")),
        ],
        config={"tool_filler_delay": 0.0},
    )
    await run.session.send_message("any lamps?")
    await settle()
    await run.transport.advance(1400)
    tone = np.frombuffer(run.transport.played_audio(FILLER_ITEM_ID), dtype="<i2")
    assert len(tone) == RATE * 1400 // 1000
    assert 0 < np.abs(tone).max() < 0.05 * 32767  # audible, but quiet

    release.set()
    await settle()
    assert run.model.sent(SendToolOutput)[0].output == "12 in stock"
    await run.transport.advance(600)
    after = [f.item_id for f in run.transport.played if f.at_ms > 1400]
    assert FILLER_ITEM_ID not in after  # flushed the moment the result came in
    assert after[:20] == ["a2"] * 20
    await run.close()


async def test_fast_tool_plays_no_tone() -> None:
    run = await start(
        RealtimeAgent("Weather", tools=[get_weather]),
        [ScriptStep(SendUserMessage, tool_call("get_weather", {"city": "Oslo"}))],
    )
    await run.session.send_message("weather?")
    await settle()
    await run.transport.advance(200)
    assert run.transport.enqueued_bytes.get(FILLER_ITEM_ID) is None
    await run.close()


@pytest.mark.parametrize(
    ("reason", "detail"),
    [
        (EndReason.CALLER_HUNG_UP, "caller hung up"),
        (EndReason.MEDIA_TIMEOUT, "media timeout"),
        # The words once decided the reason: "maximum call duration reached" read as a caller's hang-up.
        (EndReason.TIMEOUT, "maximum call duration reached"),
        (EndReason.SERVER_SHUTDOWN, "server shutting down"),
    ],
)
async def test_call_end_ends_the_session(reason: EndReason, detail: str) -> None:
    run = await start(RealtimeAgent("A"), [])
    run.transport.caller_hang_up(reason, detail)
    result = await asyncio.wait_for(run.session.wait(), 1)
    assert result.end_reason is reason
    ended = run.of(RealtimeCallState)[-1]
    assert (ended.state, ended.reason, ended.end_reason) == ("ended", detail, reason)
    assert run.types()[-2:] == ["call_state", "agent_end"]
    await run.close()


async def test_caller_audio_reaches_the_model_and_usage_adds_up() -> None:
    usage = Usage(input_tokens=10, output_tokens=5, total_tokens=15)
    replies = [
        speech("ok", sample_rate=RATE, duration_ms=100, item_id=i, response_id=i, usage=usage) for i in "ab"
    ]
    run = await start(RealtimeAgent("A"), [ScriptStep(SendUserMessage, reply) for reply in replies])
    run.transport.push_audio(b"\x01\x00" * (RATE // 10))
    await run.transport.advance(100)
    assert b"".join(c.pcm for c in run.model.sent(SendAudio)) == b"\x01\x00" * (RATE // 10)
    await run.session.send_message("a")
    await run.session.send_message("b")
    await settle()
    result = run.session.result
    assert result.usage == Usage(20, 10, 30)
    assert len(result.timings.turn_latencies_ms) == 2
    assert [item.type for item in result.history] == ["message"] * 4
    await run.close()


async def test_input_transcription_partial_and_final() -> None:
    run = await start(RealtimeAgent("A"), [], supports_turn_detection=True)
    await run.model.emit(
        ModelInputTranscript("u1", "what is", is_final=False),
        ModelInputTranscript("u1", "what is the time", is_final=True),
    )
    await settle()
    assert [(e.type, e.transcript) for e in run.of(RealtimeInputAudioTranscriptionDelta)] == [
        ("input_audio_transcription_delta", "what is")
    ]
    [final] = run.of(RealtimeInputAudioTranscriptionCompleted)
    assert (final.item_id, final.transcript) == ("u1", "what is the time")
    [item] = run.session.result.history
    assert isinstance(item, UserMessageItem) and item.text == "what is the time"
    assert len(run.of(RealtimeHistoryAdded)) == 1
    await run.close()


async def test_model_transcript_of_a_truncation_wins() -> None:
    run = await start(
        RealtimeAgent("A"),
        [
            ScriptStep(SendUserMessage, answer(TEN_WORDS, ms=1000)),
            ScriptStep(TruncateItem, [ModelItemTruncated("a1", 300, transcript="one two thr")]),
        ],
        supports_turn_detection=True,
    )
    await run.session.send_message("count")
    await settle()
    await run.transport.advance(300)
    await run.session.interrupt()
    item = run.session.result.history[1]
    assert isinstance(item, AssistantMessageItem)
    assert (item.text, item.status) == ("one two thr", "incomplete")
    await run.close()
