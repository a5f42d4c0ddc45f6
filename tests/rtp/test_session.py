import random
from collections.abc import Callable

import pytest
from aiortc.rtp import RtcpRrPacket, RtcpSrPacket, RtpPacket

from tests.rtp.helpers import deliver, drain_events, load, load_stream
from voicegw.rtp.dtmf import TelephoneEvent
from voicegw.rtp.events import BadPacket, DtmfDigit, MediaReceived, RemoteLatched, RtcpReceived, SessionEvent
from voicegw.rtp.packet import parse_rtcp, parse_rtp
from voicegw.rtp.session import (
    MAX_CANDIDATES,
    PROBATION_PACKETS,
    RELATCH_SILENCE_S,
    SSRC_SWITCH_SILENCE_S,
    Datagram,
    RtpSession,
    RtpSessionConfig,
)

A = ("127.0.0.1", 40000)
B = ("127.0.0.1", 42000)
NAT = ("203.0.113.7", 61000)
PCMU = 0
TE = 101


def session(remote: tuple[str, int] | None, seed: int, **kw: object) -> RtpSession:
    config = RtpSessionConfig(clock_rate=8000, payload_type=PCMU, telephone_event_pt=TE, remote=remote, **kw)  # type: ignore[arg-type]
    return RtpSession(config, now=0.0, rng=random.Random(seed))


def send_tick(s: RtpSession, now: float, *, marker: bool = False) -> list[Datagram]:
    s.send_media(bytes([0xFF]) * 160, 160, marker=marker, now=now)
    return s.datagrams_to_send(now)


def test_outbound_headers() -> None:
    a = session(B, seed=1)
    packets = [parse_rtp(d.data) for i in range(5) for d in send_tick(a, i * 0.02, marker=i == 3)]
    assert {p.ssrc for p in packets} == {a.ssrc}
    first = packets[0]
    assert [p.sequence_number for p in packets] == [(first.sequence_number + i) % 65536 for i in range(5)]
    assert [p.timestamp for p in packets] == [(first.timestamp + 160 * i) % 2**32 for i in range(5)]
    assert [p.marker for p in packets] == [1, 0, 0, 1, 0]  # first packet, then a new talkspurt
    assert {p.payload_type for p in packets} == {PCMU}
    # Random per session (RFC 3550 5.1): another session starts elsewhere.
    other = parse_rtp(send_tick(session(B, seed=2), 0.0)[0].data)
    assert (other.ssrc, other.sequence_number, other.timestamp) != (
        first.ssrc,
        first.sequence_number,
        first.timestamp,
    )


def test_pair_media_and_latching_through_nat() -> None:
    a = session(B, seed=1)
    b = session(("10.0.0.9", 4000), seed=2)  # SDP says a private address: A is behind a NAT
    for i in range(PROBATION_PACKETS + 2):
        deliver(send_tick(a, i * 0.02), b, to=B, source=NAT, now=i * 0.02)
    events = drain_events(b)
    # Not the SDP's address: latched once it sent PROBATION_PACKETS in sequence.
    on_probation = [e for e in events[: PROBATION_PACKETS - 1] if isinstance(e, BadPacket)]
    assert [e.reason for e in on_probation] == ["probation"] * (PROBATION_PACKETS - 1)
    assert events[PROBATION_PACKETS - 1] == RemoteLatched(
        address=NAT, ssrc=a.ssrc, previous=("10.0.0.9", 4000)
    )
    media = [e for e in events if isinstance(e, MediaReceived)]
    assert len(media) == 3 and all(m.ssrc == a.ssrc and m.payload_type == PCMU for m in media)
    # B now answers to where A's packets came from, RTCP to the port above.
    assert send_tick(b, 0.2)[0].address == NAT
    assert b.remote_rtcp == (NAT[0], NAT[1] + 1)


def test_the_sdp_address_latches_at_once() -> None:
    a, b = session(B, seed=1), session(A, seed=2)
    deliver(send_tick(a, 0.0, marker=True), b, to=B, source=A, now=0.0)
    latched, media = drain_events(b)
    assert latched == RemoteLatched(address=A, ssrc=a.ssrc, previous=A)
    assert isinstance(media, MediaReceived) and media.marker


