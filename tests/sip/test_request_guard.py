"""The native request guard: `SipUserAgent(guard=...)` in this process, raw requests from sockets.

A refused request is answered statelessly, before pjsip's transaction layer: no transaction, no
dialog, no call; what passes goes on to pjsua as before.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import structlog

from voicegw.rtp.clock import MediaClock
from voicegw.sip.call import SipCall
from voicegw.sip.guard import IncomingRequest, Refusal, RequestGuard
from voicegw.sip.ua import SipConfig, SipUserAgent
from voicegw.testing.harness import HOST, free_tcp_port, free_udp_port, self_signed_certificate
from voicegw.testing.raw_sip import Dialog, offer_sdp, parse_response

pytestmark = pytest.mark.timeout(40)

RTP_PORTS = (46300, 46400)
REPLY_TIMEOUT_S = 5.0


class Recorder:
    """A guard that records what it saw and answers with `decide`."""

    def __init__(self, decide: Callable[[IncomingRequest], Refusal | None]) -> None:
        self.decide = decide
        self.seen: list[IncomingRequest] = []
        self.times: list[float] = []

    def __call__(self, request: IncomingRequest, now: float) -> Refusal | None:
        self.seen.append(request)
        self.times.append(now)
        return self.decide(request)


StartUa = Callable[..., Awaitable[SipUserAgent]]


async def until_hung_up(call: SipCall) -> None:
    await call.wait_ended()


@pytest.fixture
async def start_ua() -> AsyncIterator[StartUa]:
    clock = MediaClock()
    await clock.start()
    agents: list[SipUserAgent] = []

    async def start(guard: RequestGuard | None, **settings: Any) -> SipUserAgent:
        config = SipConfig(host=HOST, port=free_udp_port(), rtp_ports=RTP_PORTS, **settings)
        ua = SipUserAgent(config, clock, until_hung_up, guard=guard)
        await ua.start()
        agents.append(ua)
        return ua

    yield start
    for ua in agents:
        await ua.stop()
    await clock.stop()


def options(port: int, local_port: int, transport: str = "UDP") -> bytes:
    tag = uuid.uuid4().hex[:10]
    return (
        f"OPTIONS sip:echo@{HOST}:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} {HOST}:{local_port};branch=z9hG4bK{tag};rport\r\n"
        f"From: <sip:g@{HOST}>;tag={tag}\r\nTo: <sip:echo@{HOST}>\r\nCall-ID: {tag}\r\n"
        f"CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    ).encode()


async def ask_udp(port: int, message: Callable[[int], bytes]) -> tuple[bytes, int, bytes]:
    """Send one request over UDP; (request, our port, first response)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, 0))
        sock.settimeout(REPLY_TIMEOUT_S)
        local_port = sock.getsockname()[1]
        request = message(local_port)
        sock.sendto(request, (HOST, port))
        data, _ = await asyncio.to_thread(sock.recvfrom, 65535)
    return request, local_port, data


async def test_a_refused_options_gets_the_guards_status_and_headers(start_ua: StartUa) -> None:
    guard = Recorder(lambda r: Refusal(403, "Not Here", (("Retry-After", "30"), ("Allow", "INVITE, BYE"))))
    ua = await start_ua(guard)

    request, local_port, data = await ask_udp(ua.port, lambda p: options(ua.port, p))

    response = parse_response(data)
    assert response is not None and (response.status, response.reason) == (403, "Not Here")
    assert response.headers["retry-after"] == "30" and response.headers["allow"] == "INVITE, BYE"
    assert response.headers["cseq"] == "1 OPTIONS" and "tag=" in response.headers["to"]
    assert guard.seen == [IncomingRequest("OPTIONS", (HOST, local_port), "udp", False, request)]
    assert guard.times[0] <= asyncio.get_running_loop().time()


async def test_a_refused_invite_creates_no_call(start_ua: StartUa) -> None:
    busy = Refusal(503, "Busy Here", (("Retry-After", "5"),))
    guard = Recorder(lambda r: busy if r.method == "INVITE" else None)
    ua = await start_ua(guard)
    dialog = Dialog(ua.port)
    try:
        dialog.invite(offer_sdp(dialog.local_port + 2))
        # No 100 Trying: the transaction layer never saw it.
        response = await asyncio.to_thread(dialog.receive)
        assert (response.status, response.headers["retry-after"]) == (503, "5")
        dialog.ack(for_error=True)
        await asyncio.sleep(0.2)
        assert ua.calls == {} and ua.active_calls == 0
        assert [r.method for r in guard.seen] == ["INVITE"]  # the ACK is never shown
    finally:
        dialog.close()


async def test_requests_that_pass_reach_pjsua_and_in_dialog_ones_say_so(start_ua: StartUa) -> None:
    guard = Recorder(lambda r: None)
    ua = await start_ua(guard)
    dialog = Dialog(ua.port)
    try:
        await asyncio.to_thread(dialog.establish)
        assert ua.active_calls == 1
        dialog.request("BYE")
        assert (await asyncio.to_thread(dialog.until, 200)).headers["cseq"].endswith("BYE")
    finally:
        dialog.close()
    assert [(r.method, r.in_dialog) for r in guard.seen] == [("INVITE", False), ("BYE", True)]


async def test_a_failing_guard_answers_500_and_logs_the_source(start_ua: StartUa) -> None:
    def broken(request: IncomingRequest, now: float) -> Refusal | None:
        raise RuntimeError("policy bug")

    ua = await start_ua(broken)
    with structlog.testing.capture_logs() as logs:
        _, local_port, data = await ask_udp(ua.port, lambda p: options(ua.port, p))
    response = parse_response(data)
    assert response is not None and response.status == 500
    failed = [entry for entry in logs if entry["event"] == "sip_guard_failed"]
    assert failed and failed[0]["source"] == f"{HOST}:{local_port}"


async def test_a_refusal_that_cannot_go_on_the_wire_answers_500(start_ua: StartUa) -> None:
    ua = await start_ua(lambda r, now: Refusal(403, "Forbidden", (("X-Evil", "a\r\nVia: injected"),)))
    _, _, data = await ask_udp(ua.port, lambda p: options(ua.port, p))
    response = parse_response(data)
    assert response is not None and response.status == 500 and "x-evil" not in response.headers


async def test_the_guard_sees_tcp_and_tls_requests(start_ua: StartUa, tmp_path: Path) -> None:
    guard = Recorder(lambda r: Refusal(403, "Forbidden"))
    cert, key = self_signed_certificate(tmp_path)
    tls_port = free_tcp_port()
    ua = await start_ua(guard, tls_port=tls_port, tls_cert=str(cert), tls_key=str(key))
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE

    def exchange(port: int, transport: str) -> bytes:
        with socket.create_connection((HOST, port), timeout=REPLY_TIMEOUT_S) as raw:
            sock = context.wrap_socket(raw) if transport == "TLS" else raw
            sock.sendall(options(port, sock.getsockname()[1], transport))
            return sock.recv(65535)

    for port, transport in ((ua.port, "TCP"), (tls_port, "TLS")):
        response = parse_response(await asyncio.to_thread(exchange, port, transport))
        assert response is not None and response.status == 403, transport
    assert [(r.method, r.transport) for r in guard.seen] == [("OPTIONS", "tcp"), ("OPTIONS", "tls")]


async def test_without_a_guard_every_request_passes(start_ua: StartUa) -> None:
    ua = await start_ua(None)
    _, _, data = await ask_udp(ua.port, lambda p: options(ua.port, p))
    response = parse_response(data)
    assert response is not None and response.status == 200
