"""The server's admission check with a real embedded model: 503 while its inference is saturated."""

from __future__ import annotations

import asyncio
import contextlib

from voicegw.models.base import RealtimeModelConfig
from voicegw.server.app import MODEL_BUSY, AgentCalls
from voicegw.server.config import ModelChoice, ServerConfig
from voicegw.sip.call import CallInfo, Rejection


def info(source: str) -> CallInfo:
    return CallInfo("c1", "<sip:bob@host>", "<sip:desk@host>", (source, 5060))


async def test_a_saturated_model_turns_new_calls_away_with_503_until_it_drains() -> None:
    calls = AgentCalls(ServerConfig(model=ModelChoice("local")))
    assert calls.admit(info("192.168.1.5")) is None
    assert calls.admit(info("8.8.8.8")) == Rejection(403, "Forbidden")
    model = calls.new_model()
    await model.connect(RealtimeModelConfig(sample_rate=8000))
    try:
        queue = model._queue  # type: ignore[attr-defined]
        assert queue is not None
        async with contextlib.AsyncExitStack() as held:
            # Every inference slot busy, and as many turns waiting as the queue takes.
            for _ in range(queue.slots):
                await held.enter_async_context(queue.slot())
            waiting = [asyncio.create_task(_wait_for_slot(queue)) for _ in range(queue.max_waiting)]
            await asyncio.sleep(0)
            assert model.saturated
            assert calls.admit(info("127.0.0.1")) == MODEL_BUSY and MODEL_BUSY.status == 503
        await asyncio.gather(*waiting)
        assert not model.saturated and calls.admit(info("127.0.0.1")) is None
    finally:
        await model.close()


async def _wait_for_slot(queue) -> None:  # type: ignore[no-untyped-def]
    async with queue.slot():
        pass
