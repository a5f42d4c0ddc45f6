"""Where inference runs: one small thread pool per process, and a bound on concurrent turns.

Models are loaded once per process (`shared`) and used from the pool's threads, so the event
loop and the media clock never wait on STT, the LLM or TTS. `InferenceQueue` bounds how many
turns infer at once; beyond that turns queue, and once the queue is full the model reports
itself saturated so the server can refuse new calls (503). `StepProgress` knows which of a
conversation's steps are running in a pool thread and when each last produced something, so that
a step stuck inside a C library is told apart from one that is slow or waiting its turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
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


class StepProgress:
    """The inference steps of one conversation running in pool threads, and their last progress.

    A step counts from the moment a pool thread starts it (time spent in the executor's queue, or
    waiting for a shared model's lock in `waiting_turn`, is not running) until it returns;
    `Step.beat` marks progress inside it (an LLM token). Updated from pool threads, read from the
    event loop: single assignments to a dict under a lock. Times are `time.monotonic()`.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[Step, float] = {}

    @contextlib.contextmanager
    def step(self) -> Iterator[Step]:
        """Run the body as one step of this conversation (in the pool thread that runs it)."""
        step = Step(self)
        previous = getattr(_current, "step", None)
        _current.step = step
        step.beat()
        try:
            yield step
        finally:
            _current.step = previous
            with self._lock:
                self._running.pop(step, None)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """`run_blocking(fn, *args)`, as one step of this conversation."""

        def tracked() -> T:
            with self.step():
                return fn(*args)

        return await run_blocking(tracked)

    def stalled_for(self, now: float) -> float:
        """How long the running step that last produced something longest ago has produced
        nothing, in seconds up to `now`; 0.0 when no step is running."""
        with self._lock:
            return max((now - last for last in self._running.values()), default=0.0)

    def _mark(self, step: Step, running: bool) -> None:
        with self._lock:
            if running:
                self._running[step] = time.monotonic()
            else:
                self._running.pop(step, None)


class Step:
    """One running step of a `StepProgress`."""

    __slots__ = ("_progress",)

    def __init__(self, progress: StepProgress) -> None:
        self._progress = progress

    def beat(self) -> None:
        """The step produced something (a token, a chunk): it is alive."""
        self._progress._mark(self, True)

    def pause(self) -> None:
        """The step waits for something outside it (another conversation's inference)."""
        self._progress._mark(self, False)


_current = threading.local()
"""The step the current pool thread runs, if any."""


def progressed() -> None:
    """The step the current pool thread runs produced something (nothing outside a step)."""
    step: Step | None = getattr(_current, "step", None)
    if step is not None:
        step.beat()


@contextlib.contextmanager
def waiting_turn(lock: threading.Lock) -> Iterator[None]:
    """Hold `lock`, a model shared by every conversation of the process; the time spent waiting
    for it (behind another call's step, or the warm-up of a prompt) is not the running step's."""
    step: Step | None = getattr(_current, "step", None)
    if step is not None:
        step.pause()
    with lock:
        if step is not None:
            step.beat()
        yield


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
