"""`StepProgress`: which of a conversation's inference steps run in the pool, and how each fares."""

from __future__ import annotations

import asyncio
import threading
import time

from voicegw.models.local.workers import (
    STEP_IDLE_S,
    STEP_STALL_S,
    StepGap,
    StepProgress,
    computing,
    shared_model_stuck,
    submit_blocking,
    waiting_turn,
)

LATER_S = 30.0
"""How far ahead a step is looked at: a clock moved instead of a test that sleeps."""
WAIT_S = 10.0
"""Bound on every wait for a pool thread (never reached when the code works)."""


async def _until(condition: threading.Event) -> None:
    assert await asyncio.to_thread(condition.wait, WAIT_S)


def silent(progress: StepProgress, now: float) -> float:
    """The longest a running step has produced nothing (0.0: none runs)."""
    return max((gap.silent_s for gap in progress.gaps(now)), default=0.0)


def idle(progress: StepProgress, now: float) -> float:
    """The longest a running computing step's thread has used no processor (0.0: none)."""
    return max((gap.idle_s for gap in progress.gaps(now) if gap.idle_s is not None), default=0.0)


async def test_no_running_step_is_no_stall() -> None:
    progress = StepProgress()
    assert progress.gaps(time.monotonic() + LATER_S) == []
    assert await progress.run("stt", sum, [1, 2]) == 3
    assert progress.gaps(time.monotonic() + LATER_S) == []  # it ended
    assert progress.stuck(time.monotonic() + LATER_S) is None


async def test_a_running_step_that_produces_nothing_stalls_and_a_beat_revives_it() -> None:
    progress = StepProgress()
    started, beat, beaten, release = (threading.Event() for _ in range(4))

    def stuck() -> None:
        with progress.step("tts") as step:
            started.set()
            assert beat.wait(WAIT_S)
            step.beat()
            beaten.set()
            assert release.wait(WAIT_S)

    running = submit_blocking(stuck)
    await _until(started)
    assert silent(progress, time.monotonic() + LATER_S) >= LATER_S
    assert (
        progress.stuck(time.monotonic() + LATER_S)
        == f"an inference step (tts) produced nothing for {LATER_S} s"
    )
    await asyncio.sleep(0.2)
    beat.set()
    await _until(beaten)
    assert silent(progress, time.monotonic()) < 0.2  # counted from the beat, not the start
    release.set()
    await running
    assert progress.gaps(time.monotonic() + LATER_S) == []


def test_each_stage_has_its_own_bound_and_blocked_comes_first() -> None:
    for stage, bound in STEP_STALL_S.items():
        assert StepGap(stage, bound - 0.05, None).stuck is None
        assert StepGap(stage, bound, None).stuck is not None
    assert StepGap("llm", 0.0, STEP_IDLE_S - 0.05).stuck is None
    blocked = StepGap("llm", STEP_STALL_S["llm"], STEP_IDLE_S).stuck
    assert blocked is not None and "blocked (its thread used no processor time)" in blocked


async def test_a_step_waiting_for_a_shared_model_held_by_no_step_is_not_running() -> None:
    """The warm-up of a prompt (no step) holds the model: waiting is not stuck."""
    progress = StepProgress()
    model = threading.Lock()
    model.acquire()  # held elsewhere
    waiting, holding, release = threading.Event(), threading.Event(), threading.Event()

    def step() -> None:
        with progress.step("llm"):
            computing()
            waiting.set()
            with waiting_turn(model):
                holding.set()
                assert release.wait(WAIT_S)

    running = submit_blocking(step)
    await _until(waiting)
    await asyncio.sleep(0.05)  # now blocked on the lock
    assert progress.gaps(time.monotonic() + LATER_S) == []
    model.release()
    await _until(holding)
    assert silent(progress, time.monotonic() + LATER_S) >= LATER_S - 1.0
    release.set()
    await running


async def test_each_conversation_sees_only_its_own_steps() -> None:
    mine, theirs = StepProgress(), StepProgress()
    started, release = threading.Event(), threading.Event()

    def stuck() -> None:
        with theirs.step("stt"):
            started.set()
            assert release.wait(WAIT_S)

    running = submit_blocking(stuck)
    await _until(started)
    assert mine.gaps(time.monotonic() + LATER_S) == []
    (gap,) = theirs.gaps(time.monotonic() + LATER_S)
    # Not `computing` here (Whisper's step waits for CTranslate2's threads): never blocked-looking.
    assert gap.stage == "stt" and gap.silent_s > 0.0 and gap.idle_s is None
    release.set()
    await running


def test_waiting_turn_outside_a_step_only_holds_the_lock() -> None:
    model = threading.Lock()
    with waiting_turn(model):
        assert model.locked()
    assert not model.locked()
    computing()  # outside a step: nothing to watch


async def _gaps_when(work: str) -> tuple[float, float]:
    """Blocked-looking and silent seconds of a computing step whose thread `work`s ("blocks" or
    "spins") for a second and produces nothing, looked at as the watch does: every tenth of a
    second."""
    progress = StepProgress()
    started, release = threading.Event(), threading.Event()

    def step() -> None:
        with progress.step("llm"):
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
        progress.gaps(time.monotonic())
    now = time.monotonic()
    found = idle(progress, now), silent(progress, now)
    release.set()
    await running
    return found


async def test_a_computing_step_whose_thread_uses_no_processor_is_blocked() -> None:
    blocked, stalled = await _gaps_when("blocks")
    assert blocked >= 0.9 and stalled >= 0.9


async def test_a_computing_step_whose_thread_computes_is_only_without_progress() -> None:
    blocked, stalled = await _gaps_when("spins")
    assert blocked < 0.5 and stalled >= 0.9  # found by its stage's bound, later


async def test_a_step_waiting_for_a_shared_model_fares_as_the_step_holding_it() -> None:
    """Another call's step stuck in llama.cpp holds the model for good: the steps queued behind it
    are stuck too (not waiting their turn for ever with the caller in silence), and the process
    refuses new calls."""
    theirs, mine = StepProgress(), StepProgress()
    model = threading.Lock()
    holding, waiting, release = threading.Event(), threading.Event(), threading.Event()

    def holder() -> None:
        with theirs.step("llm"), waiting_turn(model):
            computing()
            holding.set()
            assert release.wait(WAIT_S)  # blocked: no processor time, no progress

    def waiter() -> None:
        with mine.step("llm"):
            waiting.set()
            with waiting_turn(model):
                pass

    held = submit_blocking(holder)
    await _until(holding)
    queued = submit_blocking(waiter)
    await _until(waiting)
    await asyncio.sleep(0.05)  # now blocked on the model
    later = time.monotonic() + LATER_S
    assert silent(mine, later) >= LATER_S and idle(mine, later) >= LATER_S
    assert "blocked" in str(mine.stuck(later))
    assert shared_model_stuck(later) and not shared_model_stuck(time.monotonic())
    release.set()
    await held
    await queued
    assert mine.gaps(later) == [] and not shared_model_stuck(later)
