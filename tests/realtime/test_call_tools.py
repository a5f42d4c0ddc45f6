"""Call control for agents: the hang_up/transfer/send_dtmf tools, alone and in a session."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from tests.realtime.helpers import RATE, Run, start
from voicegw.contracts.model import CreateResponse, SendToolOutput, SendUserMessage
from voicegw.contracts.transport import EndReason
from voicegw.models.testing import ScriptStep, speech, tool_call
from voicegw.realtime import DtmfReceived, RealtimeAgent, RealtimeDtmf, ToolContext, function_tool
from voicegw.realtime.call_tools import (
    POLL_S,
    CallHandle,
    hang_up,
    hang_up_tool,
    send_dtmf,
    transfer,
)
from voicegw.realtime.tools import FunctionTool, invoke_function_tool
from voicegw.transports.testing import FakeCallTransport, settle

SECOND = 1.0


class Speech:
    """A session as a `CallHandle` sees it (the part of `SessionPort` it uses), set by the test."""

    def __init__(self) -> None:
        self.talking = False
        self.responses_started = 0
        self.said: list[str] = []
        self.ended: list[EndReason] = []
        self.spoke = False

    def handle(self, call: FakeCallTransport, *, spoke: bool = False) -> CallHandle:
        self.spoke = spoke
        return CallHandle(call, self)  # type: ignore[arg-type]

    async def send(self, command: object) -> None:
        assert isinstance(command, CreateResponse) and command.say is not None, command
        self.said.append(command.say)
        self.responses_started += 1

    def speaking(self) -> bool:
        return self.talking

    def spoke_before(self, tool_call_id: str) -> bool:
        return self.spoke

    def end(self, reason: EndReason) -> None:
        self.ended.append(reason)


async def invoke(tool: FunctionTool, handle: CallHandle | None, arguments: Any = None) -> str:
    ctx: ToolContext[Any] = ToolContext(None, call=handle, tool_name=tool.name, tool_call_id="call_1")
    return await invoke_function_tool(tool, ctx, json.dumps(arguments or {}))


# --- the tools alone ---------------------------------------------------------------------------


async def test_hang_up_waits_for_the_sentence_in_flight_then_ends_the_call() -> None:
    call, speech_state = FakeCallTransport(RATE), Speech()
    speech_state.talking = True
    task = asyncio.create_task(invoke(hang_up, speech_state.handle(call, spoke=True)))
    await asyncio.sleep(POLL_S * 5)
    assert call.hung_up is None  # still talking: the caller must hear the end of the sentence

    speech_state.talking = False
    assert await asyncio.wait_for(task, SECOND) == "The call has ended."
    assert call.hung_up == EndReason.AGENT_HUNG_UP
    assert speech_state.ended == ["agent_hung_up"]
    assert speech_state.said == []  # the model said its own goodbye: no farewell on top


async def test_a_silent_hang_up_says_the_farewell_first() -> None:
    call, speech_state = FakeCallTransport(RATE), Speech()
    tool = hang_up_tool(farewell="Thank you for calling. Goodbye!")

    await asyncio.wait_for(invoke(tool, speech_state.handle(call, spoke=False)), SECOND)

    assert speech_state.said == ["Thank you for calling. Goodbye!"]
    assert call.hung_up == EndReason.AGENT_HUNG_UP


async def test_transfer_reports_the_result_and_ends_our_leg_when_accepted() -> None:
    call, speech_state = FakeCallTransport(RATE), Speech()

    output = await invoke(transfer, speech_state.handle(call), {"target": "sip:desk@example.com"})

    assert json.loads(output) == {
        "target": "sip:desk@example.com",
        "accepted": True,
        "status_code": 200,
        "reason": "OK",
        "type": "transfer_result",
    }
    assert call.transfers == ["sip:desk@example.com"]
    assert (call.hung_up, speech_state.ended) == ("transferred", ["transferred"])


async def test_a_refused_transfer_keeps_the_caller_with_the_agent() -> None:
    call, speech_state = FakeCallTransport(RATE, transfer_status=486, transfer_reason="Busy Here"), Speech()

    output = await invoke(transfer, speech_state.handle(call), {"target": "sip:desk@example.com"})

    assert json.loads(output)["accepted"] is False
    assert json.loads(output)["status_code"] == 486
    assert (call.hung_up, speech_state.ended) == (None, [])


async def test_send_dtmf_sends_valid_digits_only() -> None:
    call, speech_state = FakeCallTransport(RATE), Speech()
    handle = speech_state.handle(call)

    assert await invoke(send_dtmf, handle, {"digits": "12#"}) == "Sent the keys 12#."
    refused = await invoke(send_dtmf, handle, {"digits": "1x"})

    assert call.dtmf_sent == ["12#"]
    assert "0-9 * # A-D" in refused


async def test_call_tools_off_the_phone_say_so() -> None:
    output = await invoke(hang_up, None)

    assert "not a phone call" in output


# --- in a session ------------------------------------------------------------------------------


def goodbye(ms: int = 400, response_id: str = "r_bye") -> list[Any]:
    """One response: "Goodbye!" spoken, then a hang_up call (as OpenAI's models do it)."""
    spoken = speech("Goodbye!", sample_rate=RATE, duration_ms=ms, item_id="a_bye", response_id=response_id)
    call = tool_call("hang_up", {}, response_id=response_id)
    return [*spoken[:-1], call[1], spoken[-1]]


async def play_until(run: Run, condition: Any, limit_ms: int = 3000) -> None:
    """Tick the fake clock in real time (the hang-up polls the transport) until `condition()`."""
    for _ in range(limit_ms // 20):
        if condition():
            return
        run.transport.tick()
        await asyncio.sleep(POLL_S / 2)
    raise AssertionError("condition not met")


async def call_session(agent: RealtimeAgent[Any], steps: list[ScriptStep], **kwargs: Any) -> Run:
    transport = kwargs.pop("transport", None) or FakeCallTransport(RATE)
    return await start(agent, steps, transport=transport, **kwargs)


async def test_the_model_hanging_up_ends_the_call_after_its_goodbye_is_heard() -> None:
    run = await call_session(RealtimeAgent("Desk"), [ScriptStep(SendUserMessage, goodbye())])
    assert isinstance(run.transport, FakeCallTransport)
    transport = run.transport
    assert [t.name for t in run.model.configs[0].tools] == ["hang_up", "transfer", "send_dtmf"]

    await run.session.send_message("That's all, bye.")
    await play_until(run, lambda: transport.hung_up is not None)
    result = await asyncio.wait_for(run.session.wait(), SECOND)

    assert transport.hung_up == EndReason.AGENT_HUNG_UP
    assert transport.queued_at_hang_up_ms == 0
    assert len(transport.played_audio("a_bye")) == RATE * 2 * 400 // 1000  # the whole goodbye
    assert result.end_reason == "agent_hung_up"
    assert run.model.sent(CreateResponse) == []  # it said goodbye itself: no farewell
    await run.close()


async def test_a_silent_hang_up_speaks_the_agents_farewell() -> None:
    farewell = "Thank you for calling. Goodbye!"
    agent = RealtimeAgent("Desk", tools=[hang_up_tool(farewell)])
    run = await call_session(
        agent,
        [
            ScriptStep(SendUserMessage, tool_call("hang_up", {})),
            ScriptStep(CreateResponse, speech(farewell, sample_rate=RATE, duration_ms=300, item_id="a_f")),
        ],
    )
    assert isinstance(run.transport, FakeCallTransport)
    transport = run.transport

    await run.session.send_message("goodbye")
    await play_until(run, lambda: transport.hung_up is not None)

    assert run.model.sent(CreateResponse) == [CreateResponse(say=farewell)]
    assert len(transport.played_audio("a_f")) == RATE * 2 * 300 // 1000
    assert (await asyncio.wait_for(run.session.wait(), SECOND)).end_reason == "agent_hung_up"
    await run.close()


async def test_the_transfer_result_is_the_tools_output_for_the_model() -> None:
    transport = FakeCallTransport(RATE, transfer_status=486, transfer_reason="Busy Here")
    run = await call_session(
        RealtimeAgent("Desk"),
        [ScriptStep(SendUserMessage, tool_call("transfer", {"target": "sip:sales@pbx"}))],
        transport=transport,
    )

    await run.session.send_message("Put me through to sales")
    await play_until(run, lambda: bool(run.model.sent(SendToolOutput)))

    [output] = run.model.sent(SendToolOutput)
    assert json.loads(output.output) == {
        "target": "sip:sales@pbx",
        "accepted": False,
        "status_code": 486,
        "reason": "Busy Here",
        "type": "transfer_result",
    }
    assert transport.hung_up is None and run.session.result.end_reason is None
    await run.close()


async def test_an_accepted_transfer_ends_the_session_as_transferred() -> None:
    run = await call_session(
        RealtimeAgent("Desk"), [ScriptStep(SendUserMessage, tool_call("transfer", {"target": "sip:a@b"}))]
    )
    assert isinstance(run.transport, FakeCallTransport)

    await run.session.send_message("Operator please")
    result = await asyncio.wait_for(run.session.wait(), SECOND)

    assert result.end_reason == "transferred"
    assert run.transport.hung_up == "transferred"
    await run.close()


async def test_send_dtmf_from_the_model_reaches_the_call() -> None:
    run = await call_session(
        RealtimeAgent("IVR"), [ScriptStep(SendUserMessage, tool_call("send_dtmf", {"digits": "42#"}))]
    )
    assert isinstance(run.transport, FakeCallTransport)

    await run.session.send_message("Press 42 pound")
    await play_until(run, lambda: bool(run.model.sent(SendToolOutput)))

    assert run.transport.dtmf_sent == ["42#"]
    assert run.model.sent(SendToolOutput)[0].output == "Sent the keys 42#."
    await run.close()


async def test_call_tools_can_be_turned_off_or_chosen_by_the_agent() -> None:
    @function_tool
    def transfer(department: str) -> str:
        """Transfer to a department of ours."""
        return department

    off = await call_session(RealtimeAgent("A"), [], config={"call_tools": False})
    own = await call_session(RealtimeAgent("B", tools=[transfer]), [])
    plain = await start(RealtimeAgent("C"), [])  # not a phone call

    assert off.model.configs[0].tools == ()
    assert [t.name for t in own.model.configs[0].tools] == ["transfer"]  # its own choice of call tools
    assert own.model.configs[0].tools[0].parameters["required"] == ["department"]
    assert plain.model.configs[0].tools == ()
    for run in (off, own, plain):
        await run.close()


async def test_tools_see_the_call_info_in_their_context() -> None:
    seen: list[tuple[str, str, str]] = []

    @function_tool
    def who_is_calling(ctx: ToolContext[Any]) -> str:
        """Who is calling."""
        assert ctx.call is not None
        info = ctx.call.info
        seen.append((info.caller_user, info.dialled_user, info.header("X-Twilio-CallSid")))
        return "ok"

    run = await call_session(
        RealtimeAgent("Desk", tools=[who_is_calling]),
        [ScriptStep(SendUserMessage, tool_call("who_is_calling", {}))],
    )
    await run.session.send_message("who am I")
    await settle()

    assert seen == [("+15551230000", "+15559870000", "CA0123456789abcdef")]
    await run.close()


async def test_dtmf_reaches_the_model_as_text_or_as_the_menu_entry_or_only_as_an_event() -> None:
    menu = {"1": "What are your opening hours?"}
    as_text = await call_session(RealtimeAgent("A"), [], config={"dtmf_as_text": True})
    with_menu = await call_session(RealtimeAgent("B", dtmf_menu=menu), [])
    events_only = await call_session(RealtimeAgent("C"), [])
    runs = (as_text, with_menu, events_only)

    for run in runs:
        run.transport.push_event(DtmfReceived("1", 100))
        run.transport.push_event(DtmfReceived("7", 100))
    await settle()

    assert as_text.model.sent(SendUserMessage) == [
        SendUserMessage("The caller pressed 1"),
        SendUserMessage("The caller pressed 7"),
    ]
    assert with_menu.model.sent(SendUserMessage) == [SendUserMessage("What are your opening hours?")]
    assert events_only.model.sent(SendUserMessage) == []
    for run in runs:
        assert [e.digit for e in run.of(RealtimeDtmf)] == ["1", "7"]
        await run.close()