def test_stray_source_with_latched_ssrc_is_dropped() -> None:
    a = session(B, seed=1)
    b = session(A, seed=2)
    deliver(send_tick(a, 0.0), b, to=B, source=A, now=0.0)
    drain_events(b)
    deliver(send_tick(a, 0.02), b, to=B, source=NAT, now=0.02)
    (event,) = drain_events(b)
    assert isinstance(event, BadPacket) and event.reason == "foreign_address"
    assert b.remote == A and b.bad_packets["foreign_address"] == 1


def attacker(ssrc: int = 0xBAD5EED, first_seq: int = 100) -> Callable[[int], bytes]:
    """Well-formed PCMU packets of one SSRC with consecutive sequence numbers."""
    return lambda i: RtpPacket(
        payload_type=PCMU, sequence_number=first_seq + i, timestamp=160 * i, ssrc=ssrc, payload=b"\0" * 160
    ).serialize()


def test_no_source_takes_over_while_the_latched_one_talks() -> None:
    a, b = session(B, seed=1), session(A, seed=2)
    forged = attacker()
    for i in range(250):  # five seconds; the attacker as fast as the caller, in perfect sequence
        now = i * 0.02
        deliver(send_tick(a, now), b, to=B, source=A, now=now)
        assert b.screen(forged(i), NAT, now) == "drop"
        b.receive(forged(i), NAT, now)
        assert b.screen(forged(i), (A[0], A[1] + 2), now) == "drop"
    assert b.remote == A and b.remote_ssrc == a.ssrc
    assert b.bad_packets == {"foreign_address": 3 * 250}  # each screen and each receive counts
    assert send_tick(b, 5.0)[0].address == A


def test_another_address_takes_over_after_silence_and_probation() -> None:
    a, b = session(B, seed=1), session(A, seed=2)
    for i in range(3):
        deliver(send_tick(a, i * 0.02), b, to=B, source=A, now=i * 0.02)
    newcomer = attacker()  # the caller's NAT mapping moved: the stream goes on from NAT
    silent_from = 0.04
    latched_at = None
    for i in range(150):
        now = 0.06 + i * 0.02
        b.receive(newcomer(i), NAT, now)
        if b.remote == NAT and latched_at is None:
            latched_at = now
    assert latched_at is not None
    # Silent for RELATCH_SILENCE_S, then PROBATION_PACKETS in sequence.
    earliest = silent_from + RELATCH_SILENCE_S + (PROBATION_PACKETS - 1) * 0.02
    assert earliest - 1e-9 <= latched_at <= earliest + 0.02 + 1e-9
    latched = [e for e in drain_events(b) if isinstance(e, RemoteLatched)]
    assert latched[-1] == RemoteLatched(address=NAT, ssrc=0xBAD5EED, previous=A)
    assert b.receiver is not None and b.receiver.packets_received < 50  # statistics start over


def test_new_ssrc_from_the_latched_address_after_a_short_silence() -> None:
    a, a2, b = session(B, seed=1), session(B, seed=3), session(A, seed=2)
    for i in range(3):
        deliver(send_tick(a, i * 0.02), b, to=B, source=A, now=i * 0.02)
    # A media server switching streams behind the same address: the old SSRC stops.
    for i in range(30):
        now = 0.06 + i * 0.02
        deliver(send_tick(a2, now), b, to=B, source=A, now=now)
    assert b.remote == A and b.remote_ssrc == a2.ssrc
    reasons = [e.reason for e in drain_events(b) if isinstance(e, BadPacket)]
    # Dropped while the old SSRC might still speak, then on probation.
    assert abs(reasons.count("foreign_ssrc") - SSRC_SWITCH_SILENCE_S / 0.02) <= 1
    assert reasons.count("probation") == PROBATION_PACKETS - 1


def test_packets_out_of_sequence_never_pass_probation() -> None:
    b = session(None, seed=2)
    rng = random.Random(7)
    for i in range(200):
        ssrc = rng.randrange(1, 2**32) if i % 2 else 0x1234  # fresh SSRCs, and one SSRC ...
        packet = RtpPacket(payload_type=PCMU, sequence_number=rng.randrange(65536), ssrc=ssrc)  # ... jumping
        b.receive(packet.serialize(), (NAT[0], 1000 + i % 50), i * 0.001)
    assert not b.latched and b.bad_packets == {"probation": 200}
    assert len(b._candidates) <= MAX_CANDIDATES


