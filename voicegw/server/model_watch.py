"""Knowing whether a call's model can serve it: before answering, and while a response is due.

Before answering, a remote model is connected while the call rings (`Preconnectable`), within
`READY_TIMEOUT_S`; a model that cannot be had by then means 503 with Retry-After, never an
answered call with nobody on it. Once up, `ResponseWatch` notices a model that stops talking
while a response is due (the caller's turn ended, a response started, a tool result went back,
a greeting is owed): no model event at all for `timeout` seconds is a stall. That holds for the
embedded model too (an inference step that never returns), with `EMBEDDED_ALLOWANCE_S` more.
"""

from __future__ import annotations

import asyncio
import contextlib
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
EMBEDDED_ALLOWANCE_S = 8.0
"""How much longer than `response_timeout` the embedded model may be silent while it owes a
response. Its silences are inference on the machine's own cores: an LLM step over a long
prompt, a turn queued behind other calls', all slower under load (2.3 s between two events of a
normal call on 2 busy cores). Ending such a call would be worse than the silence; a step that
never returns is still ended."""


@runtime_checkable
class Preconnectable(Protocol):
    """A model that can connect ahead of its conversation (the OpenAI Realtime model)."""

    async def preconnect(self, config: RealtimeModelConfig) -> None: ...


class ResponseWatch:
    """Tracks, from a session's events, whether a response is due and when the model last spoke.

    `on_event` is fed every session event; `stalled()` returns once a due response has gone
    `timeout` seconds without a model event (run it as a task; cancel it when the call ends).
    """

    def __init__(self, timeout: float, *, greeting: bool = False) -> None:
        """`greeting`: the agent greets first, so a response is due from the start (from the
        model's connection on, when the model says it connects)."""
        self.timeout = timeout
        self._loop = asyncio.get_running_loop()
        self._due = greeting
        self._greeting_owed = greeting
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
            case RealtimeRawModelEvent(data=ModelConnectionStatus(status="connecting")):
                # Owed nothing yet: a remote model's connection is bounded while the call rings,
                # the embedded model's is loading and warming up its LLM (seconds under load).
                self._due = False
            case RealtimeRawModelEvent(data=ModelConnectionStatus(status="connected")):
                self._due = self._due or self._greeting_owed
            case RealtimeRawModelEvent(data=ModelSpeechStopped() | ModelResponseStarted()):
                self._due = True
                self._greeting_owed = False
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
            left = self._last + self.timeout - self._loop.time()
            if left <= 0:
                self.stalled_for = self._loop.time() - self._last
                return self.stalled_for
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)
