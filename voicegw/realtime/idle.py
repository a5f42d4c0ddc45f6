"""The caller's idle timeout: ``input_audio_timeout_triggered`` after the agent has spoken.

Armed when a response ends, for the audio still to be played plus ``idle_timeout_ms``; disarmed
by anything the caller does (speech, a message). One loop timer, owned and cancelled here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class IdleTimeout:
    """Calls `fire` once the caller has been silent for `timeout_ms` after the agent's answer."""

    def __init__(self, timeout_ms: int, fire: Callable[[], None]) -> None:
        self._timeout_s = timeout_ms / 1000
        self._fire = fire
        self._handle: asyncio.TimerHandle | None = None

    def agent_done(self, unplayed_ms: float) -> None:
        """The agent's response ended with `unplayed_ms` of its audio still to be heard."""
        self.cancel()
        self._handle = asyncio.get_running_loop().call_later(
            unplayed_ms / 1000 + self._timeout_s, self._expire
        )

    def cancel(self) -> None:
        """The caller did something (or the session ends): no timeout now."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _expire(self) -> None:
        self._handle = None
        self._fire()