def test_screen_sorts_datagrams_from_their_first_bytes() -> None:
    a, b = session(B, seed=1), session(A, seed=2)
    own = send_tick(a, 0.0)[0].data
    assert b.screen(own, A, 0.0) == "own" and b.screen(own, NAT, 0.0) == "candidate"  # not latched
    b.receive(own, A, 0.0)
    assert b.screen(send_tick(a, 0.02)[0].data, A, 0.02) == "own"
    assert b.screen(b"\x00junk", A, 0.02) == "own"  # too short to tell: parsed and counted later
    assert b.screen(attacker()(0), A, 0.02) == "drop"  # the latched address, another SSRC
    assert b.screen(b"\x80\xc8\x00\x01abcd", (A[0], 9), 0.02, rtcp=True) == "own"  # RTCP: the host
    assert b.screen(b"\x80\xc8\x00\x01abcd", NAT, 0.02, rtcp=True) == "drop"
    assert b.bad_packets == {"foreign_ssrc": 1, "foreign_address": 1}
    # Only the first drop of each kind leaves an event (for one log line), not one per datagram.
    assert b.screen(attacker()(1), NAT, 0.03) == "drop"
    assert [e.reason for e in drain_events(b) if isinstance(e, BadPacket)] == [
        "foreign_ssrc",
        "foreign_address",
    ]
    # Silent long enough: others become candidates again (receive() still wants probation).
    assert b.screen(attacker()(2), NAT, 0.02 + RELATCH_SILENCE_S) == "candidate"


def test_bad_packets_counted_and_never_latch() -> None:
    b = session(A, seed=2)
    wrong_pt = bytearray(load("sipp_pcma.bin"))  # PT 8 was not negotiated
    for data in [b"\x00\x01junk", bytes(wrong_pt), load("sipp_pcma.bin")[:9], b"\x80\xc8\x00\x01abcd"]:
        b.receive(data, NAT, 0.0)
    b.receive(b"\x80\xc8\x00\x01abcd", A, 0.0)
    reasons = [e.reason for e in drain_events(b) if isinstance(e, BadPacket)]
    assert reasons == ["garbage", "unknown_payload_type", "truncated", "foreign_address", "bad_rtcp"]
    assert not b.latched and b.remote == A
    event = BadPacket("unknown_payload_type", NAT, "RTP payload type 8 was not negotiated")
    b.receive(bytes(wrong_pt), NAT, 0.0)
    assert b.next_event() == event


def test_truncated_telephone_event_does_not_latch() -> None:
    b = session(A, seed=2)
    dtmf = load_stream("sipp_dtmf_2833_1.bin")[0]
    b.receive(dtmf[:14], NAT, 0.0)
    (event,) = drain_events(b)
    assert isinstance(event, BadPacket) and event.reason == "truncated" and not b.latched


def test_captured_dtmf_through_session() -> None:
    b = session(A, seed=2)
    for i, data in enumerate(load_stream("pjsua2_dtmf_5_hash.bin")):
        b.receive(data, A, i * 0.02)
    digits = [e for e in drain_events(b) if isinstance(e, DtmfDigit)]
    assert digits == [DtmfDigit("5", 200), DtmfDigit("#", 200)]


def run_pair(
    a: RtpSession,
    b: RtpSession,
    seconds: float,
    drop: Callable[[int, Datagram], bool] = lambda i, d: False,
) -> list[SessionEvent]:
    """A sends audio every 20 ms while both run their timers; B's output goes back to A."""
    events: list[SessionEvent] = []
    count = 0
    for tick in range(int(seconds / 0.02)):
        now = tick * 0.02
        for s in (a, b):
            if (timer := s.get_timer()) is not None and timer <= now:
                s.handle_timer(now)
        if not a.sending_dtmf(now):
            a.send_media(b"\xff" * 160, 160, marker=False, now=now)
        else:
            a.advance(160)
        out = a.datagrams_to_send(now)
        for d in out:
            count += 1
            if not drop(count, d):
                deliver([d], b, to=B, source=A, now=now)
        deliver(b.datagrams_to_send(now), a, to=A, source=B, now=now)
        events += drain_events(b)
    return events


