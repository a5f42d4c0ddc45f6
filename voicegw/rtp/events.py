"""Typed events of the RTP layer.

`DtmfDigit` and `MediaTimeout` are what `RtpEndpoint.events()` hands to the call; the others
come out of the sans-I/O `RtpSession.next_event()` and stay inside `voicegw.rtp`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple, TypeAlias

Address: TypeAlias = tuple[str, int]
"""A UDP peer address as asyncio reports it: (host, port)."""

BadPacketReason: TypeAlias = Literal[
    "garbage",
    "truncated",
    "bad_version",
    "unknown_payload_type",
    "bad_rtcp",
    "foreign_address",
    "foreign_ssrc",
    "probation",
    "srtp_auth",
    "srtp_replay",
]


@dataclass(frozen=True, slots=True)
class DtmfDigit:
    """The far end pressed a key (RFC 4733 telephone-event), reported once per key press."""

    digit: str
    """One of ``0123456789*#ABCD``."""

    duration_ms: int
    """How long the key was held, from the event's final duration field."""

    type: Literal["dtmf"] = "dtmf"


@dataclass(frozen=True, slots=True)
class MediaTimeout:
    """No RTP arrived for the configured media timeout (and the call is not on hold)."""

    silence_s: float
    """Seconds since the last RTP packet (or since media started, if none ever came)."""

    type: Literal["media_timeout"] = "media_timeout"


EndpointEvent: TypeAlias = DtmfDigit | MediaTimeout
"""What `RtpEndpoint.events()` yields."""


class MediaReceived(NamedTuple):
    """A valid media packet of the negotiated payload type arrived from the latched peer.

    One per packet, so a `NamedTuple` (immutable like the other events, built in C, a fifth of a
    frozen dataclass's cost); fields are positional, in this order.
    """

    payload: bytes
    sequence_number: int
    timestamp: int
    payload_type: int
    ssrc: int
    marker: bool
    arrival: float
    """The `now` the datagram was received at (event-loop seconds)."""

    type: Literal["media"] = "media"


@dataclass(frozen=True, slots=True)
class RemoteLatched:
    """Symmetric RTP: media now goes to the address the far end's packets come from."""

    address: Address
    ssrc: int
    previous: Address | None
    """The address media went to before (from SDP or an earlier latch), if any."""

    type: Literal["remote_latched"] = "remote_latched"


@dataclass(frozen=True, slots=True)
class BadPacket:
    """A datagram was dropped; `reason` is the counter it was added to."""

    reason: BadPacketReason
    address: Address
    detail: str
    """The parser's message, e.g. ``"RTP packet has truncated CSRC"``."""

    type: Literal["bad_packet"] = "bad_packet"


@dataclass(frozen=True, slots=True)
class RtcpReceived:
    """An RTCP compound packet from the far end was parsed and its reports recorded."""

    kinds: tuple[str, ...]
    """The packet types it held, in order: ``"sr"``, ``"rr"``, ``"sdes"``, ``"bye"``, ..."""

    ssrc: int | None
    """The sender's SSRC (from its first SR/RR/BYE), if it said."""

    type: Literal["rtcp"] = "rtcp"


SessionEvent: TypeAlias = MediaReceived | DtmfDigit | RemoteLatched | BadPacket | RtcpReceived
"""What `RtpSession.next_event()` returns."""
