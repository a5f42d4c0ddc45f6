"""voicegw behind a proxy: the 200 OK copies the INVITE's Record-Route headers, and voicegw's own
in-dialog requests (the BYE of a media timeout) follow that route set (RFC 3261 12.1.1, 16.12)."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import pytest

from voicegw.testing.harness import EchoServer
from voicegw.testing.raw_sip import HOST, Dialog, offer_sdp

pytestmark = pytest.mark.timeout(60)
FAR_PROXY = "<sip:192.0.2.1;lr>"  # TEST-NET: never contacted, only carried in the route set


def header_values(message: str, name: str) -> list[str]:
    """Every value of header `name` in order, whether on separate lines or comma-joined."""
    head = message.split("\r\n\r\n", 1)[0]
    values = []
    for line in head.split("\r\n")[1:]:
        key, _, value = line.partition(":")
        if key.strip().lower() == name:
            values += [part.strip() for part in value.split(",")]
    return values


def receive_until(sock: socket.socket, predicate: Callable[[str], bool], timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            data, _ = sock.recvfrom(65535)
        except TimeoutError:
            break
        text = data.decode(errors="replace")
        if predicate(text):
            return text
    raise AssertionError("nothing matching arrived in time")


def test_ok_copies_record_route_and_our_bye_follows_the_route_set(
    voicegw: Callable[..., EchoServer],
) -> None:
    server = voicegw("[rtp]\nmedia_timeout = 1\n")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as proxy:
        proxy.bind((HOST, 0))
        near_proxy = f"<sip:{HOST}:{proxy.getsockname()[1]};lr>"
        dialog = Dialog(server.port)
        try:
            # As a proxy chain would have it: the proxy nearest to voicegw is the topmost entry.
            dialog.invite(
                offer_sdp(dialog.local_port + 2),
                extra=f"Record-Route: {near_proxy}\r\nRecord-Route: {FAR_PROXY}\r\n",
            )
            ok = receive_until(dialog.sock, lambda text: text.startswith("SIP/2.0 200"), 10.0)
            assert header_values(ok, "record-route") == [near_proxy, FAR_PROXY], ok
            dialog.to_header = header_values(ok, "to")[0]
            dialog.ack()
            # No RTP is sent: the media timeout makes voicegw hang up, through the proxy.
            bye = receive_until(proxy, lambda text: text.startswith("BYE "), 15.0)
            assert bye.split("\r\n", 1)[0] == f"BYE sip:tester@{HOST}:{dialog.local_port} SIP/2.0", bye
            assert header_values(bye, "route") == [near_proxy, FAR_PROXY], bye
            assert header_values(bye, "call-id") == [dialog.call_id]
            # Answer it as the proxy would relay the caller's 200.
            request_head = bye.split("\r\n\r\n", 1)[0].split("\r\n")
            copied = [
                line
                for line in request_head[1:]
                if line.split(":", 1)[0].lower() in ("via", "from", "to", "call-id", "cseq")
            ]
            reply = "SIP/2.0 200 OK\r\n" + "\r\n".join(copied) + "\r\nContent-Length: 0\r\n\r\n"
            via = header_values(bye, "via")[0]
            sent_by = via.split()[1].split(";")[0]
            host, _, port = sent_by.partition(":")
            proxy.sendto(reply.encode(), (host, int(port or 5060)))
            # Nothing of that BYE went to the caller directly.
            dialog.sock.settimeout(0.5)
            with pytest.raises(TimeoutError):
                while True:
                    data, _ = dialog.sock.recvfrom(65535)
                    assert not data.startswith(b"BYE "), data
        finally:
            dialog.close()
    ended = [e for e in server.log_events() if e.get("event") == "call_ended"]
    assert [e["reason"] for e in ended] == ["media timeout"], server.output()
