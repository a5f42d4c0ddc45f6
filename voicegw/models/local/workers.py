"""Where inference runs: one small thread pool per process, and a bound on concurrent turns.

Models are loaded once per process (`shared`) and used from the pool's threads, so the event
loop and the media clock never wait on STT, the LLM or TTS. `InferenceQueue` bounds how many
turns infer at once; beyond that turns queue, and once the queue is full the model reports
itself saturated so the server can refuse new calls (503). `StepProgress` knows which of a
conversation's steps are running in a pool thread, when each last produced something and, for a
step computing on its own thread, when that thread last used the processor, so that a step stuck
inside a C library is told apart from one that is slow or waiting its turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias, TypeVar

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


Stage: TypeAlias = Literal["stt", "llm", "tts"]
"""What an inference step does: a Whisper decode, an LLM step (a prompt read, then tokens), a Piper
clause."""

STEP_STALL_S: dict[Stage, float] = {"stt": 3.0, "llm": 3.0, "tts": 3.0}
"""How long a running step of each stage may produce nothing before it is stuck, busy or not: its
longest healthy gap with a margin. It finds a step spinning without end, or one computing on
threads we cannot watch (Whisper's, a remote chat-completions server's). `scripts/bench_latency.py`
prints the gaps; with 11 conversations in 3 processes on 2 cores the longest were 0.58 s (stt),
1.48 s (a prompt read in 128-token pieces) and 1.82 s (a long Piper clause): under 2 s, no bound
could tell a spinning step from a slow one."""
STEP_IDLE_S = 1.25
"""How long a step computing on its own thread may produce nothing and use no processor time
before it is stuck: a thread that computes, however slowly, uses some (in the run above, no
healthy LLM step or Piper clause went a tenth of a second without); one blocked in a C library (a
deadlock, a lock or read that never returns) uses none. Short enough that the caller hears the
apology within 1.5 s of the step blocking; long enough for a thread that waits its turn on a page
of the model read back from disk."""
CPU_USED_S = 0.001
"""Processor time a step's thread must have used since it was last seen busy to be busy again: a
thread blocked on a lock, a socket or an event uses none (a wake-up costs microseconds), while a
computing one, even on two cores shared by a dozen busy threads, uses far more than this within
the tenth of a second between two looks."""


@dataclass(frozen=True, slots=True)
class StepGap:
    """How a running step fares, as looked at once (`StepProgress.gaps`)."""

    stage: Stage
    silent_s: float
    """Since it last produced something."""
    idle_s: float | None
    """Since its thread last used the processor (or produced something); None when its work runs
    elsewhere (`computing` not said)."""

    @property
    def blocked(self) -> bool:
        """Its thread has used no processor for `STEP_IDLE_S`."""
        return self.idle_s is not None and self.idle_s >= STEP_IDLE_S

    @property
    def stuck(self) -> str | None:
        """What is stuck, in words, once past a bound; None while the step is not."""
        if self.blocked:
            return (
                f"an inference step ({self.stage}) produced nothing for {self.idle_s:.1f} s, blocked "
                "(its thread used no processor time)"
            )
        if self.silent_s >= STEP_STALL_S[self.stage]:
            return f"an inference step ({self.stage}) produced nothing for {self.silent_s:.1f} s"
        return None


@dataclass(slots=True)
class _Cpu:
    """The processor time of a computing step's thread, as last seen."""

    clock: int
    used: float
    """The thread's CPU clock when it was last seen busy."""
    busy_at: float
    """`time.monotonic()` then."""


