"""The sans-I/O RTP session of one call: datagrams in, events and datagrams out.

In the shape of aioquic's `QuicConnection`: `receive(data, addr, now)` feeds a datagram,
`next_event()` pulls what it meant, `send_media()`/`send_dtmf()` queue outbound packets,
`datagrams_to_send(now)` drains them, and `get_timer()`/`handle_timer(now)` drive RTCP
reports and DTMF timing. Time is always a parameter; nothing here touches a socket or clock.

Symmetric RTP (RFC 4961, the NAT case): media goes to where the far end's packets come from,
whatever the SDP said. Anyone can send to a call's port, so the session latches on one source
(address and SSRC) and drops every other datagram; `screen` makes that decision from the
header bytes alone, so the I/O shell drops a flood before it is queued or parsed. The rules:

- Latching, at call start and after a re-INVITE that moves the media: a valid packet from the
  SDP's own address latches at once; any other source (a NAT's public address) latches once it
  has sent `PROBATION_PACKETS` valid packets with consecutive sequence numbers and one SSRC.
- Once latched, packets from other addresses or with another SSRC are dropped (reasons
  ``foreign_address``, ``foreign_ssrc``) while the latched source keeps sending.
- Re-latching without a re-INVITE: only when the latched source has been silent for
  `RELATCH_SILENCE_S` (another address: a NAT rebinding) or `SSRC_SWITCH_SILENCE_S` (a new
  SSRC from the latched address: a media server switching streams), and the new source then
  passes the same probation. SRTP packets are authenticated before any of this, so a forged
  one is counted (``srtp_auth``) and moves nothing.
- RTCP is taken from the latched source's address (muxed) or its host's RTCP port: the one
  reports go to, or another learnt from the latched SSRC's own first report (a NAT).
"""

from __future__ import annotations

import random
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, NamedTuple, TypeAlias

from aiortc.rtp import (
    AnyRtcpPacket,
    RtcpByePacket,
    RtcpReceiverInfo,
    RtcpRrPacket,
    RtcpSdesPacket,
    RtcpSourceInfo,
    RtcpSrPacket,
)

from voicegw.audio.timing import SEQ_MODULUS as SEQ_MOD
from voicegw.audio.timing import TS_MODULUS as TIMESTAMP_MOD
from voicegw.rtp.dtmf import DtmfDetector, ScheduledEvent, TelephoneEvent, digit_packets
from voicegw.rtp.events import (
    Address,
    BadPacket,
    BadPacketReason,
    MediaReceived,
    RemoteLatched,
    RtcpReceived,
    SessionEvent,
)
from voicegw.rtp.packet import (
    RtpHeader,
    RtpParseError,
    check_version,
    is_rtcp,
    parse_rtcp,
    parse_rtp_header,
    rtcp_kind,
    serialize_rtp,
)
from voicegw.rtp.srtp import SrtpAuthError, SrtpContext, SrtpKeys
from voicegw.rtp.stats import ReceiverStatistics, SenderStatistics

RTCP_INTERVAL_S = 5.0
"""RFC 3550 6.2: the minimum report interval; each is randomized to 0.5-1.5 times it."""

DTMF_GAP_MS = 60
"""Pause between two outgoing digits, so receivers that need an inter-digit gap see one."""

SDES_CNAME = 1

PROBATION_PACKETS = 4
"""Consecutive packets (sequence numbers one apart, one SSRC) a source not named by SDP sends
before it is latched (as Asterisk's strictrtp probation)."""

RELATCH_SILENCE_S = 2.0
"""Silence of the latched source after which another address may take the stream over."""

SSRC_SWITCH_SILENCE_S = 0.2
"""Silence of the latched SSRC after which a new SSRC from the same address may take over."""

MAX_CANDIDATES = 8
"""Sources on probation tracked at once; the least recently heard is forgotten first."""

RTP_SSRC_OFFSET = 8


class Datagram(NamedTuple):
    """One datagram for the shell to send: on the RTCP socket when `rtcp` is true."""

    data: bytes
    address: Address
    rtcp: bool


