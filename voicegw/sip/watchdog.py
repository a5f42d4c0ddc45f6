"""The set-up watchdog: no incoming call waits for its final response for ever. Sans-I/O.

An INVITE is answered by the set-up task; a bug, a stuck await or an exception nobody caught
there would leave the caller ringing and the call holding its RTP sockets and a `max_calls`
slot. The user agent watches every incoming call from the INVITE on, settles it when the final
response goes out, and ends whatever is still waiting at its deadline (with 500).
"""

from __future__ import annotations

SETUP_TIMEOUT_S = 10.0
"""How long set-up may take beyond the configured ringing (`answer_delay`)."""


class SetupWatchdog:
    """Deadlines of calls still without a final response, by call key; time is a parameter."""

    def __init__(self, timeout: float) -> None:
        if timeout <= 0:
            raise ValueError(f"set-up timeout must be positive, got {timeout}")
        self.timeout = timeout
        # One timeout for all and a clock that never goes back: insertion order is deadline order.
        self._deadlines: dict[int, float] = {}

    def watch(self, key: int, now: float) -> None:
        """A call arrived at `now`; it must have its final response by `now + timeout`."""
        self._deadlines[key] = now + self.timeout

    def settle(self, key: int) -> None:
        """Its final response went out (or it ended); settling twice or unknown keys is harmless."""
        self._deadlines.pop(key, None)

    def next_deadline(self) -> float | None:
        """When `expired` will next have something to hand out, or None with nothing watched."""
        return next(iter(self._deadlines.values()), None)

    def expired(self, now: float) -> list[int]:
        """The calls past their deadline at `now`, oldest first; they are no longer watched."""
        overdue: list[int] = []
        for key, deadline in self._deadlines.items():
            if deadline > now:
                break
            overdue.append(key)
        for key in overdue:
            del self._deadlines[key]
        return overdue

    def __len__(self) -> int:
        return len(self._deadlines)
