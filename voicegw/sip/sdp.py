"""SDP (RFC 4566) and the offer/answer model (RFC 3264), sans-I/O.

pjsua2 carries SDP for us, but both sides of the exchange are ours: pjsua's own negotiator does
not drive our media. Answering a call, voicegw parses the offer, picks a codec in its own
preference order, and writes the answer that `Call.onCallSdpCreated` puts in the 200 OK.
Dialling out, and answering an INVITE that carried no offer (a delayed offer, whose answer comes
in the ACK), it writes the offer (`offer`) and reads the codec the far end chose from its answer
(`accept_answer`).

SRTP is keyed by SDES (RFC 4568): the answer takes the first ``a=crypto`` line of the offer we
can use, with the same tag and suite and our own key. Offers of ``RTP/SAVP(F)`` are SRTP; an
``RTP/AVP`` offer carrying ``a=crypto`` is "best effort" SRTP (pjsua's optional mode), answered
with SRTP unless SRTP is off, and with plain RTP if none of its keys is usable.

Every value is range-checked as it is parsed (ports, payload types, clock rates, channels,
ptime, addresses, the number and length of lines), and text that our answer repeats (media,
proto, encoding names, fmtp) must be plain tokens: a peer's SDP is hostile until it is known
not to be. What does not fit raises `SdpError` naming the line and the allowed range.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import re
from dataclasses import dataclass, field
from typing import Literal

from voicegw.audio.codecs import SUPPORTED_CODECS, codec_for
from voicegw.rtp.srtp import SUITES, CryptoAttribute, SrtpError, SrtpKeys, SrtpMode

Direction = Literal["sendrecv", "sendonly", "recvonly", "inactive"]
DIRECTIONS: tuple[Direction, ...] = ("sendrecv", "sendonly", "recvonly", "inactive")
ANSWER_DIRECTION: dict[Direction, Direction] = {
    "sendrecv": "sendrecv",
    "sendonly": "recvonly",
    "recvonly": "sendonly",
    "inactive": "inactive",
}
PLAIN_RTP_PROTOS = frozenset({"RTP/AVP", "RTP/AVPF"})
SRTP_PROTOS = frozenset({"RTP/SAVP", "RTP/SAVPF"})
STATIC_PAYLOAD_TYPES = {0: ("PCMU", 8000, 1), 8: ("PCMA", 8000, 1), 9: ("G722", 8000, 1)}
TELEPHONE_EVENT = "telephone-event"
OFFER_PAYLOAD_TYPES = {"opus": 111, "telephone-event/8000": 101, "telephone-event/48000": 110}
"""Dynamic payload types of our offers: the numbers softphones and trunks commonly use."""

MAX_LINE_LENGTH = 1024
MAX_MEDIA = 16
"""m= sections in one description (a phone offers one or two; WebRTC a handful)."""
MAX_ATTRIBUTES = 256
"""a= lines per section (ICE candidates and SSRC lines make WebRTC offers long)."""
MAX_PAYLOAD_TYPE = 127
PTIME_MS = (10, 120)
"""The a=ptime values taken (RFC 3551 frames are 10-30 ms; 120 ms is six 20 ms frames)."""
CLOCK_RATES = (1000, 192000)
MAX_CHANNELS = 8
MAX_PORT = 65535

_TOKEN = re.compile(r"[A-Za-z0-9!#$%&'*+\-.^_`{|}~]+")
"""RFC 4566's token: media, encoding names; the proto is tokens joined by '/'."""
_PROTO = re.compile(rf"{_TOKEN.pattern}(?:/{_TOKEN.pattern})*")
_PRINTABLE = re.compile(r"[\x20-\x7e]*")


class SdpError(ValueError):
    """The peer's SDP is malformed."""


class NotAcceptable(SdpError):
    """The offer is well formed but asks for what we cannot or will not do (answered with 488)."""


class NoCommonCodec(NotAcceptable):
    """The offer has no audio stream or codec we support."""


class SrtpNotAcceptable(NotAcceptable):
    """The offer's SRTP (or its lack) does not fit: no usable key, SRTP off, or SRTP required."""


