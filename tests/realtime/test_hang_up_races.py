"""A caller hanging up at any moment is a normal end: no error event, no failed task, no traceback.

A SIP call's transport refuses `play()` once the call has ended (`TransportClosed`); agent audio
or the tool filler's tone can still be on the way at that moment. The fake transport is made to
refuse the same way right after the caller's hang-up.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from structlog.testing import capture_logs

from tests.realtime.helpers import RATE, Run, start
from voicegw.contracts.model import ModelAudio, SendUserMessage
from voicegw.models.testing import ScriptStep, tool_call
from voicegw.realtime import RealtimeAgent, RealtimeError, function_tool
from voicegw.realtime.tool_calls import FILLER_CHUNK_MS
from voicegw.transports.testing import settle


@pytest.fixture
def logs() -> Iterator[list[dict[str, Any]]]:
    with capture_logs() as captured:
        yield captured


def hang_up(run: Run) -> None:
    run.transport.caller_hang_up()
    run.transport.closed = True  # as SipCallTransport: play() raises TransportClosed from now on


async def assert_ended_cleanly(run: Run, logs: list[dict[str, Any]]) -> None:
    result = await asyncio.wait_for(run.session.wait(), 2)
    assert result.end_reason == "caller_hung_up"
    assert run.consumer is not None
    await asyncio.wait_for(run.consumer, 2)  # the iteration re-raises a failed task: it must not
    assert run.of(RealtimeError) == []
    await run.close()
    assert [e for e in logs if e["log_level"] in ("error", "warning")] == []


async def test_agent_audio_arriving_as_the_caller_hangs_up_is_dropped_quietly(
    logs: list[dict[str, Any]],
) -> None:
    run = await start(RealtimeAgent("A"), [])
    hang_up(run)
    await run.session.on_event(ModelAudio("a1", "r1", bytes(RATE // 50 * 2)))
    await assert_ended_cleanly(run, logs)


@function_tool
async def book_table(guests: int) -> str:
    """Book a table (it never answers: the caller hangs up while it runs)."""
    await asyncio.Event().wait()
    return "booked"


async def test_hanging_up_during_a_tool_call_stops_the_thinking_tone_quietly(
    logs: list[dict[str, Any]],
) -> None:
    steps = [ScriptStep(SendUserMessage, tool_call("book_table", {"guests": 2}))]
    run = await start(RealtimeAgent("Bistro", tools=[book_table]), steps, config={"tool_filler_delay": 0.0})
    await run.session.send_message("a table for two?")
    await settle()
    await run.transport.advance(200)  # the tone is playing
    hang_up(run)
    # The tone goes out in chunks of FILLER_CHUNK_MS; once most of one is played the filler
    # (polling every quarter chunk, in real time) queues the next: after the hang-up.
    await run.transport.advance(FILLER_CHUNK_MS)
    await asyncio.sleep(FILLER_CHUNK_MS / 4000 + 0.2)
    await assert_ended_cleanly(run, logs)
