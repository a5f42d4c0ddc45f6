"""Delta debugging (Zeller's ddmin), sans-I/O: the smallest input a predicate still holds for.

The predicate is "this input still crashes a fresh server", so it is costly: the search first
works on lines (a SIP message is made of them), then on bytes, and stops when its test budget
is spent, returning the smallest failing input found so far.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


def ddmin(items: Sequence[T], fails: Callable[[Sequence[T]], bool], *, budget: int) -> list[T]:
    """A 1-minimal sub-sequence of `items` for which `fails` holds (`fails(items)` must hold),
    or the smallest found once `budget` calls of `fails` are spent."""
    current = list(items)
    granularity = 2
    while len(current) >= 2 and budget > 0:
        size = len(current) // granularity
        chunks = [current[i : i + size] for i in range(0, len(current), size)] if size else [current]
        reduced = False
        for index in range(len(chunks)):
            if budget <= 0:
                break
            complement = [item for j, chunk in enumerate(chunks) if j != index for item in chunk]
            budget -= 1
            if complement and fails(complement):
                current, granularity, reduced = complement, max(granularity - 1, 2), True
                break
        if not reduced:
            if granularity >= len(current):
                break
            granularity = min(len(current), granularity * 2)
    return current


def minimise_message(data: bytes, fails: Callable[[bytes], bool], *, budget: int = 400) -> bytes:
    """The smallest message for which `fails` holds: whole lines first, then single bytes."""
    lines = data.splitlines(keepends=True)
    spent = [0]

    def counted(candidate: bytes) -> bool:
        spent[0] += 1
        return fails(candidate)

    smaller = b"".join(ddmin(lines, lambda ls: counted(b"".join(ls)), budget=budget // 2))
    remaining = budget - spent[0]
    return bytes(ddmin(list(smaller), lambda bs: counted(bytes(bs)), budget=remaining))
