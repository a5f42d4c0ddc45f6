"""The end-of-stream convention of transport queues: `None` after the last item."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TypeVar

T = TypeVar("T")


async def until_end(queue: asyncio.Queue[T | None]) -> AsyncIterator[T]:
    """The queue's items up to the `None` that ends it; the `None` is put back for another reader."""
    while (item := await queue.get()) is not None:
        yield item
    queue.put_nowait(None)
