"""RTP's counters and arrival timing, shared by the jitter buffer and the RTCP statistics.

`unwrap` extends a wrapping counter (16-bit sequence numbers, 32-bit timestamps);
`InterarrivalJitter` is RFC 3550's interarrival jitter estimate (section 6.4.1, appendix A.8).
Both are pure: arrival times are passed in, never read from a clock.
"""

from __future__ import annotations

SEQ_MODULUS = 1 << 16
TS_MODULUS = 1 << 32

JITTER_GAIN = 16
"""RFC 3550 A.8: the jitter estimate moves 1/16 of the way to each new difference."""


def unwrap(value: int, reference: int, modulus: int) -> int:
    """The extension of the wrapped counter `value` closest to the extended `reference`."""
    delta = (value - reference) % modulus
    if delta >= modulus // 2:
        delta -= modulus
    return reference + delta


class InterarrivalJitter:
    """J = J + (|D(i-1, i)| - J) / 16, in RTP timestamp units, over packets in arrival order."""

    def __init__(self, clock_rate: int) -> None:
        self.clock_rate = clock_rate
        self.value = 0.0
        """The estimate, in RTP timestamp units."""

        self._last_transit: float | None = None

    def add(self, timestamp: int, arrival: float) -> None:
        """One packet: its RTP `timestamp` (wrapped or extended) and `arrival` time in seconds."""
        # D(i-1, i) = (R_i - S_i) - (R_{i-1} - S_{i-1}), both terms in timestamp units.
        transit = arrival * self.clock_rate - timestamp
        if self._last_transit is not None:
            d = abs(transit - self._last_transit)
            # A 32-bit timestamp wrap looks like a jump of 2^32: take the short way round.
            d = min(d, abs(d - TS_MODULUS))
            self.value += (d - self.value) / JITTER_GAIN
        self._last_transit = transit

    def new_timeline(self) -> None:
        """The sender's timestamps jumped (a new talkspurt or source): the next packet starts a
        new difference, and the estimate so far is kept."""
        self._last_transit = None

    @property
    def ms(self) -> float:
        return self.value * 1000 / self.clock_rate
