"""The heartbeat's bookkeeping: a worker that stops answering is overdue, a late server is no excuse."""

from __future__ import annotations

import pytest

from voicegw.server.workers.heartbeat import Heartbeat


def test_a_worker_that_answers_is_never_overdue() -> None:
    beat = Heartbeat(100.0, interval=1.0, timeout=5.0)
    for second in range(1, 60):
        now = 100.0 + second
        seq = beat.tick(now)
        beat.answered(seq, now + 0.01)
        assert not beat.overdue(now + 0.01)
    assert beat.silent_for(159.01) == 0.0


def test_a_worker_silent_longer_than_the_bound_is_overdue() -> None:
    beat = Heartbeat(100.0, interval=1.0, timeout=5.0)
    beat.answered(beat.tick(101.0), 101.0)
    for second in range(2, 7):  # silent from 101 on: 5 s is still within the bound
        beat.tick(100.0 + second)
        assert not beat.overdue(100.0 + second)
    beat.tick(107.0)
    assert beat.overdue(107.0)
    assert beat.silent_for(107.0) == pytest.approx(6.0)


def test_a_late_answer_to_an_older_ping_still_counts() -> None:
    beat = Heartbeat(100.0, interval=1.0, timeout=5.0)
    first = beat.tick(101.0)
    for second in range(2, 6):
        beat.tick(100.0 + second)
    beat.answered(first, 105.5)  # the worker was busy, not stuck
    beat.tick(106.0)
    beat.tick(107.0)
    assert not beat.overdue(107.0)
    assert beat.silent_for(107.0) == pytest.approx(1.5)


def test_the_time_this_process_was_held_up_is_not_the_workers_silence() -> None:
    beat = Heartbeat(100.0, interval=1.0, timeout=5.0)
    beat.answered(beat.tick(101.0), 101.0)
    # Our own loop stalled 8 s: the worker's answer may be waiting unread in the socket.
    beat.tick(110.0)
    assert not beat.overdue(110.0)
    assert beat.silent_for(110.0) == pytest.approx(1.0)  # the punctual second only
    for now in (111.0, 112.0, 113.0, 114.0):
        beat.tick(now)
    assert not beat.overdue(114.0)
    beat.tick(115.0)
    assert beat.overdue(115.0)  # punctual again, and still no answer


def test_an_answer_to_a_ping_never_sent_is_refused() -> None:
    beat = Heartbeat(100.0)
    with pytest.raises(ValueError, match="answers no ping"):
        beat.answered(1, 100.5)
    beat.tick(101.0)
    for seq in (0, 2, -1):
        with pytest.raises(ValueError, match="answers no ping"):
            beat.answered(seq, 101.5)
    beat.answered(1, 101.5)
