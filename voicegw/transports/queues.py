"""The end-of-stream convention of transport queues: `None` after the last item."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TypeVar

from voicegw.audio.format import FRAME_MS
from voicegw.contracts.transport import AudioFrame

T = TypeVar("T")


async def until_end(queue: asyncio.Queue[T | None]) -> AsyncIterator[T]:
    """The queue's items up to the `None` that ends it; the `None` is put back for another reader."""
    while (item := await queue.get()) is not None:
        yield item
    queue.put_nowait(None)


async def queued_frames(queue: asyncio.Queue[bytes | None], sample_rate: int) -> AsyncIterator[AudioFrame]:
    """Caller audio of a transport that queues 20 ms PCM chunks, as frames, until it queues None."""
    position = 0
    async for pcm in until_end(queue):
        yield AudioFrame(pcm, sample_rate, timestamp_ms=position)
        position += FRAME_MS
