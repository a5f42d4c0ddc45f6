"""The one media clock: a single asyncio task ticks every registered stream every 20 ms.

The schedule is absolute (`start + k * interval` on `loop.time()`), so lateness of one tick
never shifts the next one and pacing does not drift. When the loop was blocked for longer
than a tick, the missed ticks are caught up at once but at most `MAX_CATCH_UP` of them:
the far end gets at most a couple of back-to-back packets, and the rest are skipped (media
time is lost rather than sent as a burst that would overflow a jitter buffer).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Protocol, cast

import structlog

INTERVAL_MS = 20
MAX_CATCH_UP = 2
"""Extra ticks run back to back after a stall; further missed ticks are skipped."""

LATENESS_WINDOW = 3000
"""Recent lateness samples kept for percentiles (one minute at 20 ms)."""

log = structlog.get_logger(__name__)


class Tickable(Protocol):
    """Anything the media clock drives (an `RtpEndpoint`)."""

    def tick(self, now: float) -> None:
        """Latency-critical work: send this tick's packet. Runs for every stream first."""
        ...


class TwoPhaseTickable(Tickable, Protocol):
    def after_tick(self, now: float) -> None:
        """Work that can wait until every stream's packet left (decoding caller audio)."""
        ...


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list (0.0 for an empty one)."""
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


class MediaClock:
    """Ticks every added stream on one drift-free 20 ms schedule; see the module docstring."""

    def __init__(self, *, interval_ms: int = INTERVAL_MS) -> None:
        if interval_ms <= 0:
            raise ValueError(f"interval must be positive, got {interval_ms} ms")
        self.interval = interval_ms / 1000
        self._streams: dict[int, Tickable] = {}
        self._snapshot: tuple[Tickable, ...] = ()
        self._after: tuple[TwoPhaseTickable, ...] = ()
        self._task: asyncio.Task[None] | None = None
        self._lateness: deque[float] = deque(maxlen=LATENESS_WINDOW)
        self._send_phase: deque[float] = deque(maxlen=LATENESS_WINDOW)
        self._work: deque[float] = deque(maxlen=LATENESS_WINDOW)
        self._max_lateness = 0.0
        self.ticks = 0
        self.skipped_ticks = 0
        self.failures = 0

    def add(self, stream: Tickable) -> None:
        """Tick `stream` from the next tick on (adding twice is harmless).

        A stream with an `after_tick(now)` method gets it called once every stream's `tick`
        ran, so one call's decoding never delays another call's outbound packet.
        """
        self._streams[id(stream)] = stream
        self._update_snapshot()

    def remove(self, stream: Tickable) -> None:
        """Stop ticking `stream` (removing an unknown one is harmless)."""
        if self._streams.pop(id(stream), None) is not None:
            self._update_snapshot()

    def _update_snapshot(self) -> None:
        # Ticks iterate over these tuples, so streams may add or remove themselves mid-tick.
        self._snapshot = tuple(self._streams.values())
        # hasattr, not isinstance on a runtime protocol: that is slow, and this runs per add.
        self._after = tuple(cast(TwoPhaseTickable, s) for s in self._snapshot if hasattr(s, "after_tick"))

    def __len__(self) -> int:
        return len(self._streams)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        """Start the tick task; idempotent."""
        if not self.running:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="media-clock")

    async def stop(self) -> None:
        """Cancel the tick task and wait for it to end; idempotent."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            # Our own cancellation; re-raise only if *we* are being cancelled.
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        k = 0
        while True:
            k += 1
            due = start + k * self.interval
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                # Still yield, so a loop stuck behind us gets to run its I/O.
                await asyncio.sleep(0)
            now = loop.time()
            self._record(now - due)
            behind = int((now - due) / self.interval)
            if behind > MAX_CATCH_UP:
                # Jump the schedule: run this tick plus MAX_CATCH_UP, skip the rest.
                skip = behind - MAX_CATCH_UP
                self.skipped_ticks += skip
                k += skip
            for stream in self._snapshot:
                self._guarded(stream, stream.tick, now)
            self._send_phase.append(loop.time() - now)
            for two_phase in self._after:
                self._guarded(two_phase, two_phase.after_tick, now)
            self._work.append(loop.time() - now)

    def _record(self, lateness: float) -> None:
        self.ticks += 1
        self._lateness.append(lateness)
        self._max_lateness = max(self._max_lateness, lateness)

    def _guarded(self, stream: Tickable, method: Callable[[float], None], now: float) -> None:
        try:
            method(now)
        except Exception:
            # One broken call must not stop the media of every other call.
            self.failures += 1
            log.exception("media_tick_failed", stream=repr(stream))
            self.remove(stream)

    @property
    def stats(self) -> dict[str, float | int]:
        """Tick lateness in ms (p50/p99 over the recent window, max since start), how long the
        send phase (every stream's `tick`) and the whole tick took (p99), and counters."""
        values = sorted(self._lateness)
        return {
            "streams": len(self._streams),
            "ticks": self.ticks,
            "skipped_ticks": self.skipped_ticks,
            "failures": self.failures,
            "lateness_p50_ms": _ms(percentile(values, 0.50)),
            "lateness_p99_ms": _ms(percentile(values, 0.99)),
            "lateness_max_ms": _ms(self._max_lateness),
            "send_phase_p99_ms": _ms(percentile(sorted(self._send_phase), 0.99)),
            "tick_work_p99_ms": _ms(percentile(sorted(self._work), 0.99)),
        }


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)
