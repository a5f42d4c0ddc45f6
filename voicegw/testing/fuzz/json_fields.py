"""Type confusion, swept exhaustively: every value of a known-good JSON message, at any depth,
replaced by a value of every JSON type, and every key dropped.

Byte-level fuzzing rarely turns ``"code": "x"`` into ``"code": []`` while keeping the rest of the
message valid, yet that is exactly what reaches a decoder's ``in frozenset`` or ``.get`` and
raises something other than its documented error. This sweep makes those messages directly.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

DEEP = 400
"""Nesting of the deepest swapped value: json parses it, but a decoder that recurses over it
(repr, str, a copy) may not."""

SWAPS: tuple[Any, ...] = (
    None,
    True,
    0,
    -1,
    2**64,
    -(2**64),
    1.5,
    1e308,
    float("inf"),
    float("-inf"),
    float("nan"),
    "",
    "x",
    "\udcff",
    "9" * 5000,
    [],
    [None],
    ["x", 1],
    {},
    {"": None},
    {"type": "x"},
    json.loads("[" * DEEP + "]" * DEEP),
)
"""The replacement values: each JSON type, its edges (empty, huge, non-finite, a lone surrogate
as decoded JSON may carry) and a deep nesting."""

FieldPath = tuple[str | int, ...]
"""Keys and indexes from the message down to one value."""

_DROPPED = object()


def _paths(value: Any, prefix: FieldPath = ()) -> Iterator[FieldPath]:
    """The path of every value inside `value` (not `value` itself)."""
    children: list[tuple[str | int, Any]]
    if isinstance(value, dict):
        children = list(value.items())
    elif isinstance(value, list):
        children = list(enumerate(value))
    else:
        return
    for key, child in children:
        yield (*prefix, key)
        yield from _paths(child, (*prefix, key))


def _replaced(value: Any, path: FieldPath, new: Any) -> Any:
    """A copy of `value` with the value at `path` replaced by `new` (or removed: `_DROPPED`)."""
    if not path:
        return new
    key, rest = path[0], path[1:]
    if isinstance(value, dict):
        copy: Any = dict(value)
    else:
        copy = list(value)
    child = _replaced(value[key], rest, new)
    if child is _DROPPED:
        del copy[key]
    else:
        copy[key] = child
    return copy


def field_swaps(message: Any) -> Iterator[Any]:
    """Copies of `message`, each with one value swapped for one of `SWAPS` or one key dropped."""
    for path in _paths(message):
        for new in SWAPS:
            yield _replaced(message, path, new)
        if isinstance(path[-1], str):
            yield _replaced(message, path, _DROPPED)


def swapped_texts(line: str | bytes) -> Iterator[str]:
    """`field_swaps` of one JSON message, as the text a peer would send (non-finite numbers as
    Python's json writes them: ``Infinity``, ``NaN``)."""
    for message in field_swaps(json.loads(line)):
        yield json.dumps(message)
