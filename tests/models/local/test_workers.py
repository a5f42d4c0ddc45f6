"""`StepProgress`: which of a conversation's inference steps run in the pool, and their progress."""

from __future__ import annotations

import asyncio
import threading
import time

from voicegw.models.local.workers import StepProgress, computing, submit_blocking, waiting_turn

LATER_S = 30.0
"""How far ahead `stalled_for` is asked: a clock moved instead of a test that sleeps."""
WAIT_S = 10.0
"""Bound on every wait for a pool thread (never reached when the code works)."""


async def _until(condition: threading.Event) -> None:
    assert await asyncio.to_thread(condition.wait, WAIT_S)


async def test_no_running_step_is_no_stall() -> None:
    progress = StepProgress()
    assert progress.stalled_for(time.monotonic() + LATER_S) == 0.0
    assert await progress.run(sum, [1, 2]) == 3
    assert progress.stalled_for(time.monotonic() + LATER_S) == 0.0  # it ended


async def test_a_running_step_that_produces_nothing_stalls_and_a_beat_revives_it() -> None:
    progress = StepProgress()
    started, beat, beaten, release = (threading.Event() for _ in range(4))

    def stuck() -> None:
        with progress.step() as step:
            started.set()
            assert beat.wait(WAIT_S)
            step.beat()
            beaten.set()
            assert release.wait(WAIT_S)

    running = submit_blocking(stuck)
    await _until(started)
    assert progress.stalled_for(time.monotonic() + LATER_S) >= LATER_S
    await asyncio.sleep(0.2)
    beat.set()
    await _until(beaten)
    assert progress.stalled_for(time.monotonic()) < 0.2  # counted from the beat, not the start
    release.set()
    await running
    assert progress.stalled_for(time.monotonic() + LATER_S) == 0.0


async def test_a_step_waiting_for_a_shared_model_is_not_running_until_it_has_it() -> None:
    """Another call's step (or the warm-up of a prompt) holds the model: waiting is not stuck."""
    progress = StepProgress()
    model = threading.Lock()
    model.acquire()  # held elsewhere
    waiting, holding, release = threading.Event(), threading.Event(), threading.Event()

    def step() -> None:
        with progress.step():
            computing()
            waiting.set()
            with waiting_turn(model):
                holding.set()
                assert release.wait(WAIT_S)

    running = submit_blocking(step)
    await _until(waiting)
    await asyncio.sleep(0.05)  # now blocked on the lock
    assert progress.stalled_for(time.monotonic() + LATER_S) == 0.0
    assert progress.idle_for(time.monotonic() + LATER_S) == 0.0
    model.release()
    await _until(holding)
    assert progress.stalled_for(time.monotonic() + LATER_S) >= LATER_S - 1.0
    release.set()
    await running


async def test_each_conversation_sees_only_its_own_steps() -> None:
    mine, theirs = StepProgress(), StepProgress()
    started, release = threading.Event(), threading.Event()

    def stuck() -> None:
        with theirs.step():
            started.set()
            assert release.wait(WAIT_S)

    running = submit_blocking(stuck)
    await _until(started)
    assert mine.stalled_for(time.monotonic() + LATER_S) == 0.0
    assert theirs.stalled_for(time.monotonic() + LATER_S) > 0.0
    # Not `computing` here (Whisper's step waits for CTranslate2's threads): never idle.
    assert theirs.idle_for(time.monotonic() + LATER_S) == 0.0
    release.set()
    await running


def test_waiting_turn_outside_a_step_only_holds_the_lock() -> None:
    model = threading.Lock()
    with waiting_turn(model):
        assert model.locked()
    assert not model.locked()


async def _idle_when(work: str) -> tuple[float, float]:
    """`idle_for` and `stalled_for` of a computing step whose thread `work`s ("blocks" or "spins")
    for a second and produces nothing, asked as the watch asks: every tenth of a second."""
    progress = StepProgress()
    started, release = threading.Event(), threading.Event()

    def step() -> None:
        with progress.step():
            computing()
            started.set()
            if work == "blocks":
                assert release.wait(WAIT_S)
            else:
                while not release.is_set():
                    sum(range(1000))

    running = submit_blocking(step)
    await _until(started)
    for _ in range(10):
        await asyncio.sleep(0.1)
        progress.idle_for(time.monotonic())
    now = time.monotonic()
    idle, stalled = progress.idle_for(now), progress.stalled_for(now)
    release.set()
    await running
    assert progress.idle_for(time.monotonic() + LATER_S) == 0.0  # it ended
    return idle, stalled


async def test_a_computing_step_whose_thread_uses_no_processor_is_idle() -> None:
    idle, stalled = await _idle_when("blocks")
    assert idle >= 0.9 and stalled >= 0.9


async def test_a_computing_step_whose_thread_computes_is_not_idle_only_stalled() -> None:
    idle, stalled = await _idle_when("spins")
    assert idle < 0.5 and stalled >= 0.9  # found by `stalled_for`, later


def test_computing_outside_a_step_does_nothing() -> None:
    computing()


async def test_a_step_waiting_for_a_shared_model_fares_as_the_step_holding_it() -> None:
    """Another call's step stuck in llama.cpp holds the model for good: the steps queued behind it
    are stuck too (not waiting their turn for ever with the caller in silence)."""
    theirs, mine = StepProgress(), StepProgress()
    model = threading.Lock()
    holding, waiting, release = threading.Event(), threading.Event(), threading.Event()

    def holder() -> None:
        with theirs.step(), waiting_turn(model):
            computing()
            holding.set()
            assert release.wait(WAIT_S)  # blocked: no processor time, no progress

    def waiter() -> None:
        with mine.step():
            waiting.set()
            with waiting_turn(model):
                pass

    held = submit_blocking(holder)
    await _until(holding)
    queued = submit_blocking(waiter)
    await _until(waiting)
    await asyncio.sleep(0.05)  # now blocked on the model
    later = time.monotonic() + LATER_S
    assert mine.stalled_for(later) >= LATER_S and mine.idle_for(later) >= LATER_S
    release.set()
    await held
    await queued
    assert mine.stalled_for(later) == 0.0 and mine.idle_for(later) == 0.0