@dataclass(frozen=True, slots=True)
class RtpMap:
    payload_type: int
    encoding: str
    clock_rate: int
    channels: int = 1
    fmtp: str = ""


@dataclass(slots=True)
class MediaDescription:
    """One ``m=`` section."""

    media: str
    port: int
    proto: str
    formats: list[int]
    rtpmaps: dict[int, RtpMap] = field(default_factory=dict)
    connection: str | None = None
    direction: Direction | None = None
    """The m= section's own direction attribute; see `SessionDescription.direction_of`."""

    rtcp_port: int | None = None
    rtcp_address: str | None = None
    ptime: int | None = None
    crypto: list[str] = field(default_factory=list)
    """``a=crypto`` values as written (each is parsed only when negotiated: RFC 4568 ignores bad ones)."""

    other: list[str] = field(default_factory=list)
    """Attribute lines we keep but do not interpret."""

    def serialize_lines(self) -> list[str]:
        formats = " ".join(map(str, self.formats)) or "0"
        lines = [f"m={self.media} {self.port} {self.proto} {formats}"]
        if self.connection:
            lines.append(f"c=IN {_family(self.connection)} {self.connection}")
        for pt in self.formats:
            if pt in self.rtpmaps:
                lines += _rtpmap_lines(self.rtpmaps[pt])
        if self.ptime:
            lines.append(f"a=ptime:{self.ptime}")
        if self.rtcp_port is not None:
            where = f" IN {_family(self.rtcp_address)} {self.rtcp_address}" if self.rtcp_address else ""
            lines.append(f"a=rtcp:{self.rtcp_port}{where}")
        if self.direction:
            lines.append(f"a={self.direction}")
        lines += [f"a=crypto:{value}" for value in self.crypto]
        lines += [f"a={value}" for value in self.other]
        return lines


@dataclass(slots=True)
class SessionDescription:
    origin: str
    connection: str | None
    media: list[MediaDescription]
    name: str = "-"
    direction: Direction | None = None
    """A session-level direction attribute (older phones put ``a=sendonly`` there to hold)."""

    def audio(self, srtp: SrtpMode = "off") -> MediaDescription | None:
        """The stream we answer: the first active audio stream over RTP (over SRTP when allowed
        and offered: an SRTP stream wins over a plain one unless SRTP is off)."""
        active = [m for m in self.media if m.media == "audio" and m.port != 0]
        secure = next((m for m in active if m.proto in SRTP_PROTOS), None)
        plain = next((m for m in active if m.proto in PLAIN_RTP_PROTOS), None)
        return plain if srtp == "off" or secure is None else secure

    def direction_of(self, media: MediaDescription) -> Direction:
        """RFC 4566 6: a media-level direction overrides the session's; sendrecv by default."""
        return media.direction or self.direction or "sendrecv"

    def serialize(self) -> str:
        """The SDP text (CRLF line ends), in RFC 4566 order."""
        family = _family(self.connection or "0.0.0.0")
        lines = ["v=0", f"o={self.origin}", f"s={self.name}"]
        if self.connection:
            lines.append(f"c=IN {family} {self.connection}")
        lines.append("t=0 0")
        if self.direction:
            lines.append(f"a={self.direction}")
        for media in self.media:
            lines += media.serialize_lines()
        return "\r\n".join(lines) + "\r\n"


def _family(address: str) -> str:
    return "IP6" if ":" in address else "IP4"


def _number(text: str, low: int, high: int, what: str) -> int:
    """A decimal integer in `low`..`high`, else `SdpError` naming `what`."""
    # isascii: str.isdigit() also takes digits like '²' that int() refuses.
    if not (text.isascii() and text.isdigit() and len(text) <= 10) or not low <= int(text) <= high:
        raise SdpError(f"{what} {text!r} is not a number in {low}-{high}")
    return int(text)


