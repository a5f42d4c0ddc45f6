"""Knowing whether a call's model can serve it: before answering, and while a response is due.

Before answering, a remote model is connected while the call rings (`Preconnectable`), within
`READY_TIMEOUT_S`; a model that cannot be had by then means 503 with Retry-After, never an
answered call with nobody on it. Once up, `ResponseWatch` notices a model that stops talking
while a response is due (the caller's turn ended, a response started, a tool result went back,
a greeting is owed): no model event at all for `timeout` seconds is a stall. That holds for the
embedded model too (an inference step that never returns); while it reports its response waiting
behind other calls' inference (`Queueing`: load, which the server meets with 503s) the silence
may last `QUEUED_MAX_S` longer.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from voicegw.contracts.model import (
    ModelConnectionStatus,
    ModelResponseDone,
    ModelResponseStarted,
    ModelSpeechStopped,
    RealtimeModelConfig,
)
from voicegw.realtime.events import RealtimeRawModelEvent, RealtimeToolEnd

READY_TIMEOUT_S = 2.5
"""Ringing time the model gets to connect; the caller's side (Kamailio, a PBX) waits that long."""
QUEUED_MAX_S = 10.0
"""How much longer a due response may wait behind other calls' inference (the embedded model's
queue holds a few turns of a few seconds each, and its warm-up waits for the LLM): past it, the
wait itself is a stall."""


@runtime_checkable
class Preconnectable(Protocol):
    """A model that can connect ahead of its conversation (the OpenAI Realtime model)."""

    async def preconnect(self, config: RealtimeModelConfig) -> None: ...


@runtime_checkable
class Queueing(Protocol):
    """A model whose responses may wait for an inference slot (the embedded model)."""

    @property
    def queued(self) -> bool:
        """A response of this model waits for a slot, behind other calls' inference."""
        ...


class ResponseWatch:
    """Tracks, from a session's events, whether a response is due and when the model last spoke.

    `on_event` is fed every session event; `stalled()` returns once a due response has gone
    `timeout` seconds without a model event (run it as a task; cancel it when the call ends).
    """

    def __init__(
        self, timeout: float, *, greeting: bool = False, queued: Callable[[], bool] | None = None
    ) -> None:
        """`greeting`: the agent greets first, so a response is due from the start; `queued`:
        whether the model's response waits its turn for inference (`QUEUED_MAX_S` more then)."""
        self.timeout = timeout
        self._queued = queued
        self._loop = asyncio.get_running_loop()
        self._due = greeting
        self._last = self._loop.time()
        self._changed = asyncio.Event()
        self.stalled_for: float | None = None
        """Set when `stalled()` returns: how long the model had said nothing."""

    @property
    def due(self) -> bool:
        return self._due

    def on_event(self, event: object) -> None:
        match event:
            case RealtimeRawModelEvent(
                data=ModelResponseDone() | ModelConnectionStatus(status="reconnecting")
            ):
                self._due = False  # answered, or lost with the connection (a new one does not replay it)
            case RealtimeRawModelEvent(data=ModelSpeechStopped() | ModelResponseStarted()):
                self._due = True
            case RealtimeToolEnd():
                self._due = True  # the model is to speak about the tool's result
            case RealtimeRawModelEvent():
                pass
            case _:
                return
        self._last = self._loop.time()
        self._changed.set()

    async def stalled(self) -> float:
        """Wait for a stall; return how long the model had been silent."""
        while True:
            self._changed.clear()
            if not self._due:
                await self._changed.wait()
                continue
            queued = self._queued is not None and self._queued()
            left = self._last + self.timeout + (QUEUED_MAX_S if queued else 0.0) - self._loop.time()
            if left <= 0:
                self.stalled_for = self._loop.time() - self._last
                return self.stalled_for
            # Looked at again within `timeout` at most: the model may leave the queue meanwhile.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(left, self.timeout))
