"""INVITEs that used to abort `voicegw serve` inside pjsip, and INVITEs past pjsip's old 4,000-byte limit.

The crash: an INVITE whose body pjsua never saw (no blank line after the headers, a datagram cut
at 4,000 bytes, a delayed offer) was refused by voicegw from inside pjsua2's onIncomingCall; pjsua
sent the final response at once, reset the call and freed its copy of the request, and pjsua2 then
freed it again: `pjsip_rx_data_free_cloned: Assertion 'rdata' failed`, SIGABRT, every call gone.
Each case must get a final response while the server stays up and takes a normal call after: a
4xx for a broken message; a delayed offer is a valid INVITE, now answered 200 with our offer
(tests/sip/test_late_offer.py), and still reaches the refusal path when voicegw refuses a call.
"""

from __future__ import annotations

import re
import socket
import uuid
from collections.abc import Callable

import pytest

from voicegw.testing.harness import HOST, EchoServer, options_ping
from voicegw.testing.raw_sip import Dialog, Response, offer_sdp, parse_response

pytestmark = pytest.mark.timeout(60)

RTP_PORTS = "[rtp]\nports = '46100-46200'\n"
TCP_TIMEOUT_S = 5.0
RECORD_ROUTES = 500


def invite(port: int, local_port: int, transport: str, *, extra: str = "", body: str | None = None) -> str:
    """An INVITE's header block, up to and including the last header's CRLF (no blank line)."""
    tag = uuid.uuid4().hex[:10]
    body = offer_sdp(local_port + 2) if body is None else body
    return (
        f"INVITE sip:echo@{HOST}:{port};transport={transport.lower()} SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} {HOST}:{local_port};branch=z9hG4bK{tag};rport\r\n{extra}"
        f"From: <sip:h@{HOST}>;tag={tag}\r\nTo: <sip:echo@{HOST}>\r\nCall-ID: {tag}@{HOST}\r\n"
        f"CSeq: 1 INVITE\r\nContact: <sip:h@{HOST}:{local_port};transport={transport.lower()}>\r\n"
        f"Max-Forwards: 70\r\nContent-Type: application/sdp\r\nContent-Length: {len(body)}\r\n"
    )


def hostile_invites(port: int, local_port: int, transport: str) -> dict[str, tuple[bytes, int]]:
    """The messages that crashed voicegw, rebuilt, with the final status class each now gets.

    Before pjsip's packet limit was raised, the long ones lost their body (cut at 4,000 bytes);
    now they are whole, valid INVITEs, answered 200.
    """
    sdp = offer_sdp(local_port + 2)
    head = invite(port, local_port, transport)
    vias = "".join(f"Via: SIP/2.0/{transport} 192.0.2.{n}:5060;branch=z9hG4bKv{n}\r\n" for n in range(69))
    long = invite(port, local_port, transport, extra=f"X-Long: {'a' * 4000}\r\n")
    messages = {
        "delayed offer": (invite(port, local_port, transport, body="") + "\r\n", 2),
        "long header": (long + "\r\n" + sdp, 2),
        "70 Via headers": (invite(port, local_port, transport, extra=vias) + "\r\n" + sdp, 2),
    }
    if transport == "UDP":
        # Over TCP these are a message still arriving, not one to answer.
        messages["no blank line"] = (head, 4)
        messages["blank line, body missing"] = (head + "\r\n", 4)
        messages["a lone CRLF"] = (head.removesuffix("\r\n") + "\n", 4)
    return {name: (text.encode(), expected) for name, (text, expected) in messages.items()}


def final_status_udp(sock: socket.socket) -> int:
    while True:
        data, _ = sock.recvfrom(65535)
        response = parse_response(data)
        if response is not None and response.status >= 200:
            return response.status


def datagram_with_status(sock: socket.socket, status: int) -> tuple[bytes, Response]:
    """The next response with `status`, as it arrived and parsed."""
    while True:
        data, _ = sock.recvfrom(65535)
        response = parse_response(data)
        if response is not None and response.status == status:
            return data, response


def final_status_tcp(sock: socket.socket) -> int:
    buffer = b""
    while True:
        chunk = sock.recv(65535)
        assert chunk, "the server closed the connection without a final response"
        buffer += chunk
        while b"\r\n\r\n" in buffer:
            head, _, buffer = buffer.partition(b"\r\n\r\n")
            response = parse_response(head + b"\r\n\r\n")
            if response is not None and response.status >= 200:
                return response.status
            buffer = buffer[int(response.headers.get("content-length", "0")) if response else 0 :]


