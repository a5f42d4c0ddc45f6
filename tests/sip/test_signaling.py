"""SIP signaling of `voicegw serve` with exact messages from a raw UDP client."""

from __future__ import annotations

import contextlib
import signal
import socket
import ssl
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from aiortc.rtp import RtpPacket

from tests.rtp.helpers import sine
from voicegw.audio.codecs import PCMU
from voicegw.rtp.srtp import CryptoAttribute, SrtpContext, SrtpKeys
from voicegw.testing.harness import EchoServer, free_tcp_port, options_ping, tls_config
from voicegw.testing.raw_sip import Dialog, offer_sdp
from voicegw.testing.sipp import run_scenario

pytestmark = pytest.mark.timeout(60)


def events(server: EchoServer, name: str) -> list[dict[str, object]]:
    return [event for event in server.log_events() if event.get("event") == name]


def wait_for_event(server: EchoServer, name: str, timeout: float = 5.0) -> list[dict[str, object]]:
    deadline = time.monotonic() + timeout
    while not (found := events(server, name)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return found


def test_invite_is_answered_with_our_sdp_and_bye_ends_it(voicegw: Callable[..., EchoServer]) -> None:
    server = voicegw("[rtp]\nports = '42000-42100'\n")
    dialog = Dialog(server.port)
    try:
        dialog.invite(offer_sdp(dialog.local_port + 2))
        assert dialog.until(180).status == 180
        ok = dialog.until(200)
        assert "m=audio 420" in ok.body and "a=rtpmap:0 PCMU/8000" in ok.body
        assert "a=rtcp:420" in ok.body and "a=rtpmap:101 telephone-event/8000" in ok.body
        dialog.ack()
        dialog.request("BYE")
        assert dialog.until(200).headers["cseq"].endswith("BYE")
        ended = wait_for_event(server, "call_ended")
        assert ended and ended[0]["reason"] == "caller hung up"
    finally:
        dialog.close()


def test_cancel_before_answer_gets_487(voicegw: Callable[..., EchoServer]) -> None:
    server = voicegw("[sip]\nanswer_delay = 3\n")
    dialog = Dialog(server.port)
    try:
        dialog.invite(offer_sdp(dialog.local_port + 2))
        dialog.until(180)
        dialog.cancel()
        statuses = {dialog.receive().status, dialog.receive().status}
        assert statuses == {200, 487}  # 200 for the CANCEL, 487 for the INVITE
        dialog.ack(for_error=True)
        ended = wait_for_event(server, "call_ended")
        assert ended and ended[0]["reason"] == "caller cancelled"
    finally:
        dialog.close()


def test_options_is_answered_200(voicegw: Callable[..., EchoServer]) -> None:
    server = voicegw()
    assert options_ping(server.port) == 200


def test_call_limit_answers_503_with_retry_after(voicegw: Callable[..., EchoServer]) -> None:
    server = voicegw("[sip]\nmax_calls = 1\n")
    first, second = Dialog(server.port), Dialog(server.port)
    try:
        first.establish()
        second.invite(offer_sdp(second.local_port + 2))
        busy = second.until(503)
        assert busy.headers.get("retry-after") == "30"
        second.ack(for_error=True)
        assert first.sock  # the first call is untouched
        first.request("BYE")
        first.until(200)
    finally:
        first.close()
        second.close()


def test_no_common_codec_gets_488(voicegw: Callable[..., EchoServer]) -> None:
    server = voicegw()
    dialog = Dialog(server.port)
    try:
        dialog.invite(offer_sdp(dialog.local_port + 2, "3", "a=rtpmap:3 GSM/8000\r\n"))
        assert dialog.until(488).status == 488
        dialog.ack(for_error=True)
    finally:
        dialog.close()


def test_sip_info_dtmf_is_reported(voicegw: Callable[..., EchoServer]) -> None:
    server = voicegw()
    dialog = Dialog(server.port)
    try:
        dialog.establish()
        dialog.request(
            "INFO",
            "Signal=7\r\nDuration=160\r\n",
            "Content-Type: application/dtmf-relay\r\n",
        )
        assert dialog.until(200).headers["cseq"].endswith("INFO")
        dtmf = wait_for_event(server, "dtmf")
        assert [(d["digit"], d["method"]) for d in dtmf] == [("7", "sip_info")]
        dialog.request("BYE")
        dialog.until(200)
    finally:
        dialog.close()


def test_sigterm_with_no_calls_exits_zero(voicegw: Callable[..., EchoServer]) -> None:
    server = voicegw()
    assert server.stop()
    assert events(server, "stopped")


def test_sipp_call_is_answered_with_our_rtp_port(voicegw: Callable[..., EchoServer], tmp_path: Path) -> None:
    server = voicegw("[rtp]\nports = '43000-43100'\n")
    run = run_scenario("uac_answer_bye.xml", server.port, tmp_path)
    assert run.ok, run.output
    ports = run.received_sdp_ports()
    assert len(ports) == 1 and 43000 <= ports[0] < 43100 and ports[0] % 2 == 0
    assert wait_for_event(server, "call_ended")[0]["reason"] == "caller hung up"


def test_sipp_offer_with_no_common_codec_gets_488(voicegw: Callable[..., EchoServer], tmp_path: Path) -> None:
    server = voicegw()
    run = run_scenario("uac_no_common_codec.xml", server.port, tmp_path)
    assert run.ok, run.output
    # pjsua's own request verification answers this one before voicegw sees the INVITE
    # (it knows neither GSM nor G.729); offers pjsua accepts get voicegw's 488 (test_sdp.py).
    assert "SIP/2.0 488 Not Acceptable Here" in run.messages
    assert options_ping(server.port) == 200
    # pjsip's own log reaches structlog (JSON, one level down: a peer's bad offer is no error).
    routed = wait_for_event(server, "pjsip")
    assert any("Not Acceptable Here" in str(e["message"]) and e["level"] == "warning" for e in routed)


def test_sipp_cancel_before_answer_gets_487(voicegw: Callable[..., EchoServer], tmp_path: Path) -> None:
    server = voicegw("[sip]\nanswer_delay = 3\n")
    run = run_scenario("uac_cancel.xml", server.port, tmp_path)
    assert run.ok, run.output
    assert wait_for_event(server, "call_ended")[0]["reason"] == "caller cancelled"


def test_sipp_call_without_rtp_is_hung_up_with_bye(
    voicegw: Callable[..., EchoServer], tmp_path: Path
) -> None:
    server = voicegw("[rtp]\nmedia_timeout = 1.0\n")
    started = time.monotonic()
    run = run_scenario("uac_media_timeout.xml", server.port, tmp_path)
    assert run.ok, run.output
    assert time.monotonic() - started < 8
    timeout = wait_for_event(server, "media_timeout")
    ended = wait_for_event(server, "call_ended")
    assert timeout and ended and timeout[0]["call_id"] == ended[0]["call_id"]
    assert ended[0]["reason"] == "media timeout"


def test_malformed_sip_does_not_disturb_a_call(voicegw: Callable[..., EchoServer]) -> None:
    server = voicegw()
    dialog = Dialog(server.port)
    garbage = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        dialog.establish()
        for junk in MALFORMED:
            garbage.sendto(junk, ("127.0.0.1", server.port))
        assert options_ping(server.port) == 200
        dialog.request("INFO", "Signal=5\r\nDuration=120\r\n", "Content-Type: application/dtmf-relay\r\n")
        assert dialog.until(200).headers["cseq"].endswith("INFO")
        dialog.request("BYE")
        assert dialog.until(200).headers["cseq"].endswith("BYE")
        assert wait_for_event(server, "call_ended")[0]["reason"] == "caller hung up"
        assert server.proc.poll() is None
    finally:
        garbage.close()
        dialog.close()


MALFORMED = [
    b"\x00\xff garbage \x80" * 20,
    b"INVITE sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:1\r\n",  # truncated
    b"INVITE sip:x@127.0.0.1 SIP/2.0\r\nContent-Length: 9999\r\n\r\nv=0",  # no Via/From/Call-ID
    b"SIP/2.0 200 OK\r\nCSeq: 1 INVITE\r\n\r\n",  # a stray response
    b"BYE sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKx\r\n"
    b"From: <sip:a@b>;tag=1\r\n"
    b"To: <sip:c@d>;tag=2\r\nCall-ID: no-such-call\r\nCSeq: 5 BYE\r\nContent-Length: 0\r\n\r\n",
]


def test_sigterm_drains_new_calls_get_503_and_calls_in_progress_finish(
    voicegw: Callable[..., EchoServer],
) -> None:
    http_port = free_tcp_port()
    server = voicegw(f"[server]\nhttp = '127.0.0.1:{http_port}'\n")
    assert health(http_port) == 200
    first, second = Dialog(server.port), Dialog(server.port)
    try:
        first.establish()
        server.proc.send_signal(signal.SIGTERM)
        assert wait_for_event(server, "draining")
        assert health(http_port) == 503
        second.invite(offer_sdp(second.local_port + 2))
        refused = second.until(503)
        assert refused.reason == "Server draining" and refused.headers.get("retry-after") == "30"
        second.ack(for_error=True)
        assert server.proc.poll() is None  # still serving the first call
        first.request("BYE")
        first.until(200)
        assert server.proc.wait(10) == 0
    finally:
        first.close()
        second.close()


def health(port: int) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        return int(sock.recv(4096).split()[1])


def test_reinvite_holds_and_resumes_the_call(voicegw: Callable[..., EchoServer]) -> None:
    server = voicegw()
    dialog = Dialog(server.port)
    try:
        dialog.invite(offer_sdp(dialog.local_port + 2))
        first = dialog.until(200)
        dialog.ack()
        answers = [first.body]
        for direction, port in (("sendonly", dialog.local_port + 2), ("sendrecv", dialog.local_port + 4)):
            offer = offer_sdp(port).replace("a=sendrecv", f"a={direction}")
            dialog.request("INVITE", offer)
            answers.append(dialog.until(200).body)
            dialog.ack(cseq=dialog.cseq)
        assert "a=recvonly" in answers[1] and "a=sendrecv" in answers[2]
        origins = [line.split() for body in answers for line in body.splitlines() if line.startswith("o=")]
        assert len({o[1] for o in origins}) == 1  # one session id for the whole dialog
        versions = [int(o[2]) for o in origins]
        assert versions == sorted(set(versions))  # and a new version for every answer
        states = [(e["state"], e["reason"]) for e in wait_for_event(server, "call_state", 2)]
        deadline = time.monotonic() + 5
        while ("answered", "resumed by the far end") not in states and time.monotonic() < deadline:
            states = [(e["state"], e["reason"]) for e in events(server, "call_state")]
        assert ("held", "held by the far end") in states
        assert ("answered", "resumed by the far end") in states
        dialog.request("BYE")
        dialog.until(200)
    finally:
        dialog.close()


def test_tls_listener_answers_options(voicegw: Callable[..., EchoServer], tmp_path: Path) -> None:
    config, tls_port = tls_config(tmp_path)
    voicegw(config)
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with context.wrap_socket(socket.create_connection(("127.0.0.1", tls_port), timeout=5)) as sock:
        local_port = sock.getsockname()[1]
        sock.sendall(
            (
                f"OPTIONS sip:127.0.0.1:{tls_port};transport=tls SIP/2.0\r\n"
                f"Via: SIP/2.0/TLS 127.0.0.1:{local_port};branch=z9hG4bKtls1;rport\r\n"
                "From: <sip:t@127.0.0.1>;tag=1\r\nTo: <sip:x@127.0.0.1>\r\nCall-ID: tls-options-1\r\n"
                "CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
            ).encode()
        )
        assert sock.recv(4096).startswith(b"SIP/2.0 200 OK\r\n")


def test_reinvite_without_our_codec_gets_488_and_the_call_goes_on(voicegw: Callable[..., EchoServer]) -> None:
    server = voicegw()
    dialog = Dialog(server.port)
    try:
        dialog.establish()
        dialog.request("INVITE", offer_sdp(dialog.local_port + 2, "9", "a=rtpmap:9 G722/8000\r\n"))
        assert dialog.until(488).headers["cseq"].endswith("INVITE")
        dialog.ack(cseq=dialog.cseq)
        assert wait_for_event(server, "reinvite_rejected")
        dialog.request("BYE")
        assert dialog.until(200).headers["cseq"].endswith("BYE")
        assert wait_for_event(server, "call_ended")[0]["reason"] == "caller hung up"
    finally:
        dialog.close()


def _rtp_arrives(sock: socket.socket, timeout: float = 3.0) -> bool:
    sock.settimeout(timeout)
    try:
        data = sock.recv(2048)
    except TimeoutError:
        return False
    return len(data) >= 12 and data[0] >> 6 == 2


def test_reinvite_moves_our_rtp_to_the_new_address(voicegw: Callable[..., EchoServer]) -> None:
    server = voicegw()
    dialog = Dialog(server.port)
    first = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    second = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        first.bind(("127.0.0.1", 0))
        second.bind(("127.0.0.1", 0))
        dialog.establish(offer_sdp(first.getsockname()[1]))
        assert _rtp_arrives(first), "no RTP at the offered address"
        dialog.request("INVITE", offer_sdp(second.getsockname()[1]))
        dialog.until(200)
        dialog.ack()
        assert _rtp_arrives(second), "RTP did not move to the re-offered address"
        first.settimeout(0.2)
        with contextlib.suppress(TimeoutError):
            while True:
                first.recv(2048)  # drain what was in flight before the move
        assert not _rtp_arrives(first, timeout=0.5)
        dialog.request("BYE")
        dialog.until(200)
    finally:
        first.close()
        second.close()
        dialog.close()


SRTP_SUITE = "AES_CM_128_HMAC_SHA1_80"


def test_srtp_offer_is_answered_with_our_key_and_media_is_srtp_both_ways(
    voicegw: Callable[..., EchoServer],
) -> None:
    server = voicegw()
    ours = CryptoAttribute.generate(5, SRTP_SUITE)
    dialog = Dialog(server.port)
    media = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        media.bind(("127.0.0.1", 0))
        port = media.getsockname()[1]
        ok = dialog.establish(offer_sdp(port, proto="RTP/SAVP", crypto=str(ours)))
        assert "m=audio " in ok.body and " RTP/SAVP 0 101\r\n" in ok.body
        crypto = [line.split(":", 1)[1] for line in ok.body.splitlines() if line.startswith("a=crypto:")]
        assert len(crypto) == 1
        theirs = CryptoAttribute.parse(crypto[0])
        assert (theirs.tag, theirs.suite) == (5, SRTP_SUITE) and theirs.key != ours.key
        answer_port = int(ok.body.split("m=audio ", 1)[1].split()[0])

        srtp = SrtpContext(SrtpKeys(SRTP_SUITE, ours.key, theirs.key))
        tone = PCMU().encode(sine(440, 1.0, 8000, amplitude=0.5))
        for seq in range(50):
            packet = RtpPacket(payload_type=0, sequence_number=seq, timestamp=seq * 160, ssrc=0x5EC,
                               payload=tone[seq * 160 : (seq + 1) * 160])  # fmt: skip
            media.sendto(srtp.protect(packet.serialize()), ("127.0.0.1", answer_port))
            time.sleep(0.02)
        # Everything voicegw sends authenticates with the key of its answer; the tone comes back.
        media.settimeout(2.0)
        payloads = [srtp.unprotect(media.recv(2048))[12:] for _ in range(60)]
        assert any(p != b"\xff" * 160 for p in payloads), "no echo of the tone"
        dialog.request("BYE")
        dialog.until(200)
    finally:
        media.close()
        dialog.close()
    stats = wait_for_event(server, "rtp_closed")[0]
    assert stats["srtp"] == SRTP_SUITE and stats["packets_in"] >= 45 and stats["bad_packets"] == 0


@pytest.mark.parametrize(
    ("mode", "proto", "crypto", "status"),
    [
        ("off", "RTP/SAVP", f"1 {SRTP_SUITE} inline:" + "A" * 40, 488),
        ("required", "RTP/AVP", "", 488),
        ("optional", "RTP/SAVP", f"1 {SRTP_SUITE} inline:" + "A" * 40 + "|2^20|1:4", 488),
        ("optional", "RTP/SAVP", f"1 {SRTP_SUITE} inline:" + "A" * 40 + " UNENCRYPTED_SRTP", 488),
        # A suite pjsua's own SRTP does not know either: pjsua refuses it before voicegw sees it.
        ("optional", "RTP/SAVP", "1 F8_128_HMAC_SHA1_80 inline:" + "A" * 40, 406),
    ],
)
def test_srtp_offers_we_cannot_satisfy_are_refused(
    voicegw: Callable[..., EchoServer], mode: str, proto: str, crypto: str, status: int
) -> None:
    server = voicegw(f"[rtp]\nsrtp = '{mode}'\n")
    dialog = Dialog(server.port)
    try:
        dialog.invite(offer_sdp(dialog.local_port + 2, proto=proto, crypto=crypto))
        dialog.until(status)
        dialog.ack(for_error=True)
        if status == 488:
            assert wait_for_event(server, "call_rejected")[0]["status"] == 488
    finally:
        dialog.close()
