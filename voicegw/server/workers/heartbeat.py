"""Is a worker's event loop still turning? The bookkeeping of its heartbeat, sans-I/O.

The server pings each worker every `HEARTBEAT_INTERVAL_S`; the worker's loop answers each `Ping`
with a `Pong` at once. A worker that dies is seen by its channel's end; one whose loop hangs (a
handler stuck in a blocking call, an infinite loop, a stopped process) is seen only here: it has
not answered for `UNRESPONSIVE_AFTER_S`. Time is a parameter: the caller reads the clock.
"""

from __future__ import annotations

HEARTBEAT_INTERVAL_S = 1.0
"""How often the server pings a worker (one small datagram each way: nothing at this rate)."""
UNRESPONSIVE_AFTER_S = 5.0
"""Silence after which a worker is killed. Long enough that a busy loop on a loaded machine is not
taken for a hung one (media paced in 20 ms frames is unusable long before a ping waits seconds for
its answer); short enough that a caller in dead air hears the BYE within seconds, before hanging up
wondering."""


class Heartbeat:
    """One worker's pings and answers: the next ping to send, and whether it is overdue."""

    def __init__(self, now: float, *, interval: float = HEARTBEAT_INTERVAL_S,
                 timeout: float = UNRESPONSIVE_AFTER_S) -> None:  # fmt: skip
        """`now`: when the worker started (it has answered nothing yet, but it just said `Started`)."""
        self.interval = interval
        self.timeout = timeout
        self._answered_at = now
        self._ticked_at = now
        self._sent = 0

    def tick(self, now: float) -> int:
        """Called about every `interval`: the sequence number of the ping to send now.

        A tick later than `interval` means this process's loop was held up, not the worker's: the
        lateness is not held against the worker (its answers may be waiting, unread, in our socket).
        """
        late = now - self._ticked_at - self.interval
        if late > 0:
            self._answered_at += late
        self._ticked_at = now
        self._sent += 1
        return self._sent

    def answered(self, seq: int, now: float) -> None:
        """The worker answered ping `seq` (a late answer to an older ping is alive all the same);
        ValueError for a ping never sent."""
        if not 0 < seq <= self._sent:
            raise ValueError(f"pong {seq} answers no ping (sent {self._sent})")
        self._answered_at = max(self._answered_at, now)

    def silent_for(self, now: float) -> float:
        """Seconds the worker has not answered (less any time this process itself was late)."""
        return max(0.0, now - self._answered_at)

    def overdue(self, now: float) -> bool:
        """Whether the worker has been silent longer than `timeout`: its loop is not turning."""
        return self.silent_for(now) > self.timeout
