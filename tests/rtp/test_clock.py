import asyncio
import time

import pytest

from voicegw.rtp.clock import MediaClock, percentile


class Recorder:
    def __init__(self) -> None:
        self.times: list[float] = []

    def tick(self, now: float) -> None:
        self.times.append(now)


class Broken:
    def tick(self, now: float) -> None:
        raise RuntimeError("boom")


def test_percentile_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 0.5), percentile(values, 0.99), percentile(values, 1.0)) == (50.0, 99.0, 100.0)
    assert percentile([], 0.5) == 0.0


@pytest.mark.timeout(10)
async def test_ticks_on_an_absolute_schedule() -> None:
    clock = MediaClock()
    streams = [Recorder(), Recorder()]
    for s in streams:
        clock.add(s)
    clock.add(streams[0])  # twice: still ticked once per tick
    await clock.start()
    await asyncio.sleep(1.0)
    await clock.stop()
    await clock.stop()
    times = streams[0].times
    assert streams[1].times == times
    assert 45 <= len(times) <= 51
    # No drift: tick k happens near start + k * 20 ms, however late single ticks were.
    start = times[0] - 0.02
    errors = [t - (start + (k + 1) * 0.02) for k, t in enumerate(times)]
    assert max(abs(e) for e in errors) < 0.015
    stats = clock.stats
    assert stats["ticks"] == len(times) and stats["skipped_ticks"] == 0
    assert 0 <= stats["lateness_p50_ms"] <= stats["lateness_p99_ms"] <= stats["lateness_max_ms"] < 15


@pytest.mark.timeout(10)
async def test_stall_catches_up_without_burst() -> None:
    clock = MediaClock()
    rec = Recorder()
    clock.add(rec)
    await clock.start()
    await asyncio.sleep(0.1)
    time.sleep(0.2)  # noqa: ASYNC251 - deliberately block the loop for 10 ticks
    await asyncio.sleep(0.1)
    await clock.stop()
    gaps = [b - a for a, b in zip(rec.times, rec.times[1:], strict=False)]
    back_to_back = max(len(run) for run in "".join("b" if g < 0.005 else "." for g in gaps).split("."))
    assert back_to_back <= 2  # MAX_CATCH_UP extra ticks at most
    assert clock.stats["skipped_ticks"] >= 6
    assert clock.stats["lateness_max_ms"] >= 150


@pytest.mark.timeout(10)
async def test_broken_stream_is_removed_others_keep_ticking() -> None:
    clock = MediaClock()
    rec = Recorder()
    clock.add(Broken())
    clock.add(rec)
    await clock.start()
    await asyncio.sleep(0.2)
    assert clock.stats["failures"] == 1 and len(clock) == 1
    clock.remove(rec)
    count = len(rec.times)
    await asyncio.sleep(0.1)
    await clock.stop()
    assert count >= 5 and len(rec.times) == count
