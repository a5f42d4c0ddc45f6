"""Keeps a call from going on forever: a caller who says nothing, a call that runs too long.

After `no_input_timeout` seconds in which neither side did anything (the caller spoke or pressed
a key, the agent spoke or ran a tool) the agent says the reprompt; after as long again with
nothing from the caller, the call ends. At `max_duration` it ends whatever is going on.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from voicegw.contracts.transport import EndReason
from voicegw.realtime.events import (
    RealtimeAudio,
    RealtimeAudioInterrupted,
    RealtimeDtmf,
    RealtimeInputAudioTranscriptionCompleted,
    RealtimeInputAudioTranscriptionDelta,
    RealtimeSessionEvent,
    RealtimeToolEnd,
    RealtimeToolStart,
    VoicegwSessionEvent,
)

CALLER_ACTIVITY = (
    RealtimeInputAudioTranscriptionDelta,
    RealtimeInputAudioTranscriptionCompleted,
    RealtimeAudioInterrupted,
    RealtimeDtmf,
)
AGENT_ACTIVITY = (RealtimeAudio, RealtimeToolStart, RealtimeToolEnd)


class CallSupervisor:
    """Watches a session's events; reprompts an idle caller, then hangs up; enforces a maximum."""

    def __init__(
        self,
        say: Callable[[str], Awaitable[None]],
        hang_up: Callable[[EndReason, str], Awaitable[None]],
        *,
        no_input_timeout: float,
        prompt: str,
        max_duration: float,
    ) -> None:
        self._say = say
        self._hang_up = hang_up
        self.no_input_timeout = no_input_timeout
        self.prompt = prompt
        self.max_duration = max_duration
        self._loop = asyncio.get_running_loop()
        self._started = self._last_activity = self._loop.time()
        self._reprompted = False
        self._activity = asyncio.Event()

    def on_event(self, event: RealtimeSessionEvent | VoicegwSessionEvent) -> None:
        if isinstance(event, CALLER_ACTIVITY):
            self._reprompted = False
        elif not isinstance(event, AGENT_ACTIVITY):
            return
        self._last_activity = self._loop.time()
        self._activity.set()

    async def run(self) -> str:
        """Return why the call was ended (after hanging it up); runs until then or cancelled."""
        while True:
            now = self._loop.time()
            idle_at = self._last_activity + self.no_input_timeout
            end_at = self._started + self.max_duration
            self._activity.clear()
            if now >= end_at:
                reason = "maximum call duration reached"
                break
            if now >= idle_at:
                if self._reprompted:
                    reason = "no input from the caller"
                    break
                self._reprompted = True
                self._last_activity = now
                await self._say(self.prompt)
                continue
            # Activity moves the idle deadline: wake up for it and recompute.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._activity.wait(), timeout=min(idle_at, end_at) - now)
        await self._hang_up(EndReason.TIMEOUT, reason)
        return reason
