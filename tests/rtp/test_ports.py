import socket

import pytest

from tests.rtp.helpers import free_range
from voicegw.rtp.ports import PortAllocator, RtpPortsExhausted, allocator_for


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
        allocator = PortAllocator(low, high)
        rtp, rtcp = allocator.bind("127.0.0.1")
        assert rtp.getsockname()[1] == low + 2
        rtp.close()
        rtcp.close()
    finally:
        squatter.close()


def test_bad_range() -> None:
    with pytest.raises(ValueError, match="RTP port range 5000-5000 holds no even/odd port pair"):
        PortAllocator(5000, 5000)


def test_one_allocator_per_range() -> None:
    port_range = free_range(4)
    assert allocator_for(port_range) is allocator_for(port_range)
