"""Delayed offers (RFC 3261 13.2.1, RFC 3264): an INVITE with no SDP gets our offer in the 200 OK
and the call's media starts from the answer in the ACK; a re-INVITE with no SDP gets an offer too
(RFC 3261 14.1). Raw SIP over UDP and real RTP on 127.0.0.1."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator

import pytest
from aiortc.rtp import RtpPacket

from tests.rtp.helpers import sine
from tests.sip.test_signaling import wait_for_event
from voicegw.audio.codecs import PCMU
from voicegw.testing.harness import EchoServer, options_ping
from voicegw.testing.raw_sip import Dialog, offer_sdp

pytestmark = pytest.mark.timeout(60)

RTP_PORTS = "[rtp]\nports = '42200-42300'\n"


@pytest.fixture
def media() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    yield sock
    sock.close()


def offered_port(body: str) -> int:
    return int(body.split("m=audio ", 1)[1].split()[0])


def assert_echo(media: socket.socket, port: int) -> None:
    """Send a 440 Hz tone in PCMU to voicegw's `port`: voicegw's echo of it comes back."""
    tone = PCMU().encode(sine(440, 1.0, 8000, amplitude=0.5))
    for seq in range(50):
        packet = RtpPacket(payload_type=0, sequence_number=seq, timestamp=seq * 160, ssrc=0x1A7E,
                           payload=tone[seq * 160 : (seq + 1) * 160])  # fmt: skip
        media.sendto(packet.serialize(), ("127.0.0.1", port))
        time.sleep(0.02)
    media.settimeout(2.0)
    payloads = [media.recv(2048)[12:] for _ in range(60)]
    assert any(p != b"\xff" * 160 for p in payloads), "no echo of the tone"


def hang_up(dialog: Dialog, server: EchoServer) -> None:
    dialog.request("BYE")
    assert dialog.until(200).headers["cseq"].endswith("BYE")
    assert wait_for_event(server, "call_ended")[0]["reason"] == "caller hung up"


def test_invite_without_sdp_gets_our_offer_and_the_acks_answer_starts_the_echo(
    voicegw: Callable[..., EchoServer], media: socket.socket
) -> None:
    server = voicegw(RTP_PORTS)
    dialog = Dialog(server.port)
    try:
        dialog.invite("")
        ok = dialog.until(200)
        assert ok.headers["content-type"] == "application/sdp"
        assert ok.body.count("m=") == 1 and "m=audio 422" in ok.body and "RTP/AVP" in ok.body
        # Our codecs, in our order of preference, and DTMF at their clock rate.
        assert "a=rtpmap:0 PCMU/8000" in ok.body and "a=rtpmap:8 PCMA/8000" in ok.body
        assert "a=rtpmap:101 telephone-event/8000" in ok.body and "a=sendrecv" in ok.body
        dialog.ack(sdp=offer_sdp(media.getsockname()[1]))
        answered = wait_for_event(server, "call_answered")
        assert answered and answered[0]["codec"] == "PCMU"
        assert_echo(media, offered_port(ok.body))
        hang_up(dialog, server)
    finally:
        dialog.close()


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        ("", "the ACK has no SDP answer to our offer"),
        # G.729 was never offered: pjsua's own negotiator refuses it as well.
        (offer_sdp(40000, "18", "a=rtpmap:18 G729/8000\r\n"), "no common codec"),
    ],
)
def test_ack_without_a_usable_answer_ends_the_call_with_bye(
    voicegw: Callable[..., EchoServer], answer: str, why: str
) -> None:
    server = voicegw()
    dialog = Dialog(server.port)
    try:
        dialog.invite("")
        dialog.until(200)
        dialog.ack(sdp=answer)
        dialog.until_request("BYE")
        ended = wait_for_event(server, "call_ended")
        assert ended and ended[0]["end_reason"] == "failed"
        assert why in str(ended[0]["reason"])
        assert not [e for e in server.log_events() if e.get("event") == "call_answered"]
    finally:
        dialog.close()
    assert why in str(wait_for_event(server, "answer_refused")[0]["reason"])


def test_invite_with_malformed_sdp_still_gets_400(voicegw: Callable[..., EchoServer]) -> None:
    server = voicegw()
    dialog = Dialog(server.port)
    try:
        dialog.invite("v=0\r\nm=audio nine RTP/AVP 0\r\n")
        response = dialog.until(400)
        assert response.reason == "Bad SDP"
        dialog.ack(for_error=True)
    finally:
        dialog.close()


def test_late_offer_is_refused_when_srtp_is_required(voicegw: Callable[..., EchoServer]) -> None:
    server = voicegw("[rtp]\nsrtp = 'required'\n")
    dialog = Dialog(server.port)
    try:
        dialog.invite("")
        dialog.until(488)
        dialog.ack(for_error=True)
    finally:
        dialog.close()
    # Refusing an INVITE that pjsua has no offer for once aborted the process (test_hostile_invites).
    assert options_ping(server.port, 2.0) == 200


def test_reinvite_without_sdp_gets_an_offer_and_the_call_goes_on(
    voicegw: Callable[..., EchoServer], media: socket.socket
) -> None:
    server = voicegw()
    dialog = Dialog(server.port)
    try:
        ok = dialog.establish(offer_sdp(media.getsockname()[1]))
        dialog.request("INVITE")
        reoffer = dialog.until(200)
        assert reoffer.body.count("m=") == 1 and offered_port(reoffer.body) == offered_port(ok.body)
        assert "a=rtpmap:0 PCMU/8000" in reoffer.body
        dialog.ack(cseq=dialog.cseq, sdp=offer_sdp(media.getsockname()[1]))
        assert_echo(media, offered_port(ok.body))
        hang_up(dialog, server)
    finally:
        dialog.close()
