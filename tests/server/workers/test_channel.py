"""The control channel's asyncio shell over a real SEQPACKET socket pair."""

from __future__ import annotations

import array
import os
import random
import socket

import pytest

from voicegw.server.workers import protocol as p
from voicegw.server.workers.channel import Channel, ChannelClosed, channel_pair


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_messages_and_descriptors_cross_in_order() -> None:
    ours, theirs = channel_pair()
    left, right = Channel(ours, peer="left"), Channel(theirs, peer="right")
    try:
        rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rtp.bind(("127.0.0.1", 0))
        left.send(p.Answered(1))
        left.send(p.Answered(2), (rtp.fileno(), rtp.fileno()))
        first, second = await right.receive(), await right.receive()
        assert first == (p.Answered(1), [])
        assert second is not None and second[0] == p.Answered(2) and len(second[1]) == 2
        received = socket.socket(fileno=second[1][0])
        assert received.getsockname() == rtp.getsockname()
        received.close()
        os.close(second[1][1])
        rtp.close()
    finally:
        left.close()
        right.close()


async def test_garbage_is_dropped_with_its_descriptors_and_the_channel_goes_on() -> None:
    ours, theirs = channel_pair()
    channel = Channel(ours, peer="worker")
    rng = random.Random(7)
    before = _open_fds()
    try:
        spare = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        fds = array.array("i", [spare.fileno()])
        theirs.sendmsg([b"not json"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
        theirs.send(b'{"type": "ready", "key": -1}')
        for _ in range(300):  # bounded: random datagrams of every size class
            theirs.send(bytes(rng.getrandbits(8) for _ in range(rng.choice((1, 7, 64, 900)))))
        theirs.send(p.encode(p.Ready(5)))
        assert await channel.receive() == (p.Ready(5), [])
        assert channel.garbage == 302
        spare.close()
        assert _open_fds() == before + 0  # the descriptor that came with garbage was closed
    finally:
        channel.close()
        theirs.close()


async def test_the_peer_closing_ends_receive_and_sending_then_fails() -> None:
    ours, theirs = channel_pair()
    channel = Channel(ours, peer="worker")
    theirs.close()
    assert await channel.receive() is None
    assert await channel.receive() is None
    with pytest.raises(ChannelClosed):
        channel.send(p.Stop())
    channel.close()


async def test_a_full_socket_queues_in_order_until_the_peer_reads() -> None:
    ours, theirs = channel_pair()
    sender, receiver = Channel(ours, peer="a"), Channel(theirs, peer="b")
    text = "x" * 100_000
    try:
        for _ in range(20):  # more than the socket buffers hold
            sender.send(p.MetricsSnapshot(text))
        sender.send(p.Stop())
        for _ in range(20):
            received = await receiver.receive()
            assert received is not None and received[0] == p.MetricsSnapshot(text)
        assert await receiver.receive() == (p.Stop(), [])
    finally:
        sender.close()
        receiver.close()