def _address(text: str, family: str, what: str) -> str:
    """An IP literal of `family` (``IP4``/``IP6``), normalized as sockets report it."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise SdpError(f"{what}: {text!r} is not an {family} address") from None
    if _family(str(address)) != family:
        raise SdpError(f"{what}: {text} is not an {family} address")
    if address.is_multicast:
        raise NotAcceptable(f"{what}: multicast media ({text}) is not supported")
    return str(address)


def _connection_address(value: str) -> str:
    parts = value.split()
    if len(parts) != 3 or parts[0] != "IN" or parts[1] not in ("IP4", "IP6"):
        raise SdpError(f"SDP connection line 'c={value}' is not 'IN IP4|IP6 address'")
    return _address(parts[2].split("/")[0], parts[1], f"SDP connection line 'c={value}'")


def parse(text: str) -> SessionDescription:
    """Parse an SDP body; raises `SdpError` with the offending line (see the module docstring)."""
    origin = ""
    connection: str | None = None
    media: list[MediaDescription] = []
    name = "-"
    session_direction: Direction | None = None
    attributes = 0
    for raw in text.replace("\r\n", "\n").split("\n"):
        line = raw.strip()
        if not line:
            continue
        if len(line) > MAX_LINE_LENGTH:
            raise SdpError(f"SDP line {line[:40]!r}... is {len(line)} characters, at most {MAX_LINE_LENGTH}")
        if len(line) < 2 or line[1] != "=":
            raise SdpError(f"SDP line {line!r} is not 'x=value'")
        kind, value = line[0], line[2:]
        current = media[-1] if media else None
        if kind == "a":
            attributes += 1
            if attributes > MAX_ATTRIBUTES:
                raise SdpError(f"SDP section has more than {MAX_ATTRIBUTES} a= lines")
        if kind == "o":
            origin = value
        elif kind == "s":
            name = value
        elif kind == "c":
            if current is None:
                connection = _connection_address(value)
            else:
                current.connection = _connection_address(value)
        elif kind == "m":
            if len(media) == MAX_MEDIA:
                raise SdpError(f"SDP has more than {MAX_MEDIA} m= lines")
            media.append(_parse_media_line(value))
            attributes = 0
        elif kind == "a" and current is not None:
            _parse_attribute(current, value)
        elif kind == "a" and value in DIRECTIONS:
            session_direction = value
    if not media:
        raise SdpError("SDP has no m= line")
    return SessionDescription(
        origin=origin, connection=connection, media=media, name=name, direction=session_direction
    )


def _parse_media_line(value: str) -> MediaDescription:
    parts = value.split()
    if len(parts) < 3:
        raise SdpError(f"SDP media line 'm={value}' is truncated")
    kind, port_text, proto, *format_texts = parts
    where = f"SDP media line 'm={value}'"
    if not _TOKEN.fullmatch(kind) or not _PROTO.fullmatch(proto):
        raise SdpError(f"{where} has a media type or protocol that is not a token")
    port_text, slash, count_text = port_text.partition("/")
    # RFC 3264 section 6: port 0 refuses a stream, and only there is it allowed.
    port = _number(port_text, 0, MAX_PORT, f"{where}: port")
    if slash:
        _number(count_text, 1, MAX_PORT - port + 1, f"{where}: port count")
    if len(format_texts) > MAX_PAYLOAD_TYPE + 1:
        raise SdpError(f"{where} lists {len(format_texts)} formats, at most {MAX_PAYLOAD_TYPE + 1}")
    formats = (
        [_number(f, 0, MAX_PAYLOAD_TYPE, f"{where}: payload type") for f in format_texts]
        if proto.startswith("RTP/")
        else []
    )
    m = MediaDescription(media=kind, port=port, proto=proto, formats=formats)
    for pt in formats:
        if pt in STATIC_PAYLOAD_TYPES:
            enc, rate, channels = STATIC_PAYLOAD_TYPES[pt]
            m.rtpmaps[pt] = RtpMap(pt, enc, rate, channels)
    return m


def _parse_attribute(m: MediaDescription, value: str) -> None:
    key, _, rest = value.partition(":")
    where = f"SDP attribute 'a={value}'"
    if key == "rtpmap":
        pt_text, _, encoding = rest.partition(" ")
        pt = _number(pt_text, 0, MAX_PAYLOAD_TYPE, f"{where}: payload type")
        enc_parts = encoding.split("/")
        if len(enc_parts) not in (2, 3) or not _TOKEN.fullmatch(enc_parts[0]):
            raise SdpError(f"{where} is not 'rtpmap:<pt> <encoding>/<clock>[/<channels>]'")
        clock_rate = _number(enc_parts[1], *CLOCK_RATES, f"{where}: clock rate")
        channels = _number(enc_parts[2], 1, MAX_CHANNELS, f"{where}: channels") if len(enc_parts) > 2 else 1
        old = m.rtpmaps.get(pt)
        m.rtpmaps[pt] = RtpMap(pt, enc_parts[0], clock_rate, channels, old.fmtp if old else "")
    elif key == "fmtp":
        pt_text, _, params = rest.partition(" ")
        pt = _number(pt_text, 0, MAX_PAYLOAD_TYPE, f"{where}: payload type")
        if not _PRINTABLE.fullmatch(params):
            raise SdpError(f"{where}: parameters hold characters other than printable ASCII")
        if pt in m.rtpmaps:
            m.rtpmaps[pt] = dataclasses.replace(m.rtpmaps[pt], fmtp=params)
    elif key == "rtcp":
        port_text, *address = rest.split() or [""]
        m.rtcp_port = _number(port_text, 1, MAX_PORT, f"{where}: port")
        if address:
            if len(address) != 3 or address[0] != "IN" or address[1] not in ("IP4", "IP6"):
                raise SdpError(f"{where} is not 'rtcp:<port> [IN IP4|IP6 <address>]'")
            m.rtcp_address = _address(address[2], address[1], where)
    elif key == "ptime":
        m.ptime = _ptime(rest, where)
    elif key in DIRECTIONS:
        m.direction = key
    elif key == "crypto":
        m.crypto.append(rest)
    else:
        m.other.append(value)


def _ptime(text: str, where: str) -> int:
    try:
        ms = float(text)
    except ValueError:
        ms = math.nan
    if not PTIME_MS[0] <= ms <= PTIME_MS[1]:  # NaN fails every comparison
        raise SdpError(f"{where}: packet time is not a number of {PTIME_MS[0]}-{PTIME_MS[1]} ms")
    return int(ms)


@dataclass(frozen=True, slots=True)
class Negotiated:
    """What an offer/answer exchange settled for the audio stream."""

    codec: RtpMap
    telephone_event: RtpMap | None
    remote_address: str
    remote_port: int
    remote_rtcp_port: int
    remote_rtcp_address: str
    direction: Direction
    """Our direction toward the peer."""

    ptime: int = 20
    media_index: int = 0
    """Which of the offer's m= lines this is (the others are declined in the answer)."""

    remote_crypto: CryptoAttribute | None = None
    """The offer's ``a=crypto`` line we took, when the stream is SRTP."""

    local_crypto: CryptoAttribute | None = None
    """Ours for the answer: the same tag and suite, our key."""

    @property
    def srtp(self) -> SrtpKeys | None:
        """The keys for the media stream, or None for plain RTP."""
        if self.remote_crypto is None or self.local_crypto is None:
            return None
        return SrtpKeys(self.remote_crypto.suite, self.local_crypto.key, self.remote_crypto.key)

    @property
    def on_hold(self) -> bool:
        """The peer put us on hold (it will not listen, or not send)."""
        return self.direction in ("recvonly", "inactive") or self.remote_address in ("0.0.0.0", "::")


