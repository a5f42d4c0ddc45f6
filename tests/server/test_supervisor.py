from __future__ import annotations

import asyncio

from voicegw.contracts.model import ModelAudio
from voicegw.contracts.transport import EndReason
from voicegw.realtime.context import RunContextWrapper
from voicegw.realtime.events import RealtimeAudio, RealtimeEventInfo, RealtimeInputAudioTranscriptionDelta
from voicegw.server.supervisor import CallSupervisor


class Call:
    def __init__(self) -> None:
        self.said: list[tuple[float, str]] = []
        self.hung_up: tuple[float, EndReason, str] | None = None
        self.started = asyncio.get_running_loop().time()

    def now(self) -> float:
        return asyncio.get_running_loop().time() - self.started

    async def say(self, text: str) -> None:
        self.said.append((self.now(), text))

    async def hang_up(self, reason: EndReason, detail: str) -> None:
        self.hung_up = (self.now(), reason, detail)


INFO = RealtimeEventInfo(RunContextWrapper(None))


def supervisor(call: Call, *, no_input: float = 0.2, max_duration: float = 60.0) -> CallSupervisor:
    return CallSupervisor(
        call.say, call.hang_up, no_input_timeout=no_input, prompt="Still there?", max_duration=max_duration
    )


async def test_silent_caller_is_reprompted_then_hung_up() -> None:
    call = Call()
    reason = await asyncio.wait_for(supervisor(call).run(), 5)
    assert reason == "no input from the caller" and call.hung_up is not None
    assert call.hung_up[1:] == (EndReason.TIMEOUT, "no input from the caller")
    assert [text for _, text in call.said] == ["Still there?"]
    assert 0.15 <= call.said[0][0] < call.hung_up[0] and call.hung_up[0] >= 0.35


async def test_caller_activity_resets_the_reprompt_and_agent_audio_the_timer() -> None:
    call = Call()
    watcher = supervisor(call)
    task = asyncio.create_task(watcher.run())
    for _ in range(6):  # 0.6 s of an agent speaking and a caller answering: never idle
        await asyncio.sleep(0.1)
        watcher.on_event(RealtimeAudio(ModelAudio("item", "resp", b"\0\0"), "item", 0, INFO))
        watcher.on_event(RealtimeInputAudioTranscriptionDelta("item", "hello", INFO))
    assert call.said == [] and call.hung_up is None
    await asyncio.wait_for(task, 5)
    assert len(call.said) == 1 and call.hung_up is not None and call.hung_up[0] > 0.9


async def test_maximum_call_duration_ends_even_a_busy_call() -> None:
    call = Call()
    watcher = supervisor(call, no_input=10, max_duration=0.3)
    task = asyncio.create_task(watcher.run())
    while not task.done():
        watcher.on_event(RealtimeInputAudioTranscriptionDelta("item", "talking", INFO))
        await asyncio.sleep(0.05)
    assert task.result() == "maximum call duration reached" and call.said == []
