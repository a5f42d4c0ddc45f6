"""RTP/RTCP wire parsing on top of aiortc's packet classes.

aiortc's `RtpPacket`/`RtcpPacket` do the byte work; this module turns whatever they (or
`struct`) raise on a peer's bad datagram into one typed `RtpParseError` whose `reason` says
which drop counter it belongs to, so the session can count and drop without guessing.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from aiortc.rtp import (
    RTP_HEADER_LENGTH,
    AnyRtcpPacket,
    RtcpByePacket,
    RtcpPacket,
    RtcpPsfbPacket,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSdesPacket,
    RtcpSrPacket,
    RtpPacket,
)

from voicegw.rtp.events import BadPacketReason

RTP_VERSION = 2
_PLAIN_HEADER = 0x80
"""First byte of a version-2 RTP header with no padding, no extension and no CSRC: nearly every
packet, which the fast paths below read and write with one `struct` call."""
_FIXED = struct.Struct("!BBHII")
# RFC 5761 section 4: on a muxed port, these second-byte values are RTCP packet types (SR..APP+).
RTCP_TYPE_MIN = 192
RTCP_TYPE_MAX = 223

_RTCP_KIND_NAMES: dict[type, str] = {
    RtcpSrPacket: "sr",
    RtcpRrPacket: "rr",
    RtcpSdesPacket: "sdes",
    RtcpByePacket: "bye",
    RtcpRtpfbPacket: "rtpfb",
    RtcpPsfbPacket: "psfb",
}


class RtpParseError(ValueError):
    """A peer sent a datagram that is not valid RTP/RTCP; drop it and count `reason`."""

    def __init__(self, message: str, reason: BadPacketReason) -> None:
        super().__init__(message)
        self.reason: BadPacketReason = reason


def _version(data: bytes) -> int | None:
    return data[0] >> 6 if data else None


def is_rtcp(data: bytes) -> bool:
    """True when a datagram on a muxed port is RTCP rather than RTP (RFC 5761 section 4)."""
    return len(data) >= 2 and _version(data) == RTP_VERSION and RTCP_TYPE_MIN <= data[1] <= RTCP_TYPE_MAX


def check_version(data: bytes) -> None:
    """Raise `RtpParseError` (``"garbage"`` or ``"bad_version"``) unless `data` says version 2.

    The header check that needs no decryption: SRTP runs it before spending a MAC on the datagram.
    """
    version = _version(data)
    if version != RTP_VERSION:
        if len(data) < RTP_HEADER_LENGTH:
            raise RtpParseError(f"datagram of {len(data)} bytes is not RTP", "garbage")
        raise RtpParseError(f"RTP packet has invalid version {version}", "bad_version")


def parse_rtp(data: bytes) -> RtpPacket:
    """Parse one RTP datagram.

    Raises `RtpParseError` with reason ``"garbage"`` (too short for a header and not version 2:
    not RTP at all), ``"bad_version"`` (a full header whose version is not 2) or ``"truncated"``
    (version 2 but shorter than its header, CSRC list, extension or padding says).
    """
    check_version(data)
    try:
        return RtpPacket.parse(data)
    except (ValueError, struct.error) as exc:
        # Every remaining aiortc failure for a version-2 packet is a length that does not add up.
        raise RtpParseError(str(exc), "truncated") from exc


class RtpHeader(NamedTuple):
    """The fields of an RTP packet the media path uses (`parse_rtp_header`)."""

    payload_type: int
    marker: int
    sequence_number: int
    timestamp: int
    ssrc: int
    payload: bytes


def parse_rtp_header(data: bytes) -> RtpHeader:
    """`parse_rtp`, cheaper: a plain 12-byte header is read with one `struct` call and no
    aiortc object; anything else (CSRCs, an extension, padding, garbage) goes through
    `parse_rtp`, with its checks and its `RtpParseError`s."""
    if len(data) >= RTP_HEADER_LENGTH and data[0] == _PLAIN_HEADER:
        _, second, seq, timestamp, ssrc = _FIXED.unpack_from(data)
        return RtpHeader(second & 0x7F, second >> 7, seq, timestamp, ssrc, data[RTP_HEADER_LENGTH:])
    packet = parse_rtp(data)
    return RtpHeader(
        packet.payload_type, packet.marker, packet.sequence_number, packet.timestamp, packet.ssrc,
        packet.payload,
    )  # fmt: skip


def serialize_rtp(
    payload_type: int, marker: bool, seq: int, timestamp: int, ssrc: int, payload: bytes
) -> bytes:
    """A plain RTP packet (version 2, no padding, extension or CSRC), as `RtpPacket.serialize`
    writes it, without building the aiortc object."""
    return _FIXED.pack(_PLAIN_HEADER, (marker << 7) | payload_type, seq, timestamp, ssrc) + payload


def parse_rtcp(data: bytes) -> list[AnyRtcpPacket]:
    """Parse an RTCP compound packet; raises `RtpParseError` (reason ``"bad_rtcp"``)."""
    try:
        packets = RtcpPacket.parse(data)
    except (ValueError, struct.error) as exc:
        raise RtpParseError(str(exc), "bad_rtcp") from exc
    if not packets:
        raise RtpParseError("RTCP compound packet holds no known packet", "bad_rtcp")
    return packets


def rtcp_kind(packet: AnyRtcpPacket) -> str:
    """Short name of an RTCP packet's type, for events and stats (``"sr"``, ``"bye"``...)."""
    return _RTCP_KIND_NAMES[type(packet)]