def _supported_rank(rtpmap: RtpMap, preference: tuple[str, ...]) -> int | None:
    names = [name.lower() for name in preference]
    encoding = rtpmap.encoding.lower()
    return names.index(encoding) if encoding in names else None


def negotiate(
    offer: SessionDescription,
    preference: tuple[str, ...] | None = None,
    *,
    srtp: SrtpMode = "off",
    suites: tuple[str, ...] = tuple(SUITES),
    keep: CryptoAttribute | None = None,
) -> Negotiated:
    """Pick our codec for an offer (RFC 3264 section 6): our preference order, the offer's PTs.

    With `srtp` other than ``"off"``, take the offer's first usable ``a=crypto`` whose suite is
    in `suites`, and answer it with the key of `keep` (our key so far in the call) if its suite
    matches, else a fresh one. Raises `NoCommonCodec` or `SrtpNotAcceptable` (488), `SdpError`.
    """
    preference = preference or tuple(codec.name for codec in SUPPORTED_CODECS)
    audio = offer.audio(srtp)
    if audio is None:
        if offer.audio("optional") is not None:
            raise SrtpNotAcceptable("the offer's audio is SRTP (RTP/SAVP) only and SRTP is off")
        raise NoCommonCodec("the offer has no active RTP audio stream")
    remote_crypto, local_crypto = _choose_crypto(audio, srtp, suites, keep)
    settled = _settle(offer, audio, preference, by_rank=True, side="offer")
    return dataclasses.replace(settled, remote_crypto=remote_crypto, local_crypto=local_crypto)


