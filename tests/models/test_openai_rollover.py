"""Model session rollover against the local Realtime protocol server: the next session prepared in
the background and swapped in between turns, or taken over after the server ends one."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import numpy as np
import pytest
import structlog

from tests.models.conftest import Recorder, openai_model, tone
from voicegw.contracts.model import (
    ModelAudio,
    ModelConnectionStatus,
    ModelError,
    RealtimeModelConfig,
    SendAudio,
    SendToolOutput,
    SendUserMessage,
    ToolSpec,
)
from voicegw.models.openai import OpenAIRealtimeModel
from voicegw.testing.fake_realtime import FakeRealtimeServer

pytestmark = [pytest.mark.timeout(40), pytest.mark.usefixtures("no_tasks_left")]

RATE = 8000
FRAME = tone(700.0, 20, RATE)
CONFIG = RealtimeModelConfig(
    sample_rate=RATE,
    instructions="You answer questions about opening hours.",
    tools=(ToolSpec("hours", "Opening hours.", {"type": "object", "properties": {}}),),
)
FIRST_ANSWER_S = 2.0  # tests/models/data/rollover.json: ten 200 ms chunks, streamed over 1.5 s


async def caller(model: OpenAIRealtimeModel, seconds: float) -> None:
    """Caller audio at its real pace, 20 ms a frame, as a call's media clock sends it."""
    for _ in range(int(seconds * 50)):
        await model.send_event(SendAudio(FRAME))
        await asyncio.sleep(0.02)


def audio_of(recorder: Recorder, response_id: str) -> list[ModelAudio]:
    return [e for e in recorder.of("audio") if isinstance(e, ModelAudio) and e.response_id == response_id]


async def test_the_next_session_is_prepared_and_swapped_in_between_turns(
    fake_server: Callable[..., FakeRealtimeServer], recorder: Recorder
) -> None:
    loop = asyncio.get_running_loop()
    arrivals: dict[str, float] = {}

    class Timed(Recorder):
        async def on_event(self, event: object) -> None:
            if isinstance(event, ModelAudio):
                arrivals.setdefault(event.response_id, loop.time())
            await super().on_event(event)  # type: ignore[arg-type]

    timed = Timed()
    swapped_at: list[float] = []

    async def watch_swap(server: FakeRealtimeServer) -> None:
        """When caller audio first reaches the second session: the moment it was swapped in."""
        while len(server.connections) < 2 or not server.connections[1].input_wire:
            await asyncio.sleep(0.005)
        swapped_at.append(loop.time())

    async with fake_server("rollover") as server:
        # Prepared 1.98 s into the session: while the first answer still plays.
        model = openai_model(server, session_limit=2.2)
        model.add_listener(timed)
        with structlog.testing.capture_logs() as logs:
            await model.connect(CONFIG)
            talking = asyncio.create_task(caller(model, 10))
            watching = asyncio.create_task(watch_swap(server))
            try:
                # The second answer comes from the second session, once the caller's audio reaches it.
                await timed.wait_for("response_done", lambda e: e.response_id == "resp_A2")
            finally:
                for task in (talking, watching):
                    task.cancel()
                await asyncio.gather(talking, watching, return_exceptions=True)
                await model.close()
    first, second = server.connections
    # The new session got the agent's instructions and tools, and the conversation so far.
    update = second.of_type("session.update")[0]["session"]
    assert update["instructions"] == CONFIG.instructions and update["tools"][0]["name"] == "hours"
    items = [event["item"] for event in second.of_type("conversation.item.create")]
    assert items == [
        {"id": "item_USER1", "type": "message", "role": "user",
         "content": [{"type": "input_text", "text": "What time is it?"}]},
        {"id": "item_ASSIST1", "type": "message", "role": "assistant",
         "content": [{"type": "output_text", "text": "It is noon."}]},
    ]  # fmt: skip
    # Swapped in only once the first answer had played: the old session heard the caller until then.
    played_until = arrivals["resp_A1"] + FIRST_ANSWER_S
    assert swapped_at[0] >= played_until - 0.05, (swapped_at, played_until)
    assert first.closed_by_client and not first.expired
    assert len(audio_of(timed, "resp_A1")) == 10 and len(audio_of(timed, "resp_A2")) == 5
    assert not [e for e in timed.events if isinstance(e, ModelError)]
    statuses = [e.status for e in timed.events if isinstance(e, ModelConnectionStatus)]
    assert statuses == ["connecting", "connected"]  # the swap is no reconnection
    rolled = [entry for entry in logs if entry["event"] == "model_session_rolled_over"]
    assert len(rolled) == 1 and rolled[0]["session"] == "sess_ROLLED2" and rolled[0]["items"] == 2


