"""The one place that picks the event loop: uvloop when it is installed, asyncio's own otherwise.

uvloop runs the same coroutines with its I/O, timers and datagram transports in C (libuv), which
takes a share of every packet's cost off the media path. `voicegw serve`, `voicegw call` and any
process that runs calls (a worker) start their loop here, so all of them run on the same kind.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


LOOP_ENV = "VOICEGW_EVENT_LOOP"
"""Set to ``asyncio`` to run on the stdlib loop even where uvloop is installed (to compare them)."""


def _factory() -> tuple[str, Callable[[], asyncio.AbstractEventLoop]]:
    if os.environ.get(LOOP_ENV) == "asyncio":
        return "asyncio", asyncio.new_event_loop
    try:
        import uvloop
    except ImportError:  # a platform without uvloop's wheels: the stdlib loop does the same job
        return "asyncio", asyncio.new_event_loop
    return "uvloop", uvloop.new_event_loop


EVENT_LOOP, _NEW_LOOP = _factory()
"""``"uvloop"`` or ``"asyncio"``: the kind of loop `new_event_loop` makes (logged at start)."""


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A new event loop of the kind `EVENT_LOOP` names."""
    return _NEW_LOOP()


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(main)` on a loop from `new_event_loop`."""
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(main)
