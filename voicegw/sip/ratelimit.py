"""Per-key budgets in bounded memory, time injected: request rates and lockouts after failures.

`RateLimiter` is Kamailio pike's idea as token buckets: each source may send `burst` requests at
once and `rate` a second after that. `Lockout` stops guessing: after `max_failures` failures in a
row a key is refused for a back-off period that doubles with each lockout that follows.

Both keep at most `capacity` keys, the least recently seen going first, so a flood from spoofed
sources costs a fixed amount of memory. An evicted key comes back with a fresh budget; the key
that is flooding right now is the most recent one and is never the one evicted.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

DEFAULT_CAPACITY = 16384
"""Keys remembered per table: a few MB at most."""

MAX_DOUBLINGS = 32
"""Past this the back-off is at its ceiling anyway; the bound keeps 2**n a float."""

V = TypeVar("V")


class RecentTable(Generic[V]):
    """A mapping of at most `capacity` keys that forgets the least recently used first."""

    def __init__(self, capacity: int, new: Callable[[], V]) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self._new = new
        self._items: OrderedDict[str, V] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: str) -> V | None:
        """The value of `key` (now the most recent), or None."""
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def setdefault(self, key: str) -> V:
        """The value of `key`, a new one if it had none (evicting the least recent if full)."""
        value = self.get(key)
        if value is None:
            value = self._items[key] = self._new()
            if len(self._items) > self.capacity:
                self._items.popitem(last=False)
        return value

    def pop(self, key: str) -> None:
        self._items.pop(key, None)


@dataclass(slots=True)
class _Bucket:
    tokens: float = -1.0
    """-1: new, filled on first use."""
    stamp: float = 0.0


class RateLimiter:
    """A token bucket per key: `burst` requests at once, then `rate` a second."""

    def __init__(self, rate: float, burst: float, *, capacity: int = DEFAULT_CAPACITY) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"rate must be above 0 and burst at least 1, got {rate} and {burst}")
        self.rate = rate
        self.burst = burst
        self._buckets: RecentTable[_Bucket] = RecentTable(capacity, _Bucket)

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: str, now: float) -> float:
        """0.0 when `key` may go on (one token spent), else the seconds until it may again."""
        bucket = self._buckets.setdefault(key)
        if bucket.tokens < 0:
            bucket.tokens = self.burst
        else:
            # max(): a clock stepping back must not drain the bucket.
            elapsed = max(0.0, now - bucket.stamp)
            bucket.tokens = min(self.burst, bucket.tokens + elapsed * self.rate)
        bucket.stamp = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0.0
        return (1 - bucket.tokens) / self.rate


@dataclass(slots=True)
class _Strikes:
    failures: int = 0
    last: float = 0.0
    locked_until: float = 0.0
    lockouts: int = 0


class Lockout:
    """Refuses a key for a while after `max_failures` failures in a row.

    The first lockout lasts `period` seconds, each one that follows twice the one before, up to
    `max_period`; a success, or `max_period` without failures, clears the key.
    """

    def __init__(
        self, max_failures: int, period: float, *, max_period: float, capacity: int = DEFAULT_CAPACITY
    ) -> None:
        if max_failures < 1 or period <= 0 or max_period < period:
            raise ValueError(
                "need max_failures >= 1 and 0 < period <= max_period, "
                f"got {max_failures}, {period}, {max_period}"
            )
        self.max_failures = max_failures
        self.period = period
        self.max_period = max_period
        self._strikes: RecentTable[_Strikes] = RecentTable(capacity, _Strikes)

    def __len__(self) -> int:
        return len(self._strikes)

    def locked(self, key: str, now: float) -> float:
        """The seconds `key` stays locked out (0.0: it may try)."""
        strikes = self._strikes.get(key)
        return max(0.0, strikes.locked_until - now) if strikes is not None else 0.0

    def failed(self, key: str, now: float) -> None:
        """Count a failure of `key`; the one that reaches `max_failures` locks it out."""
        strikes = self._strikes.setdefault(key)
        if now - strikes.last > self.max_period:
            strikes.failures = strikes.lockouts = 0
        strikes.last = now
        strikes.failures += 1
        if strikes.failures >= self.max_failures:
            strikes.locked_until = now + min(self.max_period, self.period * 2**strikes.lockouts)
            strikes.lockouts = min(strikes.lockouts + 1, MAX_DOUBLINGS)
            strikes.failures = 0

    def succeeded(self, key: str) -> None:
        """`key` got it right: its failures are forgotten."""
        self._strikes.pop(key)
