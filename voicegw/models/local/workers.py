"""Where inference runs: one small thread pool per process, and a bound on concurrent turns.

Models are loaded once per process (`shared`) and used from the pool's threads, so the event
loop and the media clock never wait on STT, the LLM or TTS. `InferenceQueue` bounds how many
turns infer at once; beyond that turns queue, and once the queue is full the model reports
itself saturated so the server can refuse new calls (503).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import weakref
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

POOL_THREADS = 6
"""STT, LLM and TTS of overlapping turns; each library also uses its own intra-op threads."""

_pool: ThreadPoolExecutor | None = None
_shared: dict[tuple[Any, ...], Any] = {}
_shared_lock = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=POOL_THREADS, thread_name_prefix="voicegw-infer")
    return _pool


async def run_blocking(fn: Callable[..., T], *args: Any) -> T:
    """Run `fn(*args)` in the inference pool and await its result."""
    return await submit_blocking(fn, *args)


def submit_blocking(fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
    """Start `fn(*args)` in the inference pool now; the future resolves with its result."""
    return asyncio.get_running_loop().run_in_executor(_executor(), fn, *args)


def shared(key: tuple[Any, ...], load: Callable[[], T]) -> T:
    """The object loaded by `load` for `key`, loaded at most once per process (thread-safe)."""
    with _shared_lock:
        if key not in _shared:
            _shared[key] = load()
        value: T = _shared[key]
        return value


class InferenceQueue:
    """Bounds the turns inferring at once across every call of the process.

    `slots` turns run; up to `max_waiting` more wait their turn (FIFO, asyncio semaphore);
    `saturated` is true once that many are waiting.
    """

    def __init__(self, slots: int = 2, max_waiting: int = 4) -> None:
        if slots < 1 or max_waiting < 0:
            raise ValueError(f"need slots >= 1 and max_waiting >= 0, got {slots}, {max_waiting}")
        self.slots = slots
        self.max_waiting = max_waiting
        self._semaphore = asyncio.Semaphore(slots)
        self._running = 0
        self._waiting = 0

    @property
    def busy(self) -> bool:
        """Every slot is in use: a new turn would wait."""
        return self._running >= self.slots

    @property
    def saturated(self) -> bool:
        """The wait queue is full: new calls should be refused."""
        return self._waiting >= self.max_waiting

    @property
    def waiting(self) -> int:
        return self._waiting

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one inference slot for the body (waiting for one first if all are busy)."""
        self._waiting += 1
        try:
            await self._semaphore.acquire()
        finally:
            self._waiting -= 1
        self._running += 1
        try:
            yield
        finally:
            self._running -= 1
            self._semaphore.release()


_queues: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, InferenceQueue] = weakref.WeakKeyDictionary()


def queue_for_loop(slots: int, max_waiting: int) -> InferenceQueue:
    """The process-wide queue of the running event loop (created with these bounds on first use)."""
    loop = asyncio.get_running_loop()
    if loop not in _queues:
        _queues[loop] = InferenceQueue(slots, max_waiting)
    return _queues[loop]
