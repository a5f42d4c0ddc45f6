"""Per-key budgets (voicegw.sip.ratelimit): token buckets and lockouts in bounded memory."""

from __future__ import annotations

import pytest

from voicegw.sip.ratelimit import Lockout, RateLimiter, RecentTable


def test_a_bucket_gives_its_burst_then_its_rate() -> None:
    limiter = RateLimiter(rate=10, burst=3)
    assert [limiter.take("a", 0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("a", 0.0) == pytest.approx(0.1)
    assert limiter.take("a", 0.1) == 0.0
    assert limiter.take("b", 0.1) == 0.0  # another key, its own budget
    assert limiter.take("a", 100.0) == 0.0 and limiter.take("a", 100.0) == 0.0  # refilled to the burst only
    assert limiter.take("a", 100.0) == 0.0 and limiter.take("a", 100.0) > 0


def test_a_clock_stepping_back_neither_fills_nor_drains_a_bucket() -> None:
    limiter = RateLimiter(rate=1, burst=2)
    limiter.take("a", 10.0)
    assert limiter.take("a", 5.0) == 0.0
    assert limiter.take("a", 5.0) == pytest.approx(1.0)


def test_the_table_forgets_the_least_recent_key_first() -> None:
    table: RecentTable[list[int]] = RecentTable(2, list)
    table.setdefault("a").append(1)
    table.setdefault("b")
    assert table.get("a") == [1]  # now the most recent
    table.setdefault("c")
    assert len(table) == 2 and table.get("b") is None and table.get("a") == [1]
    with pytest.raises(ValueError, match="capacity"):
        RecentTable(0, list)


def test_the_flooding_key_keeps_its_empty_bucket_while_spoofed_keys_come_and_go() -> None:
    limiter = RateLimiter(rate=1, burst=1, capacity=100)
    assert limiter.take("flooder", 0.0) == 0.0
    for n in range(10_000):
        limiter.take(f"spoofed-{n}", 0.0)
        assert limiter.take("flooder", 0.0) > 0
    assert len(limiter) == 100


def test_lockout_after_failures_in_a_row_doubles_and_a_success_clears() -> None:
    lockout = Lockout(2, 10.0, max_period=25.0)
    lockout.failed("k", 0.0)
    assert lockout.locked("k", 0.0) == 0.0
    lockout.failed("k", 1.0)
    assert lockout.locked("k", 1.0) == 10.0
    lockout.failed("k", 12.0)
    lockout.failed("k", 12.0)
    assert lockout.locked("k", 12.0) == 20.0
    lockout.failed("k", 33.0)
    lockout.failed("k", 33.0)
    assert lockout.locked("k", 33.0) == 25.0  # the ceiling
    lockout.succeeded("k")
    assert lockout.locked("k", 34.0) == 0.0 and len(lockout) == 0


def test_failures_long_apart_start_over() -> None:
    lockout = Lockout(2, 10.0, max_period=20.0)
    lockout.failed("k", 0.0)
    lockout.failed("k", 21.0)
    assert lockout.locked("k", 21.0) == 0.0


def test_endless_lockouts_stay_at_the_ceiling() -> None:
    lockout = Lockout(1, 1.0, max_period=5.0)
    for n in range(2000):
        lockout.failed("k", n * 5.0)
    assert lockout.locked("k", 2000 * 5.0 - 5.0) == 5.0


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (1, 0.5)])
def test_a_bucket_needs_a_rate_and_a_burst(rate: float, burst: float) -> None:
    with pytest.raises(ValueError, match="rate must be above 0"):
        RateLimiter(rate, burst)