class StepProgress:
    """The inference steps of one conversation running in pool threads, and their last progress.

    A step counts from the moment a pool thread starts it (time spent in the executor's queue is
    not running) until it returns; `Step.beat` marks progress inside it (an LLM token). A step
    whose work runs on its own thread (llama.cpp, Piper: `computing`) is also watched by that
    thread's processor time, so that one blocked for good is known sooner than a long but busy
    silence. A step waiting for a shared model (`waiting_turn`) fares as the step holding it: it
    waits for nothing while that one progresses, for ever once that one is stuck. Updated from
    pool threads, read from the event loop: single assignments to dicts under a lock. Times are
    `time.monotonic()`.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[Step, float] = {}
        self._waiting: dict[Step, threading.Lock] = {}
        self._cpu: dict[Step, _Cpu] = {}

    @contextlib.contextmanager
    def step(self, stage: Stage) -> Iterator[Step]:
        """Run the body as one step of this conversation (in the pool thread that runs it)."""
        step = Step(self, stage)
        previous = getattr(_current, "step", None)
        _current.step = step
        step.beat()
        try:
            yield step
        finally:
            _current.step = previous
            with self._lock:
                self._running.pop(step, None)
                self._waiting.pop(step, None)
                self._cpu.pop(step, None)

    async def run(self, stage: Stage, fn: Callable[..., T], *args: Any) -> T:
        """`run_blocking(fn, *args)`, as one step of this conversation."""

        def tracked() -> T:
            with self.step(stage):
                return fn(*args)

        return await run_blocking(tracked)

    def gaps(self, now: float) -> list[StepGap]:
        """How each running step fares up to `now`, and for a step waiting for a shared model, the
        step holding it. Each call reads the computing threads' CPU clocks (the watch asks every
        tenth of a second); a thread busy since the last look counts as busy now."""
        with self._lock:
            mine = [self._gap(step, now) for step in self._running]
            # Each holder is asked under its own conversation's lock, never both at once.
            waited = [_holding.get(model) for model in self._waiting.values()]
        holders = [h for h in waited if h is not None and h._progress is not self]
        theirs = [h._progress._gap_of(h, now) for h in holders]
        return [gap for gap in (*mine, *theirs) if gap is not None]

    def stuck(self, now: float) -> str | None:
        """The first stuck step of `gaps`, in words (a blocked one first); None while none is."""
        stuck = [gap for gap in self.gaps(now) if gap.stuck is not None]
        return min(stuck, key=lambda gap: not gap.blocked).stuck if stuck else None

    def _gap_of(self, step: Step, now: float) -> StepGap | None:
        with self._lock:
            return self._gap(step, now) if step in self._running else None

    def _gap(self, step: Step, now: float) -> StepGap:
        """Under `_lock`, for a running step."""
        last = self._running[step]
        cpu = self._cpu.get(step)
        idle = None
        if cpu is not None:
            with contextlib.suppress(OSError):  # the thread is gone: its step ends under this lock
                used = time.clock_gettime(cpu.clock)
                if used - cpu.used >= CPU_USED_S:
                    cpu.used, cpu.busy_at = used, time.monotonic()
            idle = max(0.0, now - max(last, cpu.busy_at))
        return StepGap(step.stage, max(0.0, now - last), idle)

    def _computing(self, step: Step) -> None:
        clock = time.pthread_getcpuclockid(threading.get_ident())
        with self._lock:
            if step not in self._cpu:
                self._cpu[step] = _Cpu(clock, time.clock_gettime(clock), time.monotonic())

    def _beat(self, step: Step) -> None:
        with self._lock:
            self._running[step] = time.monotonic()
            self._waiting.pop(step, None)

    def _wait(self, step: Step, model: threading.Lock) -> None:
        with self._lock:
            self._running.pop(step, None)
            self._waiting[step] = model


class Step:
    """One running step of a `StepProgress`."""

    __slots__ = ("_progress", "stage")

    def __init__(self, progress: StepProgress, stage: Stage) -> None:
        self._progress = progress
        self.stage: Stage = stage

    def beat(self) -> None:
        """The step produced something (a token, a chunk): it is alive."""
        self._progress._beat(self)


_current = threading.local()
"""The step the current pool thread runs, if any."""

_holding: dict[threading.Lock, Step] = {}
"""The step holding each shared model (`waiting_turn`); set and cleared by its holder alone, under
the model's lock, read by the steps waiting for it."""


def progressed() -> None:
    """The step the current pool thread runs produced something (nothing outside a step)."""
    step: Step | None = getattr(_current, "step", None)
    if step is not None:
        step.beat()


def computing() -> None:
    """The step the current pool thread runs does its work on this thread from now on (a C
    library computing here, not a remote server or a library's own threads): from now on a
    thread that uses no processor time is blocked (`StepGap.idle_s`). Nothing outside a step."""
    step: Step | None = getattr(_current, "step", None)
    if step is not None:
        step._progress._computing(step)


@contextlib.contextmanager
def waiting_turn(lock: threading.Lock) -> Iterator[None]:
    """Hold `lock`, a model shared by every conversation of the process. The running step waits
    for it as long as the step holding it progresses (behind another call's step, or the warm-up
    of a prompt, which is no step and so never stuck), and is stuck once that one is."""
    step: Step | None = getattr(_current, "step", None)
    if step is not None:
        step._progress._wait(step, lock)
    with lock:
        if step is not None:
            _holding[lock] = step
            step.beat()
        try:
            yield
        finally:
            if step is not None:
                del _holding[lock]


def shared_model_stuck(now: float) -> bool:
    """A model shared by every conversation of the process is held by a stuck step (`waiting_turn`):
    no call can be served until the process is restarted (a thread stuck in a C library cannot be
    stopped), so new calls are better refused."""
    gaps = [holder._progress._gap_of(holder, now) for holder in list(_holding.values())]
    return any(gap is not None and gap.stuck is not None for gap in gaps)


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
