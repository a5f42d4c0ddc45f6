import contextlib
import random
import socket

import pytest

from tests.rtp.helpers import free_range
from voicegw.rtp.ports import (
    MAX_BIND_ATTEMPTS,
    PortAllocator,
    RtpPortsExhausted,
    allocator_for,
    disconnect_udp,
)


def test_even_rtp_port_and_rtcp_next() -> None:
    allocator = PortAllocator(*free_range(3))
    rtp, rtcp = allocator.bind("127.0.0.1")
    try:
        port = rtp.getsockname()[1]
        assert port % 2 == 0 and rtcp.getsockname()[1] == port + 1
        assert allocator.low <= port < allocator.high and allocator.in_use == 1
    finally:
        rtp.close()
        rtcp.close()


def test_exhaustion_and_reuse_of_freed_ports() -> None:
    low, high = free_range(2)
    allocator = PortAllocator(low, high)
    socks = [allocator.bind("127.0.0.1") for _ in range(2)]
    ports = [s[0].getsockname()[1] for s in socks]
    with pytest.raises(
        RtpPortsExhausted, match=rf"no free RTP port pair in {low}-{high} on 127.0.0.1 \(2 in use\)"
    ):
        allocator.bind("127.0.0.1")
    for s in socks[0]:
        s.close()
    allocator.release(ports[0])
    allocator.release(ports[0])  # twice: harmless
    rtp, rtcp = allocator.bind("127.0.0.1")
    assert rtp.getsockname()[1] == ports[0]
    for s in (rtp, rtcp, *socks[1]):
        s.close()


def test_port_held_by_another_process_is_skipped() -> None:
    low, high = free_range(2)
    squatter = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    squatter.bind(("127.0.0.1", low + 1))  # someone else holds the first pair's RTCP port
    try:
        for seed in range(10):  # whichever pair the draw tries first
            allocator = PortAllocator(low, high, rng=random.Random(seed))
            rtp, rtcp = allocator.bind("127.0.0.1")
            assert rtp.getsockname()[1] == low + 2
            rtp.close()
            rtcp.close()
    finally:
        squatter.close()


def test_ports_are_drawn_at_random_from_the_range() -> None:
    low, high = free_range(200)
    allocator = PortAllocator(low, high)
    pairs = [allocator.bind("127.0.0.1") for _ in range(20)]
    try:
        ports = [rtp.getsockname()[1] for rtp, _ in pairs]
    finally:
        for rtp, rtcp in pairs:
            rtp.close()
            rtcp.close()
    assert all(port % 2 == 0 and low <= port < high for port in ports) and len(set(ports)) == 20
    # In order they would be low, low+2, ...: 20 draws from 200 pairs do not come out sorted
    # (chance 1/20!), nor all from the bottom tenth of the range (chance below 1e-20).
    assert ports != sorted(ports)
    assert max(ports) > low + 40


def test_a_range_held_by_others_fails_after_bounded_tries() -> None:
    low, high = free_range(MAX_BIND_ATTEMPTS + 8)
    squatters = []
    try:
        for port in range(low, high, 2):
            with contextlib.suppress(OSError):  # already busy: held by someone all the same
                squatter = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                squatters.append(squatter)
                squatter.bind(("127.0.0.1", port))
        allocator = PortAllocator(low, high)
        with pytest.raises(RtpPortsExhausted, match=r"\(0 in use\)"):
            allocator.bind("127.0.0.1")
    finally:
        for squatter in squatters:
            squatter.close()


def test_bad_range() -> None:
    with pytest.raises(ValueError, match="RTP port range 5000-5000 holds no even/odd port pair"):
        PortAllocator(5000, 5000)


def test_one_allocator_per_range() -> None:
    port_range = free_range(4)
    assert allocator_for(port_range) is allocator_for(port_range)


def test_a_connected_socket_hears_its_peer_alone_until_disconnected() -> None:
    allocator = PortAllocator(*free_range(4))
    rtp, rtcp = allocator.bind("127.0.0.1")
    peer, stranger = (socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2))
    try:
        for sock in (peer, stranger):
            sock.bind(("127.0.0.1", 0))
        rtp.settimeout(0.5)
        rtp.connect(peer.getsockname())
        stranger.sendto(b"dropped by the kernel", rtp.getsockname())
        peer.sendto(b"heard", rtp.getsockname())
        assert rtp.recvfrom(100) == (b"heard", peer.getsockname())
        port = rtp.getsockname()[1]
        disconnect_udp(rtp)
        assert rtp.getsockname()[1] == port  # the bound port stays ours
        stranger.sendto(b"heard again", rtp.getsockname())
        assert rtp.recvfrom(100) == (b"heard again", stranger.getsockname())
    finally:
        for sock in (rtp, rtcp, peer, stranger):
            sock.close()
