"""RTP/RTCP port pairs from a configured range: an even RTP port and RTCP on the next one.

One allocator per range is shared by every endpoint in the process. Free ports wait in a
queue and freed ports go to its back, so a port is reused only after the others: a late
packet of a finished call rarely lands in a new one. A port some other process holds is
skipped and retried later.
"""

from __future__ import annotations

import ipaddress
import socket
from collections import deque


class RtpPortsExhausted(RuntimeError):
    """Every RTP/RTCP port pair of the range is in use."""


def _bind_udp(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


class PortAllocator:
    """Hands out bound (RTP, RTCP) socket pairs from the inclusive range `low`..`high`."""

    def __init__(self, low: int, high: int) -> None:
        first = low + (low % 2)
        if not 0 < first < high <= 65535:
            raise ValueError(f"RTP port range {low}-{high} holds no even/odd port pair")
        self.low = low
        self.high = high
        self._free: deque[int] = deque(range(first, high, 2))
        self._in_use: set[int] = set()

    def bind(self, host: str) -> tuple[socket.socket, socket.socket]:
        """Bind the next free pair on `host` (an IP literal); raises `RtpPortsExhausted`."""
        for _ in range(len(self._free)):
            port = self._free.popleft()
            try:
                rtp = _bind_udp(host, port)
            except OSError:
                self._free.append(port)
                continue
            try:
                rtcp = _bind_udp(host, port + 1)
            except OSError:
                rtp.close()
                self._free.append(port)
                continue
            self._in_use.add(port)
            return rtp, rtcp
        raise RtpPortsExhausted(
            f"no free RTP port pair in {self.low}-{self.high} on {host} ({len(self._in_use)} in use)"
        )

    def release(self, port: int) -> None:
        """Give a pair back (after its sockets are closed); releasing twice is harmless."""
        if port in self._in_use:
            self._in_use.remove(port)
            self._free.append(port)

    @property
    def in_use(self) -> int:
        return len(self._in_use)


_allocators: dict[tuple[int, int], PortAllocator] = {}


def allocator_for(port_range: tuple[int, int]) -> PortAllocator:
    """The process-wide allocator of a range (created on first use)."""
    allocator = _allocators.get(port_range)
    if allocator is None:
        allocator = _allocators[port_range] = PortAllocator(*port_range)
    return allocator
