"""Knowing whether a call's model can serve it: before answering, and while a response is due.

Before answering, a remote model is connected while the call rings (`Preconnectable`), within
`READY_TIMEOUT_S`; a model that cannot be had by then means 503 with Retry-After, never an
answered call with nobody on it. Once up, `ResponseWatch` notices a model that stops talking
while a response is due (the caller's turn ended, a response started, a tool result went back,
a greeting is owed): no model event at all for `timeout` seconds is a stall.

The embedded model's silences are inference on the machine's own cores, slow under load but
alive; its events say too little. It judges its running steps itself (Whisper, an LLM step, a
Piper clause: `RealtimeModel.stuck_step`, by their progress and, for a step computing on its own
thread, that thread's processor time): asked every `STEP_POLL_S` while a response is due, a step
it calls stuck is a stall. Its event silence gets `EMBEDDED_ALLOWANCE_S` more than `timeout`, a
backstop for a response that never reaches a step.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
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
"""How much longer than `response_timeout` the embedded model's events may be silent while it
owes a response: a turn queued behind other calls' inference, slow on busy cores, is not stuck.
A backstop only; the model finds a stuck step itself (`RealtimeModel.stuck_step`)."""
STEP_POLL_S = 0.1
"""How often a due response's running step is looked at (what detection costs on top)."""


class StepWatch(Protocol):
    """A model that judges its own inference steps (`RealtimeModel.stuck_step`)."""

    def stuck_step(self, now: float) -> str | None: ...


@runtime_checkable
class Preconnectable(Protocol):
    """A model that can connect ahead of its conversation (the OpenAI Realtime model)."""

    async def preconnect(self, config: RealtimeModelConfig) -> None: ...


class ResponseWatch:
    """Tracks, from a session's events, whether a response is due and when the model last spoke.

    `on_event` is fed every session event; `stalled()` returns once a due response has gone
    `timeout` seconds without a model event, or its model (`steps`) calls its running inference
    step stuck (run it as a task; cancel it when the call ends).
    """

    def __init__(self, timeout: float, *, greeting: bool = False, steps: StepWatch | None = None) -> None:
        """`greeting`: the agent greets first, so a response is due from the start (from the
        model's connection on, when the model says it connects). `steps`: a model that judges
        its own steps (`RealtimeModel.watches_steps`), asked every `STEP_POLL_S` while a response
        is due."""
        self.timeout = timeout
        self._steps = steps
        self._loop = asyncio.get_running_loop()
        self._due = greeting
        self._greeting_owed = greeting
        self._last = self._loop.time()
        self._changed = asyncio.Event()
        self.detail: str | None = None
        """Set when `stalled()` returns: the stall, in words for the log."""

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

    async def stalled(self) -> str:
        """Wait for a stall; return it in words (`detail`)."""
        while True:
            self._changed.clear()
            if not self._due:
                await self._changed.wait()
                continue
            stuck = self._steps.stuck_step(time.monotonic()) if self._steps is not None else None
            if stuck is not None:
                self.detail = f"{stuck}, while a response was due"
                return self.detail
            silent = self._loop.time() - self._last
            left = self.timeout - silent
            if left <= 0:
                self.detail = f"no model event for {silent:.1f} s while a response was due"
                return self.detail
            if self._steps is not None:
                left = min(left, STEP_POLL_S)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)
