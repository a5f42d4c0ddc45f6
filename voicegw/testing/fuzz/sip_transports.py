"""The fuzzer's ways to a SIP server: one UDP socket, a few TCP or TLS connections.

Senders never block for long: a server that stops reading a connection gets it closed and a
new one opened. What comes back is only counted (status codes of responses, requests the
server sends), never interpreted.
"""

from __future__ import annotations

import contextlib
import re
import socket
import ssl
from collections import Counter
from dataclasses import dataclass, field

HOST = "127.0.0.1"
STATUS = re.compile(rb"^SIP/2\.0 (\d{3}) ", re.M)
REQUEST = re.compile(rb"^([A-Z]+) \S+ SIP/2\.0\r?$", re.M)
SEND_TIMEOUT = 0.5
TCP_CONNECTIONS = 4
STREAM_TAIL = 64  # bytes kept between reads, so that a start line cut by a read is still counted


@dataclass
class Traffic:
    """What the server sent back: responses by status code, requests by method, connections lost."""

    responses: Counter[int] = field(default_factory=Counter)
    requests: Counter[str] = field(default_factory=Counter)
    connections_closed: int = 0

    def count(self, data: bytes, seen: int = 0) -> None:
        """Count the start lines in `data` that end past its first `seen` bytes (counted before)."""
        self.responses.update(int(m.group(1)) for m in STATUS.finditer(data) if m.end() > seen)
        self.requests.update(m.group(1).decode() for m in REQUEST.finditer(data) if m.end() > seen)


class UdpSender:
    """One UDP socket: each message is one datagram."""

    transport = "UDP"

    def __init__(self, server: tuple[str, int], traffic: Traffic, port: int = 0) -> None:
        self.server = server
        self.traffic = traffic
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        try:
            self.sock.bind((HOST, port))
        except OSError:
            self.sock.bind((HOST, 0))
        self.sock.setblocking(False)
        self.port: int = self.sock.getsockname()[1]

    def send(self, data: bytes, choice: int = 0) -> None:
        # A full buffer, or the ICMP error of an earlier datagram: the next one goes on.
        with contextlib.suppress(BlockingIOError, ConnectionRefusedError):
            self.sock.sendto(data, self.server)

    def drain(self) -> None:
        while True:
            try:
                self.traffic.count(self.sock.recv(65536))
            except (BlockingIOError, ConnectionRefusedError):
                return

    def close(self) -> None:
        self.sock.close()


class StreamSender:
    """A few connections over TCP (or TLS with `tls`): messages are written back to back."""

    def __init__(self, server: tuple[str, int], traffic: Traffic, *, tls: bool = False) -> None:
        self.server = server
        self.traffic = traffic
        self.transport = "TLS" if tls else "TCP"
        self._context: ssl.SSLContext | None = None
        if tls:
            # The server's certificate is a throw-away one: its identity is not what is tested.
            self._context = ssl.create_default_context()
            self._context.check_hostname = False
            self._context.verify_mode = ssl.CERT_NONE
        self._connections: list[socket.socket | None] = [None] * TCP_CONNECTIONS
        self._tails: list[bytes] = [b""] * TCP_CONNECTIONS

    def _connection(self, index: int) -> socket.socket:
        sock = self._connections[index]
        if sock is None:
            raw = socket.create_connection(self.server, timeout=SEND_TIMEOUT)
            sock = self._context.wrap_socket(raw) if self._context else raw
            sock.settimeout(SEND_TIMEOUT)
            self._connections[index] = sock
        return sock

    def _drop(self, index: int) -> None:
        sock = self._connections[index]
        if sock is not None:
            sock.close()
            self._connections[index] = None
            self._tails[index] = b""
            self.traffic.connections_closed += 1

    def send(self, data: bytes, choice: int = 0) -> None:
        index = choice % TCP_CONNECTIONS
        try:
            self._connection(index).sendall(data)
        except (OSError, ssl.SSLError):
            self._drop(index)  # closed by the server, or it stopped reading: a new one next time

    @staticmethod
    def _read(sock: socket.socket) -> bytes | None:
        """What the server sent on `sock` so far (None: nothing yet; empty: the connection is gone)."""
        sock.setblocking(False)
        try:
            return sock.recv(65536)
        except (BlockingIOError, ssl.SSLWantReadError):
            return None
        except (OSError, ssl.SSLError):
            return b""
        finally:
            sock.settimeout(SEND_TIMEOUT)

    def drain(self) -> None:
        for index, sock in enumerate(self._connections):
            while sock is not None and (data := self._read(sock)) is not None:
                if not data:
                    self._drop(index)
                    break
                tail = self._tails[index]
                self.traffic.count(tail + data, seen=len(tail))
                self._tails[index] = data[-STREAM_TAIL:]

    def close(self) -> None:
        for index in range(TCP_CONNECTIONS):
            if self._connections[index] is not None:
                self._connections[index].close()  # type: ignore[union-attr]
                self._connections[index] = None