def test_dtmf_end_to_end_with_loss_and_audio_suppressed() -> None:
    a, b = session(B, seed=1), session(A, seed=2)
    a.send_dtmf("9", 120, now=0.1)
    a.send_dtmf("*", 80, now=0.1)
    sent: list[bytes] = []
    dropped: list[TelephoneEvent] = []

    def drop(i: int, d: Datagram) -> bool:
        sent.append(d.data)
        packet = parse_rtp(d.data)
        if packet.payload_type != TE:
            return False
        event = TelephoneEvent.parse(packet.payload)
        # Lose the start packet of "9" and the first end packet of "*".
        if (event.digit == "9" and packet.marker) or (event.digit == "*" and event.end and not dropped[1:]):
            dropped.append(event)
            return True
        return False

    events = run_pair(a, b, 1.0, drop)
    assert [e for e in events if isinstance(e, DtmfDigit)] == [DtmfDigit("9", 120), DtmfDigit("*", 80)]
    rtp = [parse_rtp(d) for d in sent if d[1] != 200 and d[1] != 201]
    te = [p for p in rtp if p.payload_type == TE]
    assert len(te) == 3 + 3 + 2 + 3  # "9": 0/50/100 ms + 3 ends; "*": 0/50 ms + 3 ends
    assert [(e.digit, e.end) for e in dropped] == [("9", False), ("*", True)]
    assert [p.marker for p in te].count(1) == 2
    # While a digit plays no audio goes out; media timestamps ran on meanwhile.
    seqs = [p.sequence_number for p in rtp]
    assert seqs == [(seqs[0] + i) % 65536 for i in range(len(seqs))]
    first_audio_after = next(p for p in rtp[rtp.index(te[-1]) :] if p.payload_type == PCMU)
    assert first_audio_after.marker == 1


def test_send_dtmf_needs_negotiated_event() -> None:
    s = RtpSession(RtpSessionConfig(clock_rate=8000, payload_type=0, remote=B), now=0.0)
    with pytest.raises(ValueError, match="telephone-event was not negotiated"):
        s.send_dtmf("1", 100, 0.0)