@dataclass(frozen=True, slots=True)
class RtpSessionConfig:
    """What SDP negotiated for one RTP session."""

    clock_rate: int
    """RTP clock of the media payload type (8000 for G.711 and G.722, 48000 for Opus)."""

    payload_type: int
    """The media payload type we send and accept."""

    telephone_event_pt: int | None = None
    """RFC 4733 payload type (same clock rate), or None when not negotiated."""

    remote: Address | None = None
    """Where to send media until the far end's own packets say otherwise (from SDP)."""

    remote_rtcp: Address | None = None
    """Where to send RTCP (SDP ``a=rtcp``); defaults to the media port + 1."""

    rtcp_interval: float = RTCP_INTERVAL_S
    unix_offset: float = 0.0
    """Seconds to add to `now` to get Unix time, for SR NTP timestamps."""

    cname: str = "voicegw"
    ssrc: int | None = None
    """Our SSRC; random when None (RFC 3550 8.1)."""

    srtp: SrtpKeys | None = None
    """SDES keys when SRTP was negotiated: every datagram in and out is SRTP/SRTCP."""


Screening: TypeAlias = Literal["own", "candidate", "drop"]
"""`RtpSession.screen`'s verdict: from the stream's own source, from one that may latch, or
dropped (and counted) unread."""


def _rtcp_of(address: Address) -> Address:
    return (address[0], address[1] + 1)


def _checked_address(address: Address | None) -> Address | None:
    if address is not None and not 0 < address[1] < 65536:
        raise ValueError(f"RTP address {address[0]}:{address[1]} has no valid port")
    return address


