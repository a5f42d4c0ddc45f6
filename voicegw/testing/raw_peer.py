"""A SIP peer on a raw UDP socket that sends requests outside any dialog, in bulk if asked, and
collects what comes back; and the resident memory of a server process. For floods of requests a
server must refuse (tests/sip/test_access_methods.py, scripts/flood_refused.py)."""

from __future__ import annotations

import socket
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from voicegw.testing.raw_sip import HOST, Response, offer_sdp, parse_response

QUIET_S = 2.0
"""How long a socket must stay silent: longer than pjsip's first retransmissions (0.5, 1 s)."""
SUBSCRIBE = "Event: presence\r\nExpires: 3600\r\nAccept: application/pidf+xml\r\n"
MESSAGE = "Content-Type: text/plain\r\n"


class Peer:
    """A UDP socket on 127.0.0.1 sending requests to one server."""

    def __init__(self, server_port: int) -> None:
        self.server_port = server_port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 0))
        self.port: int = self.sock.getsockname()[1]

    def send(
        self, method: str, *, contact_port: int | None = None, extra: str = "", to_tag: str = ""
    ) -> None:
        """One request with a fresh Call-ID and branch; its Contact names `contact_port`. An INVITE
        carries an audio offer, as a real one would."""
        branch = "z9hG4bK" + uuid.uuid4().hex[:12]
        contact = f"<sip:victim@{HOST}:{contact_port or self.port}>"
        to = f"<sip:echo@{HOST}:{self.server_port}>" + (f";tag={to_tag}" if to_tag else "")
        message = (
            f"{method} sip:echo@{HOST}:{self.server_port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {HOST}:{self.port};branch={branch};rport\r\n"
            f"From: <sip:tester@{HOST}>;tag={uuid.uuid4().hex[:8]}\r\nTo: {to}\r\n"
            f"Call-ID: {uuid.uuid4().hex}\r\nCSeq: 1 {method}\r\nContact: {contact}\r\n"
            f"Max-Forwards: 70\r\n{extra}"
        )
        body = offer_sdp(self.port + 2) if method == "INVITE" else ""
        if body:
            message += "Content-Type: application/sdp\r\n"
        message += f"Content-Length: {len(body)}\r\n\r\n{body}"
        self.sock.sendto(message.encode(), (HOST, self.server_port))

    def collect(self, quiet: float = QUIET_S) -> list[bytes]:
        """Every datagram until none has come for `quiet` seconds."""
        self.sock.settimeout(quiet)
        received = []
        while True:
            try:
                received.append(self.sock.recvfrom(65535)[0])
            except TimeoutError:
                return received

    def responses(self, count: int, timeout: float = 5.0) -> list[Response]:
        """The next `count` responses; fewer if none comes for `timeout` seconds. A request from
        the server is an error."""
        self.sock.settimeout(timeout)
        found = []
        for _ in range(count):
            try:
                data = self.sock.recvfrom(65535)[0]
            except TimeoutError:
                break
            response = parse_response(data)
            assert response is not None, f"the server sent a request: {data[:80]!r}"
            found.append(response)
        return found

    def flood(self, method: str, count: int, *, batch: int = 50, **send: Any) -> Counter[int]:
        """`count` requests (`send`'s keywords), `batch` at a time (each batch's answers awaited):
        their statuses counted."""
        statuses: Counter[int] = Counter()
        for start in range(0, count, batch):
            size = min(batch, count - start)
            for _ in range(size):
                self.send(method, **send)
            statuses.update(response.status for response in self.responses(size))
        return statuses

    def close(self) -> None:
        self.sock.close()


def rss_kb(pid: int) -> int:
    """Resident memory of process `pid`, in kB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise ValueError(f"process {pid} has no VmRSS")
