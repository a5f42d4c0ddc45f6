"""RTP/RTCP media over asyncio UDP: one `RtpEndpoint` per call, all paced by one `MediaClock`.

Layers, inside out: `packet` (aiortc's parsers, typed errors), `dtmf` (RFC 4733), `stats`
(RTCP numbers), `session` (sans-I/O RTP session: latching, SSRC, RTCP), `stream` (sans-I/O
per-call pipeline with jitter buffer, codecs, playout), then the asyncio shell: `clock`,
`ports`, `endpoint`.

Names are imported on first use, so `voicegw.rtp.packet` and friends load without pulling
in the codecs (PyAV) that `stream` and `endpoint` need.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from voicegw.rtp.clock import MediaClock
    from voicegw.rtp.endpoint import RtpEndpoint
    from voicegw.rtp.events import DtmfDigit, EndpointEvent, MediaTimeout
    from voicegw.rtp.packet import RtpParseError
    from voicegw.rtp.ports import RtpPortsExhausted
    from voicegw.rtp.session import RtpSession, RtpSessionConfig
    from voicegw.rtp.stream import MediaStream, StreamConfig

_EXPORTS = {
    "DtmfDigit": "events",
    "EndpointEvent": "events",
    "MediaClock": "clock",
    "MediaStream": "stream",
    "MediaTimeout": "events",
    "RtpEndpoint": "endpoint",
    "RtpParseError": "packet",
    "RtpPortsExhausted": "ports",
    "RtpSession": "session",
    "RtpSessionConfig": "session",
    "StreamConfig": "stream",
}

__all__ = [
    "DtmfDigit",
    "EndpointEvent",
    "MediaClock",
    "MediaStream",
    "MediaTimeout",
    "RtpEndpoint",
    "RtpParseError",
    "RtpPortsExhausted",
    "RtpSession",
    "RtpSessionConfig",
    "StreamConfig",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'voicegw.rtp' has no attribute {name!r}")
    return getattr(importlib.import_module(f"voicegw.rtp.{module}"), name)