def call_and_hang_up(server: EchoServer, extra: str = "") -> str:
    """A call from a raw UDP dialog (`extra` headers on its INVITE), hung up; the answer's SDP."""
    dialog = Dialog(server.port)
    try:
        dialog.invite(offer_sdp(dialog.local_port + 2), extra)
        ok = dialog.until(200)
        dialog.ack()
        dialog.request("BYE")
        assert dialog.until(200).headers["cseq"].endswith("BYE")
    finally:
        dialog.close()
    return ok.body


def test_invites_that_crashed_pjsua2_over_udp_are_answered_and_the_server_stays_up(
    voicegw: Callable[..., EchoServer],
) -> None:
    server = voicegw(RTP_PORTS)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, 0))
        sock.settimeout(TCP_TIMEOUT_S)
        for name, (message, expected) in hostile_invites(server.port, sock.getsockname()[1], "UDP").items():
            sock.sendto(message, (HOST, server.port))
            status = final_status_udp(sock)
            assert status // 100 == expected, f"{name}: {status}"
            assert server.proc.poll() is None, f"{name} killed the server:\n{server.output()}"
            assert options_ping(server.port, 2.0) == 200, name
    call_and_hang_up(server)


def test_invites_that_crashed_pjsua2_over_tcp_are_answered_and_the_server_stays_up(
    voicegw: Callable[..., EchoServer],
) -> None:
    server = voicegw(RTP_PORTS)
    for name, (message, expected) in hostile_invites(server.port, 5999, "TCP").items():
        with socket.create_connection((HOST, server.port), timeout=TCP_TIMEOUT_S) as sock:
            sock.sendall(message)
            status = final_status_tcp(sock)
        assert status // 100 == expected, f"{name}: {status}"
        assert server.proc.poll() is None, f"{name} killed the server:\n{server.output()}"
    assert options_ping(server.port, 2.0) == 200
    call_and_hang_up(server)


def test_a_25_kb_invite_over_udp_is_parsed_whole_and_answered(voicegw: Callable[..., EchoServer]) -> None:
    server = voicegw(RTP_PORTS)
    assert "m=audio 461" in call_and_hang_up(server, f"X-Pad: {'p' * 25_000}\r\n")


def test_a_60_kb_invite_over_tcp_is_parsed_whole_and_answered(voicegw: Callable[..., EchoServer]) -> None:
    server = voicegw(RTP_PORTS)
    with socket.create_connection((HOST, server.port), timeout=TCP_TIMEOUT_S) as sock:
        local_port = sock.getsockname()[1]
        pad = f"X-Pad: {'p' * 60_000}\r\n"
        message = invite(server.port, local_port, "TCP", extra=pad) + "\r\n" + offer_sdp(local_port + 2)
        assert len(message) > 60_000
        sock.sendall(message.encode())
        assert final_status_tcp(sock) == 200


def test_a_response_longer_than_the_first_send_buffer_goes_out_whole(
    voicegw: Callable[..., EchoServer],
) -> None:
    """pjsip prints an outgoing message into a buffer of one pool increment (3,872 bytes) and one
    that overflows it into a new PJSIP_MAX_PKT_LEN one (scripts/build_pjsua2.sh): a 200 OK that
    copies 20 KB of Record-Route must still leave whole, its SDP last."""
    server = voicegw(RTP_PORTS)
    dialog = Dialog(server.port)
    try:
        routes = [f"<sip:{HOST}:{dialog.local_port};lr;hop={n:03d}>" for n in range(RECORD_ROUTES)]
        dialog.invite(offer_sdp(dialog.local_port + 2), "".join(f"Record-Route: {r}\r\n" for r in routes))
        data, response = datagram_with_status(dialog.sock, 200)
        assert len(data) > 20_000
        head, _, body = data.decode().partition("\r\n\r\n")
        assert re.findall(r"^Record-Route: (.*)\r$", head, re.MULTILINE) == routes
        assert body.startswith("v=0") and "m=audio 461" in body
        assert len(body.encode()) == int(response.headers["content-length"])
        dialog.to_header = response.headers["to"]
        dialog.ack()
        dialog.request("BYE")
        assert dialog.until(200).headers["cseq"].endswith("BYE")
    finally:
        dialog.close()


def test_a_refused_source_sending_them_gets_403_and_the_server_stays_up(
    voicegw: Callable[..., EchoServer],
) -> None:
    server = voicegw(RTP_PORTS + "[access]\nallow = ['192.0.2.0/24']\n")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, 0))
        sock.settimeout(TCP_TIMEOUT_S)
        for name, (message, _) in hostile_invites(server.port, sock.getsockname()[1], "UDP").items():
            sock.sendto(message, (HOST, server.port))
            assert final_status_udp(sock) == 403, name
            assert server.proc.poll() is None, f"{name} killed the server:\n{server.output()}"
    assert options_ping(server.port, 2.0) is not None
