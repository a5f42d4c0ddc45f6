"""Gateway-added latency: how long audio spends inside voicegw between the network and the model.

Two directions, timed with `time.monotonic()`:

- inbound: a caller's RTP packet arriving (its datagram read) -> its audio sent to the model
  (the model's WebSocket send returned). The jitter buffer's depth is part of it.
- outbound: the model's audio received (its message parsed) -> the RTP packet carrying its first
  sample sent. Only audio that found nothing queued ahead of it is timed: audio queued behind
  earlier audio waits for the caller to hear that first, which is playback, not latency.

The timestamps cross layers that know nothing of each other (RTP, session, model), so each hop
hands its stamp to the next through a context variable set for the duration of the call it makes:
`caller_audio_received` while the session sends a frame to the model, `model_audio_received`
while the model delivers an audio event (the session plays it within that delivery). The samples
go to `GATEWAY_LATENCY`, one histogram per direction for the whole process, which the server's
metrics export as ``voicegw_gateway_latency_seconds``.
"""

from __future__ import annotations

import bisect
import enum
import time
from contextvars import ContextVar

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0)
"""Upper bounds in seconds (Prometheus' ``le``); one tick of the media clock is 0.02."""


class Direction(enum.StrEnum):
    INBOUND = "inbound"
    """Caller's RTP packet arrived -> its audio sent to the model."""

    OUTBOUND = "outbound"
    """Model audio received -> its first RTP packet sent."""


class LatencyHistogram:
    """Cumulative counts of latency samples per bucket of `BUCKETS`, their sum and count."""

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)
        """Samples per bucket (not cumulative); the last one is above every bound."""
        self.sum = 0.0
        self.count = 0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(BUCKETS, seconds)] += 1
        self.sum += seconds
        self.count += 1

    def since(self, start: float) -> None:
        """One sample: from `start` (`time.monotonic()`) until now."""
        self.observe(time.monotonic() - start)

    def cumulative(self) -> list[tuple[float, int]]:
        """``(upper bound, samples at or below it)`` per bucket, ending with ``(inf, count)``."""
        out, total = [], 0
        for bound, count in zip((*BUCKETS, float("inf")), self.counts, strict=True):
            total += count
            out.append((bound, total))
        return out


GATEWAY_LATENCY: dict[Direction, LatencyHistogram] = {d: LatencyHistogram() for d in Direction}
"""The process's samples, by direction."""

caller_audio_received: ContextVar[float | None] = ContextVar("caller_audio_received", default=None)
"""When the packet of the caller audio being sent to the model arrived (`time.monotonic()`)."""

model_audio_received: ContextVar[float | None] = ContextVar("model_audio_received", default=None)
"""When the model audio being delivered was received (`time.monotonic()`)."""