@pytest.mark.parametrize("ended_by", ["command", "time limit"])
async def test_a_session_the_server_ends_is_replaced_with_the_conversation(
    fake_server: Callable[..., FakeRealtimeServer], recorder: Recorder, ended_by: str
) -> None:
    # By its time limit: 4 s, well after the first answer (done 2.4 s into the session).
    async with fake_server("rollover", session_limit=4.0 if ended_by == "time limit" else None) as server:
        model = openai_model(server)  # the real limit: no rollover of its own in this test
        model.add_listener(recorder)
        await model.connect(CONFIG)
        talking = asyncio.create_task(caller(model, 10))
        try:
            await recorder.wait_for("response_done", lambda e: e.response_id == "resp_A1")
            if ended_by == "command":
                await server.expire()
            async with asyncio.timeout(15):  # the expiry, a reconnection, then the answer
                while not [e for e in recorder.of("response_done") if e.response_id == "resp_A2"]:  # type: ignore[attr-defined]
                    await asyncio.sleep(0.05)
        finally:
            talking.cancel()
            await asyncio.gather(talking, return_exceptions=True)
            await model.close()
    first, second = server.connections
    assert first.expired
    assert [e["item"]["id"] for e in second.of_type("conversation.item.create")] == [
        "item_USER1",
        "item_ASSIST1",
    ]
    # The expiry is no error for the session: a reconnection, and the conversation goes on.
    assert not [e for e in recorder.events if isinstance(e, ModelError)]
    statuses = [e.status for e in recorder.events if isinstance(e, ModelConnectionStatus)]
    assert statuses[-2:] == ["reconnecting", "connected"]


async def test_a_long_conversation_is_replayed_with_its_oldest_part_condensed() -> None:
    from voicegw.models.openai_history import ConversationMirror

    mirror = ConversationMirror(RATE)
    for n in range(30):
        mirror.on_command(SendUserMessage(f"question {n} " + "x" * 1000))
    events = mirror.replay(max_chars=5000)
    assert events[0]["item"]["role"] == "system"
    assert events[0]["item"]["content"][0]["text"].startswith(
        "Earlier in this call (condensed, oldest first):"
    )
    kept = [e["item"]["content"][0]["text"] for e in events[1:]]
    assert [text.split()[1] for text in kept] == ["26", "27", "28", "29"]


def test_tool_calls_barge_ins_and_outputs_in_the_replay() -> None:
    from voicegw.contracts.model import ModelToolCall, ModelTranscriptDelta, TruncateItem
    from voicegw.models.openai_history import ConversationMirror, TurnQuiet

    mirror = ConversationMirror(RATE)
    quiet = TurnQuiet(RATE)
    one_second = np.zeros(RATE, dtype="<i2").tobytes()
    for event in (
        ModelTranscriptDelta("item_A", "resp_1", "Our hours are nine to five, Monday to Friday."),
        ModelAudio("item_A", "resp_1", one_second),
        ModelToolCall("call_1", "hours", "{}", "item_C", "resp_1"),
    ):
        mirror.on_event(event)
        quiet.on_event(event, now=10.0)
    assert not quiet.quiet(10.5)  # a call waits for its output, and the audio plays until 11.0
    mirror.on_command(TruncateItem("item_A", 500))  # the caller heard half of it
    mirror.on_command(SendToolOutput("call_1", '{"open": "9-17"}'))
    quiet.on_command(SendToolOutput("call_1", '{"open": "9-17"}'))
    assert not quiet.quiet(10.9) and quiet.quiet(11.0)
    items = [event["item"] for event in mirror.replay()]
    assert items[0]["content"][0]["text"] == "Our hours are nine to "  # half its 45 characters
    assert items[1] == {
        "id": "item_C",
        "type": "function_call",
        "call_id": "call_1",
        "name": "hours",
        "arguments": "{}",
    }
    assert items[2]["type"] == "function_call_output" and items[2]["call_id"] == "call_1"


def test_session_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="session_limit must be more than 0 seconds"):
        OpenAIRealtimeModel(api_key="k", session_limit=0)


def test_a_replaced_session_leaves_no_turn_in_progress() -> None:
    from voicegw.contracts.model import ModelResponseStarted, ModelSpeechStarted
    from voicegw.models.openai_history import TurnQuiet

    quiet = TurnQuiet(RATE)
    quiet.on_event(ModelSpeechStarted(0, "item_U"), now=1.0)
    quiet.on_event(ModelResponseStarted("resp_1"), now=1.0)
    assert not quiet.quiet(2.0)
    quiet.session_replaced()  # their speech_stopped and response.done will never come
    assert quiet.quiet(2.0)