def test_rtcp_reports_loss_both_ways() -> None:
    a, b = session(B, seed=1), session(A, seed=2)
    a_rtcp: list[bytes] = []

    def drop(i: int, d: Datagram) -> bool:
        if d.rtcp:
            a_rtcp.append(d.data)
            return False
        return i % 10 == 0  # 10 % loss of A's media

    events = run_pair(a, b, 12.0, drop)
    # A sent media, so it reports with an SR; each interval is 2.5-7.5 s (RFC 3550 6.2).
    assert 2 <= len(a_rtcp) <= 4
    assert all(isinstance(parse_rtcp(d)[0], RtcpSrPacket) for d in a_rtcp)
    received = [e for e in events if isinstance(e, RtcpReceived)]
    assert received and received[0].kinds == ("sr", "sdes") and received[0].ssrc == a.ssrc
    # B only receives: RR blocks telling A about the loss; A computes the RTT (zero here).
    assert b.receiver is not None
    assert b.receiver.packets_lost == pytest.approx(b.receiver.packets_expected / 10, abs=2)
    assert a.sender.remote_fraction_lost == pytest.approx(256 // 10, abs=3)
    assert a.sender.remote_packets_lost > 0
    assert a.sender.rtt is not None and a.sender.rtt < 0.001


def test_close_sends_bye_once() -> None:
    a, b = session(B, seed=1), session(A, seed=2)
    run_pair(a, b, 0.1)
    a.close(0.2)
    a.close(0.3)
    out = a.datagrams_to_send(0.3)
    assert len(out) == 1 and out[0].rtcp and out[0].address == (B[0], B[1] + 1)
    kinds = [type(p).__name__ for p in parse_rtcp(out[0].data)]
    assert kinds == ["RtcpSrPacket", "RtcpSdesPacket", "RtcpByePacket"]
    deliver(out, b, to=B, source=A, now=0.3)
    assert b.remote_bye
    a.send_media(b"\xff" * 160, 160, marker=False, now=0.4)
    assert a.datagrams_to_send(0.4) == [] and a.get_timer() is None


def test_received_rtcp_port_latches_rtcp_once_from_the_latched_source() -> None:
    sdp_address = (NAT[0], 5000)
    b = session(sdp_address, seed=2)
    report = load("pjsua2_rtcp_bye.bin")
    assert isinstance(parse_rtcp(report)[0], RtcpRrPacket)
    b.receive(report, NAT, 0.5, rtcp=True)  # nothing latched yet: whose report is it?
    assert b.remote_rtcp == (NAT[0], 5001) and b.bad_packets == {"foreign_ssrc": 1}
    media = RtpPacket(payload_type=PCMU, sequence_number=1, ssrc=0x430DDD3D, payload=b"\xff" * 160)
    b.receive(media.serialize(), sdp_address, 0.9)
    drain_events(b)
    b.receive(report, NAT, 1.0, rtcp=True)  # the latched SSRC's report, from its NAT's RTCP port
    assert b.remote_rtcp == NAT and b.rtcp_received == 1
    (event,) = drain_events(b)
    assert event == RtcpReceived(kinds=("rr", "sdes", "bye"), ssrc=0x430DDD3D)
    # Settled: the same report from another port of that host (someone behind the same NAT) is not.
    assert b.screen(report, (NAT[0], 61002), 1.1, rtcp=True) == "drop"
    b.receive(report, (NAT[0], 61002), 1.1, rtcp=True)
    b.receive(report, (NAT[0], 5002), 1.1)  # muxed RTCP from anywhere but the media's source
    assert b.remote_rtcp == NAT and b.rtcp_received == 1
    assert b.bad_packets == {"foreign_ssrc": 1, "foreign_address": 3}


def test_update_remote_unlatches() -> None:
    a, b = session(B, seed=1), session(A, seed=2)
    deliver(send_tick(a, 0.0), b, to=B, source=A, now=0.0)
    assert b.latched
    b.update_remote(("127.0.0.1", 44000))
    assert not b.latched and b.remote_rtcp == ("127.0.0.1", 44001)
    assert send_tick(b, 0.02)[0].address == ("127.0.0.1", 44000)


def test_reinvite_to_the_same_address_keeps_the_latch() -> None:
    a, b = session(B, seed=1), session(("10.0.0.9", 4000), seed=2)
    for i in range(PROBATION_PACKETS):
        deliver(send_tick(a, i * 0.02), b, to=B, source=NAT, now=i * 0.02)
    assert b.remote == NAT
    b.update_remote(("10.0.0.9", 4000))  # a session refresh: nothing moved
    assert b.latched and b.remote == NAT
    b.update_remote(("10.0.0.9", 4002))  # the media moved: latch again
    assert not b.latched and b.remote == ("10.0.0.9", 4002)


def test_remote_without_a_valid_port_is_refused() -> None:
    with pytest.raises(ValueError, match=r"RTP address 127\.0\.0\.1:70000 has no valid port"):
        session(("127.0.0.1", 70000), seed=1)
    with pytest.raises(ValueError, match="has no valid port"):
        session(A, seed=1).update_remote(("127.0.0.1", 0))


def test_the_latched_address_is_exclusive_while_it_talks() -> None:
    a, b = session(B, seed=1), session(("10.0.0.9", 4000), seed=2)
    assert b.exclusive_source(0.0) is None  # anyone may still latch
    for i in range(PROBATION_PACKETS):
        deliver(send_tick(a, i * 0.02), b, to=B, source=NAT, now=i * 0.02)
    talked = (PROBATION_PACKETS - 1) * 0.02
    assert b.exclusive_source(talked + 0.5) == NAT
    assert b.exclusive_rtcp_source(talked + 0.5) is None  # no report from the far end yet
    a.close(talked)  # its last report (and BYE), from the port above its RTP
    deliver(a.datagrams_to_send(talked), b, to=B, source=NAT, now=talked)
    assert b.exclusive_rtcp_source(talked + 0.5) == (NAT[0], NAT[1] + 1)
    assert b.exclusive_source(talked + RELATCH_SILENCE_S) is None  # silent: others may take over
    b.update_remote(("10.0.0.9", 4002))
    assert b.exclusive_source(talked + 0.1) is None