def accept_answer(answer: SessionDescription, offered: tuple[str, ...]) -> Negotiated:
    """What the far end's answer to our offer of `offered` settled (RFC 3264 section 7).

    The answerer's order is its preference: its first codec that we offered is the call's codec,
    sent with the answer's payload type. Raises `NoCommonCodec` when it accepted none of ours.
    """
    audio = answer.audio()
    if audio is None:
        raise NoCommonCodec("the answer has no active RTP/AVP audio stream (SRTP is not offered)")
    return _settle(answer, audio, offered, by_rank=False, side="answer")


def _settle(
    description: SessionDescription,
    audio: MediaDescription,
    ours: tuple[str, ...],
    *,
    by_rank: bool,
    side: str,
) -> Negotiated:
    candidates = [
        (rank if by_rank else 0, audio.formats.index(pt), audio.rtpmaps[pt])
        for pt in audio.formats
        if pt in audio.rtpmaps and (rank := _supported_rank(audio.rtpmaps[pt], ours)) is not None
    ]
    if not candidates:
        listed = ", ".join(r.encoding for r in audio.rtpmaps.values()) or "none"
        verb = "offered" if side == "offer" else "answered"
        raise NoCommonCodec(f"no common codec: {verb} {listed}, we speak {', '.join(ours)}")
    codec = min(candidates, key=lambda c: (c[0], c[1]))[2]
    telephone_event = next(
        (
            r
            for pt in audio.formats
            if (r := audio.rtpmaps.get(pt)) is not None
            and r.encoding.lower() == TELEPHONE_EVENT
            and r.clock_rate == codec.clock_rate
        ),
        None,
    )
    address = audio.connection or description.connection
    if address is None:
        raise SdpError(f"the {side} has no c= line for its audio")
    if audio.rtcp_port is None and audio.port == MAX_PORT:
        raise SdpError(f"the {side}'s audio port {MAX_PORT} leaves no port + 1 for RTCP (and no a=rtcp)")
    return Negotiated(
        codec=codec,
        telephone_event=telephone_event,
        remote_address=address,
        remote_port=audio.port,
        remote_rtcp_port=audio.rtcp_port or audio.port + 1,
        remote_rtcp_address=audio.rtcp_address or address,
        direction=ANSWER_DIRECTION[description.direction_of(audio)],
        ptime=audio.ptime if audio.ptime and audio.ptime % 20 == 0 and codec.encoding != "opus" else 20,
        media_index=description.media.index(audio),
    )


def _choose_crypto(
    audio: MediaDescription, srtp: SrtpMode, suites: tuple[str, ...], keep: CryptoAttribute | None
) -> tuple[CryptoAttribute | None, CryptoAttribute | None]:
    """(the offer's crypto line we take, ours) or (None, None) for plain RTP."""
    secure = audio.proto in SRTP_PROTOS
    if srtp == "off" or not (secure or audio.crypto):
        if srtp == "required":
            raise SrtpNotAcceptable(f"SRTP is required and the offer's audio is plain {audio.proto}")
        return None, None
    if not audio.crypto:
        raise SrtpNotAcceptable(
            f"the offer's {audio.proto} audio has no a=crypto (only SDES keying is supported)"
        )
    reasons: list[str] = []
    for value in audio.crypto:
        try:
            remote = CryptoAttribute.parse(value)
            suite = remote.check_usable()
        except SrtpError as exc:
            reasons.append(str(exc))
            continue
        if suite.name not in suites:
            reasons.append(f"crypto suite {suite.name} is not allowed here")
            continue
        if keep is not None and keep.suite == suite.name:
            return remote, CryptoAttribute(remote.tag, suite.name, keep.key)
        return remote, CryptoAttribute.generate(remote.tag, suite.name)
    if secure or srtp == "required":
        raise SrtpNotAcceptable("no usable a=crypto in the offer: " + "; ".join(reasons))
    # Best-effort SRTP: a plain RTP answer is a valid one.
    return None, None


