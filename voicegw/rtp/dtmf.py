"""RFC 4733 telephone-events: the payload, a detector that reports each key once, a sender.

A key press travels as a burst of packets that all carry the event's start timestamp: a first
packet (marker set), updates every 50 ms with a growing duration, then the end packet sent
three times. Any of them can be lost, duplicated or reordered, so the detector keys events by
that timestamp and reports a digit once, on the first end packet it sees, or when the next
event starts or the packets stop while the end packets were all lost.
"""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass

from voicegw.rtp.events import DtmfDigit
from voicegw.rtp.packet import RtpParseError

DTMF_DIGITS = "0123456789*#ABCD"
"""Event codes 0-15 (RFC 4733 section 3.2); other codes (flash, tones) are not digits."""

PAYLOAD_LENGTH = 4
MAX_VOLUME = 63
MAX_DURATION = 0xFFFF
DEFAULT_VOLUME = 10
"""-10 dBm0, what common phones send."""

UPDATE_INTERVAL_MS = 50
"""RFC 4733 section 2.5.1.2 suggests 50 ms between updates of a long event."""

END_REPEAT_INTERVAL_MS = 20
"""One media tick between the end packets, as pjmedia sends them."""

END_REPEATS = 3
"""Section 2.5.1.4: the end packet is sent three times, so one loss does not lose the digit."""

END_TIMEOUT_S = 0.5
"""A started event with no packet for this long ended with all its end packets lost."""

_REPORTED_HISTORY = 16
"""Start timestamps of digits already reported: late retransmissions of their ends are ignored."""

_HEADER = struct.Struct("!BBH")


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    """One RFC 4733 telephone-event payload (section 2.3)."""

    event: int
    """Event code; 0-15 are the DTMF digits ``0123456789*#ABCD``."""

    end: bool
    """E bit: this is (a retransmission of) the event's final packet."""

    volume: int
    """Power level in -dBm0 (0-63)."""

    duration: int
    """Duration so far, in RTP timestamp units (0-65535)."""

    def __post_init__(self) -> None:
        if not 0 <= self.event <= 0xFF:
            raise ValueError(f"telephone-event code {self.event} is outside 0-255")
        if not 0 <= self.volume <= MAX_VOLUME:
            raise ValueError(f"telephone-event volume {self.volume} is outside 0-{MAX_VOLUME}")
        if not 0 <= self.duration <= MAX_DURATION:
            raise ValueError(f"telephone-event duration {self.duration} is outside 0-{MAX_DURATION}")

    @classmethod
    def parse(cls, data: bytes) -> TelephoneEvent:
        """Parse the payload of a telephone-event RTP packet (a peer's bytes: `RtpParseError`)."""
        if len(data) < PAYLOAD_LENGTH:
            raise RtpParseError(
                f"telephone-event payload has {len(data)} bytes, needs {PAYLOAD_LENGTH}", "truncated"
            )
        event, end_volume, duration = _HEADER.unpack_from(data)
        return cls(event=event, end=bool(end_volume & 0x80), volume=end_volume & 0x3F, duration=duration)

    def __bytes__(self) -> bytes:
        return _HEADER.pack(self.event, (0x80 if self.end else 0) | self.volume, self.duration)

    @property
    def digit(self) -> str | None:
        """The DTMF key this event stands for, or None for non-DTMF events."""
        return DTMF_DIGITS[self.event] if self.event < len(DTMF_DIGITS) else None


def digit_event_code(digit: str) -> int:
    """The event code of a DTMF key; raises ValueError for anything else."""
    code = DTMF_DIGITS.find(digit.upper()) if len(digit) == 1 else -1
    if code < 0:
        raise ValueError(f"{digit!r} is not a DTMF digit (one of {DTMF_DIGITS})")
    return code


@dataclass(slots=True)
class _PendingEvent:
    timestamp: int
    digit: str
    duration: int
    last_seen: float


class DtmfDetector:
    """Turns received telephone-event packets into one `DtmfDigit` per key press.

    Sans-I/O: `feed` each packet with its arrival `now`; call `poll(now)` once `deadline`
    has passed to report an event whose end packets were all lost.
    """

    def __init__(self, clock_rate: int) -> None:
        self._clock_rate = clock_rate
        self._pending: _PendingEvent | None = None
        self._reported: deque[int] = deque(maxlen=_REPORTED_HISTORY)

    def feed(self, event: TelephoneEvent, timestamp: int, now: float) -> list[DtmfDigit]:
        """Account for one telephone-event packet; return the digits it completes (0, 1 or 2)."""
        digit = event.digit
        if digit is None or timestamp in self._reported:
            return []
        digits: list[DtmfDigit] = []
        pending = self._pending
        if pending is not None and pending.timestamp != timestamp:
            # A new event started: the previous one ended although none of its end packets came.
            digits.append(self._report(pending))
            pending = None
        if pending is None:
            # Works when the start packet was lost too: any packet of the event opens it.
            pending = _PendingEvent(timestamp, digit, event.duration, now)
            self._pending = pending
        pending.duration = max(pending.duration, event.duration)
        pending.last_seen = now
        if event.end:
            digits.append(self._report(pending))
        return digits

    @property
    def deadline(self) -> float | None:
        """When `poll` may report an event whose end never arrived, or None."""
        return None if self._pending is None else self._pending.last_seen + END_TIMEOUT_S

    def poll(self, now: float) -> DtmfDigit | None:
        """Report the pending event if its packets stopped `END_TIMEOUT_S` ago."""
        deadline = self.deadline
        if self._pending is None or deadline is None or now < deadline:
            return None
        return self._report(self._pending)

    def _report(self, pending: _PendingEvent) -> DtmfDigit:
        self._pending = None
        self._reported.append(pending.timestamp)
        return DtmfDigit(pending.digit, pending.duration * 1000 // self._clock_rate)


@dataclass(frozen=True, slots=True)
class ScheduledEvent:
    """One packet of an outgoing key press: when to send it, relative to the press start."""

    offset_ms: int
    event: TelephoneEvent
    marker: bool


def digit_packets(
    digit: str, duration_ms: int, clock_rate: int, *, volume: int = DEFAULT_VOLUME
) -> list[ScheduledEvent]:
    """The packet sequence of one key press (RFC 4733 section 2.5.1).

    A start packet with the marker bit, an update every `UPDATE_INTERVAL_MS` whose duration
    grows, then `END_REPEATS` end packets `END_REPEAT_INTERVAL_MS` apart. All share the RTP
    timestamp of the press start, which the sender assigns.
    """
    code = digit_event_code(digit)
    if duration_ms <= 0:
        raise ValueError(f"DTMF duration must be positive, got {duration_ms} ms")
    total = duration_ms * clock_rate // 1000
    if total > MAX_DURATION:
        raise ValueError(f"DTMF duration {duration_ms} ms does not fit one event at {clock_rate} Hz")
    packets = [
        ScheduledEvent(
            offset,
            TelephoneEvent(code, end=False, volume=volume, duration=offset * clock_rate // 1000),
            marker=offset == 0,
        )
        for offset in range(0, duration_ms, UPDATE_INTERVAL_MS)
    ]
    end = TelephoneEvent(code, end=True, volume=volume, duration=total)
    packets.extend(
        ScheduledEvent(duration_ms + i * END_REPEAT_INTERVAL_MS, end, marker=False)
        for i in range(END_REPEATS)
    )
    return packets
