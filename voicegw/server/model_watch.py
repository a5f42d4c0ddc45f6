"""Knowing whether a call's model can serve it: before answering, and while a response is due.

Before answering, a remote model is connected while the call rings (`Preconnectable`), within
`READY_TIMEOUT_S`; a model that cannot be had by then means 503 with Retry-After, never an
answered call with nobody on it. Once up, `ResponseWatch` notices a model that stops talking
while a response is due (the caller's turn ended, a response started, a tool result went back,
a greeting is owed): no model event at all for `timeout` seconds is a stall.

The embedded model's silences are inference on the machine's own cores, slow under load but
alive; its events say too little. It says itself how long its running step (Whisper, an LLM
step, a Piper clause) has produced nothing (`RealtimeModel.stalled_for`) and, for a step that
computes on its own thread, how long that thread has used no processor either
(`RealtimeModel.idle_for`). While a response is due, `STEP_IDLE_S` blocked or `STEP_STALL_S`
without progress is a stall, found within `STEP_POLL_S`. Its event silence gets
`EMBEDDED_ALLOWANCE_S` more than `timeout`, a backstop for a response that never reaches a step.
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
from voicegw.models.local.workers import STEP_IDLE_S, STEP_STALL_S
from voicegw.realtime.events import RealtimeRawModelEvent, RealtimeToolEnd

READY_TIMEOUT_S = 2.5
"""Ringing time the model gets to connect; the caller's side (Kamailio, a PBX) waits that long."""
EMBEDDED_ALLOWANCE_S = 8.0
"""How much longer than `response_timeout` the embedded model's events may be silent while it
owes a response: a turn queued behind other calls' inference, slow on busy cores, is not stuck.
A backstop only; a stuck step is found by `STEP_STALL_S`."""
STEP_POLL_S = 0.1
"""How often a due response's running step is looked at (what detection costs on top)."""


class StepWatch(Protocol):
    """What a model that infers in this process tells of its running steps (`RealtimeModel`)."""

    def stalled_for(self, now: float) -> float | None: ...

    def idle_for(self, now: float) -> float | None: ...


@runtime_checkable
class Preconnectable(Protocol):
    """A model that can connect ahead of its conversation (the OpenAI Realtime model)."""

    async def preconnect(self, config: RealtimeModelConfig) -> None: ...


class ResponseWatch:
    """Tracks, from a session's events, whether a response is due and when the model last spoke.

    `on_event` is fed every session event; `stalled()` returns once a due response has gone
    `timeout` seconds without a model event, or its model's running inference step (`steps`)
    `step_timeout` seconds without progress or `idle_timeout` seconds blocked (run it as a task;
    cancel it when the call ends).
    """

    def __init__(
        self,
        timeout: float,
        *,
        greeting: bool = False,
        steps: StepWatch | None = None,
        step_timeout: float = STEP_STALL_S,
        idle_timeout: float = STEP_IDLE_S,
    ) -> None:
        """`greeting`: the agent greets first, so a response is due from the start (from the
        model's connection on, when the model says it connects). `steps`: the model, asked every
        `STEP_POLL_S` while a response is due how its running step fares (a model that answers
        None is watched by its events alone)."""
        self.timeout = timeout
        self.step_timeout = step_timeout
        self.idle_timeout = idle_timeout
        self._steps = steps
        self._steps_tell = False
        self._loop = asyncio.get_running_loop()
        self._due = greeting
        self._greeting_owed = greeting
        self._last = self._loop.time()
        self._changed = asyncio.Event()
        self.stalled_for: float | None = None
        """Set when `stalled()` returns: how long the model had said nothing (or made no progress)."""
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

    async def stalled(self) -> float:
        """Wait for a stall; return how long the model had been silent (or made no progress)."""
        while True:
            self._changed.clear()
            if not self._due:
                await self._changed.wait()
                continue
            stuck = self._step_stuck()
            if stuck is not None:
                return stuck
            silent = self._loop.time() - self._last
            left = self.timeout - silent
            if left <= 0:
                self.detail = f"no model event for {silent:.1f} s while a response was due"
                self.stalled_for = silent
                return silent
            if self._steps_tell:  # a model that cannot tell (None) is watched by its events alone
                left = min(left, STEP_POLL_S)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)

    def _step_stuck(self) -> float | None:
        """How long the model's running step has been stuck, once past a bound (and the stall in
        words in `detail`); None while it is not, or the model cannot tell."""
        if self._steps is None:
            return None
        now = time.monotonic()
        idle = self._steps.idle_for(now)
        stuck = self._steps.stalled_for(now)
        self._steps_tell = stuck is not None
        if idle is not None and idle >= self.idle_timeout:
            self.detail = (
                f"an inference step produced nothing for {idle:.1f} s, blocked (its thread used no "
                "processor time), while a response was due"
            )
            self.stalled_for = idle
            return idle
        if stuck is not None and stuck >= self.step_timeout:
            self.detail = f"an inference step produced nothing for {stuck:.1f} s while a response was due"
            self.stalled_for = stuck
            return stuck
        return None