class RtpSession:
    """One RTP session (one SSRC out, one latched remote in); see the module docstring."""

    def __init__(self, config: RtpSessionConfig, *, now: float, rng: random.Random | None = None) -> None:
        self._config = config
        self._rng = rng or random.Random()
        self.ssrc = config.ssrc if config.ssrc is not None else self._rng.randrange(1, TIMESTAMP_MOD)
        self._next_seq = self._rng.randrange(SEQ_MOD)
        self._next_ts = self._rng.randrange(TIMESTAMP_MOD)
        self._first_packet = True

        self.remote: Address | None = _checked_address(config.remote)
        self.remote_rtcp: Address | None = _checked_address(config.remote_rtcp) or (
            _rtcp_of(config.remote) if config.remote else None
        )
        self._rtcp_from_sdp = config.remote_rtcp is not None
        self._rtcp_settled = False
        """An RTCP packet arrived on the RTCP port: where ours go is known, not to be moved."""
        self._sdp_remote = config.remote
        self.latched = False
        self.remote_ssrc: int | None = None
        self._candidates: dict[tuple[Address, int], tuple[int, int]] = {}
        """Sources on probation: (address, SSRC) -> (last sequence number, consecutive packets)."""
        self.remote_bye = False
        self.last_received_at: float | None = None

        self.receiver: ReceiverStatistics | None = None
        self.sender = SenderStatistics(config.clock_rate)
        self.bad_packets: Counter[BadPacketReason] = Counter()
        self.rtcp_received = 0
        self.rtcp_sent = 0
        self.srtp = SrtpContext(config.srtp) if config.srtp is not None else None

        self._detector = DtmfDetector(config.clock_rate)
        self._dtmf_digits: deque[tuple[str, int]] = deque()
        self._dtmf_packets: deque[ScheduledEvent] = deque()
        self._dtmf_start = 0.0
        self._dtmf_timestamp = 0
        self._dtmf_busy_until = now

        self._events: deque[SessionEvent] = deque()
        self._outbox: list[Datagram] = []
        self._sent_since_report = False
        self._next_rtcp = now + self._rtcp_delay()
        self.closed = False

    # ----------------------------------------------------------------- inbound

    def screen(self, data: bytes, addr: Address, now: float, *, rtcp: bool = False) -> Screening:
        """Judge a datagram by its source and header bytes alone, before anything queues it.

        A few comparisons, so the shell can call it for every datagram of a flood: ``"drop"``
        (counted in `bad_packets`) for other sources while the latched one is sending,
        ``"own"`` for the stream's source (the SDP's address before latching), ``"candidate"``
        for a source that may still latch. `receive` applies the same rules in full.
        """
        if rtcp or is_rtcp(data):
            if self._rtcp_source_ok(addr, on_rtcp_port=rtcp):
                return "own"
            return self._drop_unread("foreign_address", addr)
        if not self.latched:
            return "own" if addr == self.remote else "candidate"
        if addr == self.remote and (
            len(data) < RTP_SSRC_OFFSET + 4
            or int.from_bytes(data[RTP_SSRC_OFFSET : RTP_SSRC_OFFSET + 4]) == self.remote_ssrc
        ):
            return "own"
        reason = self._foreign(addr, now)
        return "candidate" if reason is None else self._drop_unread(reason, addr)

    def exclusive_source(self, now: float) -> Address | None:
        """Where the RTP socket may take datagrams from alone, so that the kernel drops all
        others before they cost anything: the latched address while it is sending. None while
        another source may still latch (nothing latched yet, or the latched one gone silent)."""
        if not self.latched or self.last_received_at is None:
            return None
        return self.remote if now - self.last_received_at < RELATCH_SILENCE_S else None

    def exclusive_rtcp_source(self, now: float) -> Address | None:
        """The same for the RTCP socket: where our reports go, once the far end's own reports
        came from there and while its media is exclusive."""
        if self.exclusive_source(now) is None or not self._rtcp_settled:
            return None
        return self.remote_rtcp

    def _drop_unread(self, reason: BadPacketReason, addr: Address) -> Screening:
        self.bad_packets[reason] += 1
        if self.bad_packets[reason] == 1:
            # The first of its kind only: a flood must cost no more than a counter.
            self._events.append(BadPacket(reason, addr, f"dropped unread: {self._latch_text()}"))
        return "drop"

    def _foreign(self, addr: Address, now: float) -> BadPacketReason | None:
        """Latched: why a packet of another source is dropped, or None when the latched source
        has been silent long enough for that source to try taking over (module docstring)."""
        same_address = addr == self.remote
        silence = SSRC_SWITCH_SILENCE_S if same_address else RELATCH_SILENCE_S
        if self.last_received_at is None or now - self.last_received_at >= silence:
            return None
        return "foreign_ssrc" if same_address else "foreign_address"

    def _rtcp_source_ok(self, addr: Address, *, on_rtcp_port: bool) -> bool:
        """RTCP muxed on the RTP port comes from the media's source; on the RTCP port from where
        ours goes or, until that is settled, from another port of the same host (a NAT maps
        each port on its own: `_receive_rtcp` then wants the latched SSRC's own report)."""
        if self.remote is None:
            return True
        if not on_rtcp_port:
            return addr == self.remote
        return addr == self.remote_rtcp or (addr[0] == self.remote[0] and not self._rtcp_settled)

    def _latch_text(self) -> str:
        ssrc = "" if self.remote_ssrc is None else f" SSRC {self.remote_ssrc:#010x}"
        state = "latched to" if self.latched else "expecting"
        return f"{state} {self._address_text(self.remote)}{ssrc}"

    def receive(self, data: bytes, addr: Address, now: float, *, rtcp: bool = False) -> None:
        """Feed one datagram from the RTP socket (or the RTCP socket with `rtcp=True`)."""
        if rtcp or is_rtcp(data):
            self._receive_rtcp(data, addr, now, on_rtcp_port=rtcp)
            return
        try:
            if self.srtp is not None:
                # Authenticate before anything reads the header: a forged packet moves nothing.
                check_version(data)
                data = self._unprotect(self.srtp.unprotect, data)
            packet = parse_rtp_header(data)
            self._receive_rtp(packet, addr, now)
        except RtpParseError as exc:
            self._bad(exc.reason, addr, str(exc))

    @staticmethod
    def _unprotect(unprotect: Callable[[bytes], bytes], data: bytes) -> bytes:
        try:
            return unprotect(data)
        except SrtpAuthError as exc:
            raise RtpParseError(str(exc), "srtp_replay" if exc.replay else "srtp_auth") from None

    def rekey(self, remote_key: bytes) -> None:
        """The peer's new SDES key (a re-INVITE): its packets are checked with it from now on."""
        if self.srtp is None:
            raise ValueError("SRTP was not negotiated: nothing to re-key")
        self.srtp.rekey_inbound(remote_key)

    def _receive_rtp(self, packet: RtpHeader, addr: Address, now: float) -> None:
        pt = packet.payload_type
        is_dtmf = pt == self._config.telephone_event_pt
        if pt != self._config.payload_type and not is_dtmf:
            raise RtpParseError(f"RTP payload type {pt} was not negotiated", "unknown_payload_type")
        # Parse the event before latching: a broken packet must not move the stream.
        event = TelephoneEvent.parse(packet.payload) if is_dtmf else None
        self._admit(packet.ssrc, packet.sequence_number, addr, now)
        self.last_received_at = now
        receiver = self.receiver
        assert receiver is not None  # set by _latch
        receiver.add(packet.sequence_number, packet.timestamp, now, jitter=not is_dtmf)
        if event is not None:
            self._events.extend(self._detector.feed(event, packet.timestamp, now))
            return
        seq, timestamp, marker = packet.sequence_number, packet.timestamp, bool(packet.marker)
        self._events.append(MediaReceived(packet.payload, seq, timestamp, pt, packet.ssrc, marker, now))

    def _admit(self, ssrc: int, seq: int, addr: Address, now: float) -> None:
        """Take a valid packet's source, latching on it if the rules allow (module docstring);
        raises `RtpParseError` when the packet must be dropped."""
        if self.latched:
            if addr == self.remote and ssrc == self.remote_ssrc:
                return
            reason = self._foreign(addr, now)
            if reason is not None:
                raise RtpParseError(
                    f"SSRC {ssrc:#010x} from {addr[0]}:{addr[1]} while {self._latch_text()}", reason
                )
        elif addr == self.remote:
            # The address the SDP named: the far end by its own word, no probation needed.
            self._latch(addr, ssrc)
            return
        if self._on_probation(addr, ssrc, seq):
            raise RtpParseError(
                f"SSRC {ssrc:#010x} from {addr[0]}:{addr[1]} on probation while {self._latch_text()}",
                "probation",
            )
        self._latch(addr, ssrc)

    def _on_probation(self, addr: Address, ssrc: int, seq: int) -> bool:
        """Count a candidate's packet; True until it sent `PROBATION_PACKETS` in sequence."""
        previous = self._candidates.pop((addr, ssrc), None)
        count = previous[1] + 1 if previous is not None and (seq - previous[0]) % SEQ_MOD == 1 else 1
        if count >= PROBATION_PACKETS:
            return False
        if len(self._candidates) >= MAX_CANDIDATES:
            # Dicts keep insertion order and each packet re-inserts: the first is the stalest.
            del self._candidates[next(iter(self._candidates))]
        self._candidates[(addr, ssrc)] = (seq, count)
        return True

    def _latch(self, addr: Address, ssrc: int) -> None:
        previous = self.remote
        self.remote = addr
        self.latched = True
        self._candidates.clear()
        self._rtcp_settled = False
        if not self._rtcp_from_sdp or previous != addr:
            self.remote_rtcp = _rtcp_of(addr)
        # A new source starts new sequence numbering and timing: statistics start over.
        self.remote_ssrc = ssrc
        self.receiver = ReceiverStatistics(self._config.clock_rate)
        self._detector = DtmfDetector(self._config.clock_rate)
        self._events.append(RemoteLatched(address=addr, ssrc=ssrc, previous=previous))

    def _receive_rtcp(self, data: bytes, addr: Address, now: float, *, on_rtcp_port: bool) -> None:
        if not self._rtcp_source_ok(addr, on_rtcp_port=on_rtcp_port):
            self._bad("foreign_address", addr, f"RTCP from {addr[0]}:{addr[1]} while {self._latch_text()}")
            return
        try:
            if self.srtp is not None:
                data = self._unprotect(self.srtp.unprotect_rtcp, data)
            packets = parse_rtcp(data)
        except RtpParseError as exc:
            self._bad(exc.reason, addr, str(exc))
            return
        sender = next((p.ssrc for p in packets if isinstance(p, RtcpSrPacket | RtcpRrPacket)), None)
        if on_rtcp_port and addr != self.remote_rtcp:
            # Symmetric RTCP: answer where the far end's own reports come from, learnt once.
            if not self.latched or sender != self.remote_ssrc:
                self._bad("foreign_ssrc", addr, f"RTCP from {addr[0]}:{addr[1]} while {self._latch_text()}")
                return
            self.remote_rtcp = addr
        self._rtcp_settled |= on_rtcp_port
        self.rtcp_received += 1
        for packet in packets:
            self._apply_rtcp(packet, now)
        self._events.append(RtcpReceived(kinds=tuple(rtcp_kind(p) for p in packets), ssrc=sender))

    def _apply_rtcp(self, packet: AnyRtcpPacket, now: float) -> None:
        if isinstance(packet, RtcpSrPacket) and packet.ssrc == self.remote_ssrc and self.receiver:
            self.receiver.sender_report_received(packet.sender_info.ntp_timestamp, now)
        if isinstance(packet, RtcpSrPacket | RtcpRrPacket):
            for block in packet.reports:
                if block.ssrc == self.ssrc:
                    self.sender.report_received(block, now, self._config.unix_offset)
        elif isinstance(packet, RtcpByePacket) and self.remote_ssrc in packet.sources:
            self.remote_bye = True

    def _bad(self, reason: BadPacketReason, addr: Address, detail: str) -> None:
        self.bad_packets[reason] += 1
        self._events.append(BadPacket(reason=reason, address=addr, detail=detail))

    @staticmethod
    def _address_text(addr: Address | None) -> str:
        return "nothing" if addr is None else f"{addr[0]}:{addr[1]}"

    def next_event(self) -> SessionEvent | None:
        """The next thing that happened, or None when all were taken."""
        return self._events.popleft() if self._events else None

    # ---------------------------------------------------------------- outbound

    def update_remote(self, remote: Address, remote_rtcp: Address | None = None) -> None:
        """The SDP of a re-INVITE: when it moves the media, send there and latch again.

        One that names the same address as before (a session refresh, hold with sendonly)
        keeps the latched source: the far end's NAT address would otherwise be up for grabs.
        """
        _checked_address(remote)
        _checked_address(remote_rtcp)
        if remote == self._sdp_remote and self.latched:
            return
        self._sdp_remote = remote
        self.remote = remote
        self.remote_rtcp = remote_rtcp or _rtcp_of(remote)
        self._rtcp_from_sdp = remote_rtcp is not None
        self._rtcp_settled = False
        self.latched = False
        self._candidates.clear()

    def send_media(self, payload: bytes, samples: int, *, marker: bool, now: float) -> None:
        """Queue one media packet; the next one's timestamp is `samples` later."""
        marker = marker or self._first_packet
        self._first_packet = False
        self._queue_rtp(self._config.payload_type, payload, self._next_ts, marker=marker, now=now)
        self.advance(samples)

    def advance(self, samples: int) -> None:
        """Let media time pass without a packet (hold, a DTMF event replacing audio)."""
        self._next_ts = (self._next_ts + samples) % TIMESTAMP_MOD

    def _queue_rtp(self, pt: int, payload: bytes, timestamp: int, *, marker: bool, now: float) -> None:
        if self.remote is None or self.closed:
            return
        data = serialize_rtp(pt, marker, self._next_seq, timestamp, self.ssrc, payload)
        self._next_seq = (self._next_seq + 1) % SEQ_MOD
        self.sender.add(timestamp, len(payload), now)
        self._sent_since_report = True
        if self.srtp is not None:
            data = self.srtp.protect(data)
        self._outbox.append(Datagram(data, self.remote, rtcp=False))

    def send_dtmf(self, digit: str, duration_ms: int, now: float) -> None:
        """Queue one key press (RFC 4733); it replaces audio while `sending_dtmf(now)`."""
        if self._config.telephone_event_pt is None:
            raise ValueError("telephone-event was not negotiated: cannot send RFC 4733 DTMF")
        # Validate now, so misuse raises here rather than from a later timer.
        digit_packets(digit, duration_ms, self._config.clock_rate)
        self._dtmf_digits.append((digit, duration_ms))
        self._start_next_digit(now)

    def _start_next_digit(self, now: float) -> None:
        if self._dtmf_packets or not self._dtmf_digits or now < self._dtmf_busy_until:
            return
        digit, duration_ms = self._dtmf_digits.popleft()
        packets = digit_packets(digit, duration_ms, self._config.clock_rate)
        self._dtmf_packets.extend(packets)
        self._dtmf_start = now
        self._dtmf_timestamp = self._next_ts
        self._dtmf_busy_until = now + (packets[-1].offset_ms + DTMF_GAP_MS) / 1000

    def sending_dtmf(self, now: float) -> bool:
        """True while a key press (or the gap after it, or a queued one) replaces audio."""
        return bool(self._dtmf_packets or self._dtmf_digits) or now < self._dtmf_busy_until

    def _send_due_dtmf(self, now: float) -> None:
        pt = self._config.telephone_event_pt
        assert pt is not None  # packets are only scheduled when negotiated
        while self._dtmf_packets and self._dtmf_start + self._dtmf_packets[0].offset_ms / 1000 <= now:
            scheduled = self._dtmf_packets.popleft()
            self._queue_rtp(
                pt, bytes(scheduled.event), self._dtmf_timestamp, marker=scheduled.marker, now=now
            )
        if not self._dtmf_packets:
            # Audio after a DTMF event starts a new talkspurt.
            self._first_packet = True
            self._start_next_digit(now)

    def datagrams_to_send(self, now: float) -> list[Datagram]:
        """Everything queued for the wire since the last call."""
        out, self._outbox = self._outbox, []
        return out

    # ------------------------------------------------------------------ timers

    def get_timer(self) -> float | None:
        """When `handle_timer` wants to run next (RTCP, DTMF timing), or None after close."""
        if self.closed:
            return None
        timers = [self._next_rtcp, self._detector.deadline]
        if self._dtmf_packets:
            timers.append(self._dtmf_start + self._dtmf_packets[0].offset_ms / 1000)
        elif self._dtmf_digits:
            timers.append(self._dtmf_busy_until)
        return min(t for t in timers if t is not None)

    def handle_timer(self, now: float) -> None:
        """Do what is due at `now`: DTMF packets and end detection, the periodic RTCP report."""
        if self.closed:
            return
        if self._dtmf_packets or self._dtmf_digits:
            self._start_next_digit(now)
            self._send_due_dtmf(now)
        digit = self._detector.poll(now)
        if digit is not None:
            self._events.append(digit)
        if now >= self._next_rtcp:
            self._queue_rtcp([self._report(now), self._sdes()])
            self._next_rtcp = now + self._rtcp_delay()

    def _rtcp_delay(self) -> float:
        return self._config.rtcp_interval * self._rng.uniform(0.5, 1.5)

    def _report(self, now: float) -> RtcpSrPacket | RtcpRrPacket:
        blocks: list[RtcpReceiverInfo] = []
        if self.receiver is not None and self.remote_ssrc is not None and self.receiver.packets_received:
            blocks.append(self.receiver.report_block(self.remote_ssrc, now))
        was_sender, self._sent_since_report = self._sent_since_report, False
        if was_sender:
            info = self.sender.sender_info(now, self._config.unix_offset)
            return RtcpSrPacket(ssrc=self.ssrc, sender_info=info, reports=blocks)
        return RtcpRrPacket(ssrc=self.ssrc, reports=blocks)

    def _sdes(self) -> RtcpSdesPacket:
        cname = self._config.cname.encode()
        return RtcpSdesPacket(chunks=[RtcpSourceInfo(ssrc=self.ssrc, items=[(SDES_CNAME, cname)])])

    def _queue_rtcp(self, packets: list[AnyRtcpPacket]) -> None:
        if self.remote_rtcp is None:
            return
        self.rtcp_sent += 1
        data = b"".join(bytes(p) for p in packets)
        if self.srtp is not None:
            data = self.srtp.protect_rtcp(data)
        self._outbox.append(Datagram(data, self.remote_rtcp, rtcp=True))

    def close(self, now: float) -> None:
        """Say goodbye (a last report and an RTCP BYE) and stop; idempotent."""
        if self.closed:
            return
        self._queue_rtcp([self._report(now), self._sdes(), RtcpByePacket(sources=[self.ssrc])])
        self.closed = True
