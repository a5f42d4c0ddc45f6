"""The default front-desk agent: its tools, its keypad menu, its routing on the embedded model."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest

from tests.realtime.helpers import RATE, start
from voicegw.contracts.model import CreateResponse, SendToolOutput, SendUserMessage
from voicegw.models.local.dialog import route_tools
from voicegw.models.testing import ScriptStep, tool_call
from voicegw.realtime import DtmfReceived
from voicegw.server import config as server_config
from voicegw.server.config import ConfigError
from voicegw.server.default_agent import NO_OPERATOR, FrontDesk, FrontDeskDataError, front_desk
from voicegw.server.routing import Router
from voicegw.transports.testing import FakeCallTransport, settle

OPERATOR = "sip:operator@pbx.example.com"


def test_the_agent_greets_and_has_the_front_desk_tools() -> None:
    desk = FrontDesk.load()
    agent = front_desk()

    assert agent.greeting == desk.greeting and "press 1" in desk.greeting
    assert [t.name for t in agent.tools] == [
        "current_time",
        "opening_hours",
        "address",
        "directory",
        "transfer",
        "hang_up",
    ]
    assert agent.dtmf_menu["1"] == "What are your opening hours?"
    assert set(agent.dtmf_menu) == {"0", "1", "2"}


@pytest.mark.parametrize(
    ("said", "tool"),
    [
        ("What are your opening hours?", "opening_hours"),
        ("When do you open on Saturday?", "opening_hours"),
        ("What time is it?", "current_time"),
        ("Goodbye!", "hang_up"),
        ("Okay, thank you, bye.", "hang_up"),
        ("Can I speak to someone?", "transfer"),
        ("I would like to talk to a person.", "transfer"),  # the keypad's 0
        ("What is the extension for billing?", "directory"),
        ("Where are you located?", "address"),
    ],
)
def test_the_embedded_models_router_picks_the_right_tool(said: str, tool: str) -> None:
    specs = [t.spec() for t in front_desk().tools]

    assert [t.name for t in route_tools(said, specs)] == [tool]


def test_small_talk_routes_to_no_tool_so_nothing_hangs_up() -> None:
    specs = [t.spec() for t in front_desk().tools]

    for said in ("Hello, how are you?", "Thanks, that is all I needed to know about the weather."):
        assert route_tools(said, specs) == (), said


async def test_a_keypad_press_is_answered_from_the_faq() -> None:
    agent = front_desk()
    run = await start(
        agent,
        [ScriptStep(SendUserMessage, tool_call("opening_hours", {}))],
        transport=FakeCallTransport(RATE),
    )
    assert run.model.sent(CreateResponse) == [CreateResponse(say=agent.greeting)]

    run.transport.push_event(DtmfReceived("1", 100))
    await settle()

    assert run.model.sent(SendUserMessage) == [SendUserMessage("What are your opening hours?")]
    [output] = run.model.sent(SendToolOutput)
    assert "Monday to Friday from 8 AM to 6 PM" in output.output
    await run.close()


async def test_time_and_directory_answers() -> None:
    run = await start(
        front_desk(),
        [
            ScriptStep(SendUserMessage, tool_call("current_time", {}, call_id="c1")),
            ScriptStep(SendUserMessage, tool_call("directory", {"department": "Billing"}, call_id="c2")),
            ScriptStep(SendUserMessage, tool_call("directory", {"department": "zoo"}, call_id="c3")),
        ],
        transport=FakeCallTransport(RATE),
    )
    for question in ("What time is it?", "Billing extension?", "The zoo?"):
        await run.session.send_message(question)
        await settle()

    now, billing, zoo = (json.loads(o.output) for o in run.model.sent(SendToolOutput))
    assert re.fullmatch(r"\d{1,2}:\d\d [AP]M", now["time"]), now
    assert billing == {"department": "billing", "extension": "204", "floor": "second floor"}
    assert "no department 'zoo'" in zoo["error"] and "billing" in zoo["error"]
    await run.close()


async def test_without_an_operator_the_caller_is_told_so_and_stays() -> None:
    transport = FakeCallTransport(RATE)
    run = await start(
        front_desk(), [ScriptStep(SendUserMessage, tool_call("transfer", {}))], transport=transport
    )

    await run.session.send_message("I would like to talk to a person.")
    await settle()

    assert [o.output for o in run.model.sent(SendToolOutput)] == [NO_OPERATOR]
    assert transport.transfers == [] and transport.hung_up is None
    await run.close()


async def test_the_operator_transfer_goes_to_the_configured_address_only() -> None:
    transport = FakeCallTransport(RATE)
    run = await start(
        front_desk(operator=OPERATOR),
        [ScriptStep(SendUserMessage, tool_call("transfer", {}))],
        transport=transport,
    )
    assert "send_dtmf" not in [t.name for t in run.model.configs[0].tools]

    await run.session.send_message("Operator, please.")
    result = await asyncio.wait_for(run.session.wait(), 1.0)

    assert transport.transfers == [OPERATOR]
    assert result.end_reason == "transferred"
    await run.close()


def test_agent_options_come_from_the_agent_table(tmp_path: Path) -> None:
    path = tmp_path / "voicegw.toml"
    path.write_text(
        f'[server]\nagent = "voicegw.server.default_agent:front_desk"\n[agent]\noperator = "{OPERATOR}"\n'
    )

    config = server_config.load(path)

    assert config.agent_options == {"operator": OPERATOR}
    Router([], "voicegw.server.default_agent:front_desk", {"operator": OPERATOR})
    with pytest.raises(ConfigError, match=r"\[agent\]: .*operater"):
        Router([], "voicegw.server.default_agent:front_desk", {"operater": OPERATOR})


def test_a_broken_data_file_names_itself(tmp_path: Path) -> None:
    path = tmp_path / "desk.toml"
    path.write_text('name = "X"\n')

    with pytest.raises(FrontDeskDataError, match=r"desk\.toml: KeyError"):
        front_desk(data=path)
