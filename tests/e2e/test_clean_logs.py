"""A normal call's life logs no ERROR and no traceback, whenever the caller hangs up.

The caller (the pjsua2 caller, playing a little silence) hangs up during the agent's greeting,
during a slow tool call (its thinking tone playing), and during a transfer (our REFER out, the
target not answering); then the server's whole JSON log is scanned. The model is the local
OpenAI-protocol server (the one fake allowed).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from voicegw.testing.fake_realtime import FakeRealtimeServer
from voicegw.testing.faults import silence_wav
from voicegw.testing.harness import free_udp_port, openai_agent_server, run_caller

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]

ERROR_LEVELS = ("error", "critical", "exception")


def unclean(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Lines at ERROR (or worse) or carrying a traceback."""
    return [
        e for e in events
        if e.get("level") in ERROR_LEVELS or "exception" in e or "Traceback" in str(e.get("exc_info", ""))
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("moment", "scenario", "agent", "config", "play_s"),
    [
        ("during the greeting", "greeting", "voicegw.testing.agents:welcomer", "", 0.3),
        ("during a tool call", "spoken_tool_call", "voicegw.testing.agents:slow_weather", "", 2.0),
        # The operator's address answers nothing: the REFER's NOTIFYs are pending as the caller leaves.
        ("during a transfer", "transfer", "voicegw.server.default_agent:front_desk", "operator", 0.3),
    ],
)
async def test_hanging_up_at_any_moment_logs_no_error(
    tmp_path: Path, moment: str, scenario: str, agent: str, config: str, play_s: float
) -> None:
    silence = silence_wav(tmp_path, play_s)
    options = f'[agent]\noperator = "sip:operator@127.0.0.1:{free_udp_port()}"\n' if config else ""
    async with FakeRealtimeServer(scenario) as model:
        server = openai_agent_server(tmp_path, agent, model.base_url, config=options)
        try:
            await asyncio.to_thread(server.wait_ready)
            report = await asyncio.to_thread(
                run_caller, server.uri, "--play", str(silence), "--end", "hangup"
            )
            await asyncio.sleep(1.0)  # the server's side of the hang-up: session end, cleanup
        finally:
            stopped = await asyncio.to_thread(server.stop)
    assert stopped, server.output()
    assert report["answered"], report
    events = server.log_events()
    ended = [e for e in events if e.get("event") == "call_ended"]
    assert [e["reason"] for e in ended] == ["caller hung up"], (moment, server.output())
    assert unclean(events) == [], (moment, unclean(events))