def offer_rtpmaps(codecs: tuple[str, ...]) -> list[RtpMap]:
    """The payload formats of our offer: `codecs` in order, then telephone-event for each clock."""
    rtpmaps: list[RtpMap] = []
    for name in codecs:
        codec = codec_for(name)
        pt = codec.payload_type
        if pt is None:
            pt = OFFER_PAYLOAD_TYPES[codec.name.lower()]
        rtpmaps.append(RtpMap(pt, codec.name, codec.clock_rate, codec.channels, codec.fmtp))
    for rate in sorted({r.clock_rate for r in rtpmaps}):
        pt = OFFER_PAYLOAD_TYPES[f"{TELEPHONE_EVENT}/{rate}"]
        rtpmaps.append(RtpMap(pt, TELEPHONE_EVENT, rate, 1, "0-16"))
    return rtpmaps


def offer(codecs: tuple[str, ...], *, address: str, port: int, session_id: int, version: int = 1) -> str:
    """Our SDP offer: one sendrecv audio stream at `address`:`port` (RTCP on port + 1)."""
    rtpmaps = offer_rtpmaps(codecs)
    media = MediaDescription(
        media="audio",
        port=port,
        proto="RTP/AVP",
        formats=[r.payload_type for r in rtpmaps],
        rtpmaps={r.payload_type: r for r in rtpmaps},
        direction="sendrecv",
        rtcp_port=port + 1,
        ptime=20,
    )
    return _ours([media], address=address, session_id=session_id, version=version)


def _ours(media: list[MediaDescription], *, address: str, session_id: int, version: int) -> str:
    """Our session description around `media` (RFC 3264 8: o= keeps the id, bumps the version)."""
    return SessionDescription(
        origin=f"voicegw {session_id} {version} IN {_family(address)} {address}",
        connection=address,
        media=media,
        name="voicegw",
    ).serialize()


def answer(
    offer: SessionDescription,
    negotiated: Negotiated,
    *,
    address: str,
    port: int,
    session_id: int,
    version: int = 1,
) -> str:
    """The SDP answer: one m= line per offered one, ours active for the chosen audio stream."""
    media: list[MediaDescription] = []
    for index, m in enumerate(offer.media):
        if index != negotiated.media_index:
            # RFC 3264 6: every offered stream gets an answer line; port 0 declines it.
            media.append(MediaDescription(media=m.media, port=0, proto=m.proto, formats=m.formats))
            continue
        rtpmaps = [negotiated.codec] + ([negotiated.telephone_event] if negotiated.telephone_event else [])
        media.append(
            MediaDescription(
                media="audio",
                port=port,
                proto=m.proto,
                formats=[r.payload_type for r in rtpmaps],
                rtpmaps={r.payload_type: r for r in rtpmaps},
                direction=negotiated.direction,
                rtcp_port=port + 1,
                ptime=negotiated.ptime,
                crypto=[str(negotiated.local_crypto)] if negotiated.local_crypto else [],
            )
        )
    return _ours(media, address=address, session_id=session_id, version=version)


def _rtpmap_lines(rtpmap: RtpMap) -> list[str]:
    channels = f"/{rtpmap.channels}" if rtpmap.channels != 1 else ""
    lines = [f"a=rtpmap:{rtpmap.payload_type} {rtpmap.encoding}/{rtpmap.clock_rate}{channels}"]
    if rtpmap.fmtp:
        lines.append(f"a=fmtp:{rtpmap.payload_type} {rtpmap.fmtp}")
    return lines
