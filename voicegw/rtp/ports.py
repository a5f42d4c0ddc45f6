"""RTP/RTCP port pairs from a configured range: an even RTP port and RTCP on the next one.

One allocator per range is shared by every endpoint in the process. Each pair is drawn at
random from the free ones, so a call's port cannot be guessed from the previous call's (an
attacker aiming at calls in progress has to search the range), and a late packet of a
finished call rarely lands in a new one. A port some other process holds is skipped and
stays free for later binds; one bind gives up after `MAX_BIND_ATTEMPTS` such ports.
"""

from __future__ import annotations

import ctypes
import errno
import ipaddress
import os
import random
import socket
import struct

MAX_BIND_ATTEMPTS = 32
"""Pairs tried, each another random free one, before a bind reports the range exhausted."""


class RtpPortsExhausted(RuntimeError):
    """No RTP/RTCP port pair of the range could be bound."""


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


_AF_UNSPEC_ADDRESS = struct.pack("=H14x", socket.AF_UNSPEC)


def disconnect_udp(sock: socket.socket) -> None:
    """Undo `connect()` on a UDP socket: it receives from every source again (POSIX: connect to
    an AF_UNSPEC address, which Python's `connect` cannot express). The bound port is kept."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.connect(sock.fileno(), _AF_UNSPEC_ADDRESS, len(_AF_UNSPEC_ADDRESS)) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


class PortAllocator:
    """Hands out bound (RTP, RTCP) socket pairs from the inclusive range `low`..`high`."""

    def __init__(self, low: int, high: int, *, rng: random.Random | None = None) -> None:
        first = low + (low % 2)
        if not 0 < first < high <= 65535:
            raise ValueError(f"RTP port range {low}-{high} holds no even/odd port pair")
        self.low = low
        self.high = high
        self._rng = rng or random.SystemRandom()
        self._free: list[int] = list(range(first, high, 2))
        self._in_use: set[int] = set()

    def bind(self, host: str) -> tuple[socket.socket, socket.socket]:
        """Bind a random free pair on `host` (an IP literal); raises `RtpPortsExhausted`."""
        tries = self._rng.sample(range(len(self._free)), min(MAX_BIND_ATTEMPTS, len(self._free)))
        for index in tries:
            port = self._free[index]
            try:
                rtp = _bind_udp(host, port)
                try:
                    rtcp = _bind_udp(host, port + 1)
                except BaseException:
                    rtp.close()
                    raise
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise
                continue
            # Swap-remove: O(1), and the order of the free list carries no meaning anyway.
            self._free[index] = self._free[-1]
            self._free.pop()
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
