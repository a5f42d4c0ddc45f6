"""`ResponseWatch`: a stall is a due response with no model event for `timeout` seconds."""

from __future__ import annotations

import asyncio

from voicegw.contracts.model import (
    ModelAudio,
    ModelConnectionStatus,
    ModelResponseDone,
    ModelResponseStarted,
    ModelSpeechStopped,
    RealtimeModelConfig,
)
from voicegw.models.openai import OpenAIRealtimeModel
from voicegw.models.testing import ScriptedModel
from voicegw.realtime.agent import RealtimeAgent
from voicegw.realtime.context import RunContextWrapper
from voicegw.realtime.events import RealtimeEventInfo, RealtimeRawModelEvent, RealtimeToolEnd
from voicegw.server.model_watch import Preconnectable, ResponseWatch

TIMEOUT = 0.05
INFO = RealtimeEventInfo(RunContextWrapper(None))


def raw(event: object) -> RealtimeRawModelEvent:
    return RealtimeRawModelEvent(event, INFO)  # type: ignore[arg-type]


async def stalls_within(watch: ResponseWatch, seconds: float) -> bool:
    try:
        await asyncio.wait_for(watch.stalled(), seconds)
    except TimeoutError:
        return False
    return True


async def test_nothing_due_is_never_a_stall() -> None:
    watch = ResponseWatch(TIMEOUT)
    assert not await stalls_within(watch, 4 * TIMEOUT)
    assert watch.detail is None


async def test_a_greeting_is_due_from_the_start() -> None:
    watch = ResponseWatch(TIMEOUT, greeting=True)
    assert await stalls_within(watch, 20 * TIMEOUT)
    assert watch.detail is not None and watch.detail.startswith("no model event for")


async def test_the_end_of_the_callers_turn_makes_a_response_due_until_it_is_done() -> None:
    watch = ResponseWatch(TIMEOUT)
    watch.on_event(raw(ModelSpeechStopped(1000)))
    assert watch.due
    watch.on_event(raw(ModelResponseStarted("r1")))
    watch.on_event(raw(ModelAudio("a1", "r1", b"\0\0")))
    watch.on_event(raw(ModelResponseDone("r1", "completed")))
    assert not watch.due
    assert not await stalls_within(watch, 4 * TIMEOUT)


async def test_events_keep_a_long_response_alive_and_silence_stalls_it() -> None:
    watch = ResponseWatch(TIMEOUT)
    watch.on_event(raw(ModelResponseStarted("r1")))
    stalled = asyncio.ensure_future(watch.stalled())
    for _ in range(5):  # each event moves the deadline
        await asyncio.sleep(TIMEOUT / 2)
        watch.on_event(raw(ModelAudio("a1", "r1", b"\0\0")))
    assert not stalled.done()
    await asyncio.wait_for(stalled, 20 * TIMEOUT)


async def test_a_tool_result_makes_a_response_due_and_a_reconnection_drops_it() -> None:
    watch = ResponseWatch(TIMEOUT)
    watch.on_event(RealtimeToolEnd(RealtimeAgent(name="A"), None, "{}", "ok", "c1", INFO))  # type: ignore[arg-type]
    assert watch.due
    watch.on_event(raw(ModelConnectionStatus("reconnecting")))  # the new session will not answer it
    assert not watch.due


def test_only_a_remote_model_connects_ahead() -> None:
    assert isinstance(OpenAIRealtimeModel(api_key="k"), Preconnectable)
    assert not isinstance(ScriptedModel(), Preconnectable)
    assert RealtimeModelConfig(sample_rate=8000).sample_rate == 8000


async def test_a_greeting_is_due_once_the_model_has_connected_and_only_once() -> None:
    watch = ResponseWatch(TIMEOUT, greeting=True)
    watch.on_event(raw(ModelConnectionStatus("connecting")))  # the embedded model warming up
    assert not await stalls_within(watch, 4 * TIMEOUT)
    watch.on_event(raw(ModelConnectionStatus("connected")))
    assert watch.due
    watch.on_event(raw(ModelResponseStarted("r1")))
    watch.on_event(raw(ModelResponseDone("r1", "completed")))
    watch.on_event(raw(ModelConnectionStatus("reconnecting")))
    watch.on_event(raw(ModelConnectionStatus("connected")))  # a reconnection does not greet again
    assert not watch.due


class _Steps:
    """A model's `stuck_step`, set by the test."""

    def __init__(self) -> None:
        self.stuck: str | None = None
        self.asked = 0

    def stuck_step(self, now: float) -> str | None:
        self.asked += 1
        return self.stuck


async def test_a_stuck_step_stalls_long_before_the_event_timeout() -> None:
    steps = _Steps()
    watch = ResponseWatch(60.0, steps=steps)
    watch.on_event(raw(ModelSpeechStopped(1000)))
    stalled = asyncio.ensure_future(watch.stalled())
    await asyncio.sleep(0.3)
    assert not stalled.done() and steps.asked >= 2  # looked at every STEP_POLL_S, events or not
    steps.stuck = "an inference step (llm) produced nothing for 1.5 s"
    detail = await asyncio.wait_for(stalled, 5.0)
    assert detail == watch.detail == f"{steps.stuck}, while a response was due"


async def test_a_stuck_step_is_no_stall_while_no_response_is_due() -> None:
    steps = _Steps()
    steps.stuck = "an inference step (stt) produced nothing for 10.0 s"
    watch = ResponseWatch(60.0, steps=steps)
    assert not await stalls_within(watch, 0.5)
    watch.on_event(raw(ModelResponseStarted("r1")))
    assert await stalls_within(watch, 5.0)


async def test_a_model_that_does_not_watch_its_steps_is_watched_by_its_events() -> None:
    watch = ResponseWatch(TIMEOUT)
    watch.on_event(raw(ModelResponseStarted("r1")))
    assert await stalls_within(watch, 20 * TIMEOUT)
    assert watch.detail is not None and watch.detail.startswith("no model event for")


def test_a_remote_model_cannot_tell_its_steps_progress() -> None:
    for model in (OpenAIRealtimeModel(api_key="k"), ScriptedModel()):
        assert not model.watches_steps and model.stuck_step(0.0) is None
