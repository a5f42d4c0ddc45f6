"""The asyncio shell of the control protocol: one AF_UNIX SOCK_SEQPACKET socket, messages and fds.

Reading is a loop reader callback that drains every waiting datagram into a queue; writing goes
straight to the socket, and what the socket cannot take yet waits in order for it to drain. A
datagram that does not decode is logged and dropped (its file descriptors closed): the peer's
bad message never reaches the code that handles messages.
"""

from __future__ import annotations

import array
import asyncio
import collections
import os
import socket
from collections.abc import Sequence

import structlog

from voicegw.server.workers.protocol import MAX_MESSAGE, Message, ProtocolError, decode, encode

MAX_FDS = 2
"""File descriptors one message may carry (a call's RTP and RTCP sockets)."""

SOCKET_BUFFER = 4 * MAX_MESSAGE

log = structlog.get_logger(__name__)


class ChannelClosed(ConnectionError):
    """The peer is gone (or the channel was closed): nothing more can be sent."""


Received = tuple[Message, list[int]]


def channel_pair() -> tuple[socket.socket, socket.socket]:
    """Two connected SEQPACKET sockets: one for this process, one for the worker it starts."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    for sock in (ours, theirs):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER)
    return ours, theirs


class Channel:
    """Messages to and from the process at the other end of `sock` (which this object owns)."""

    def __init__(self, sock: socket.socket, *, peer: str) -> None:
        self._sock = sock
        self._sock.setblocking(False)
        self._loop = asyncio.get_running_loop()
        self._inbox: asyncio.Queue[Received | None] = asyncio.Queue()
        self._outbox: collections.deque[tuple[bytes, array.array[int]]] = collections.deque()
        self._closed = False
        self._log = log.bind(peer=peer)
        self.garbage = 0
        """Datagrams dropped because they were not a message."""
        self._loop.add_reader(sock.fileno(), self._readable)

    @property
    def closed(self) -> bool:
        return self._closed

    async def receive(self) -> Received | None:
        """The next message and the descriptors that came with it (now ours); None at the end."""
        if self._closed and self._inbox.empty():
            return None
        return await self._inbox.get()

    def send(self, message: Message, fds: Sequence[int] = ()) -> None:
        """Queue `message` (with `fds`, duplicated by the kernel as it is sent); ChannelClosed
        when the peer is gone."""
        if self._closed:
            raise ChannelClosed("the control channel is closed")
        item = (encode(message), array.array("i", fds))
        if self._outbox:
            self._outbox.append(item)
            return
        if not self._write(item):
            self._outbox.append(item)
            self._loop.add_writer(self._sock.fileno(), self._writable)

    def close(self) -> None:
        """Stop reading and writing, close the socket; `receive` then ends (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._loop.remove_reader(self._sock.fileno())
        if self._outbox:
            self._loop.remove_writer(self._sock.fileno())
            self._outbox.clear()
        self._sock.close()
        self._inbox.put_nowait(None)

    def _write(self, item: tuple[bytes, array.array[int]]) -> bool:
        data, fds = item
        ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)] if fds else []
        try:
            self._sock.sendmsg([data], ancillary)
        except BlockingIOError:
            return False
        except OSError as exc:  # the peer died: whoever reads sees the end
            self._log.info("control_channel_lost", error=str(exc))
            self.close()
            raise ChannelClosed(str(exc)) from None
        return True

    def _writable(self) -> None:
        while self._outbox:
            try:
                sent = self._write(self._outbox[0])
            except ChannelClosed:
                return
            if not sent:
                return
            self._outbox.popleft()
        self._loop.remove_writer(self._sock.fileno())

    def _readable(self) -> None:
        ancillary_size = socket.CMSG_SPACE(MAX_FDS * array.array("i").itemsize)
        while not self._closed:
            try:
                data, ancdata, flags, _ = self._sock.recvmsg(MAX_MESSAGE + 1, ancillary_size)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self._log.info("control_channel_lost", error=str(exc))
                self.close()
                return
            fds = _fds_of(ancdata)
            if not data and not fds:
                self.close()  # the peer closed its end (or died)
                return
            try:
                if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
                    raise ProtocolError("message or its descriptors truncated")
                message = decode(data)
            except ProtocolError as exc:
                self.garbage += 1
                self._log.warning("control_message_dropped", reason=str(exc))
                for fd in fds:
                    os.close(fd)
                continue
            self._inbox.put_nowait((message, fds))


def _fds_of(ancdata: list[tuple[int, int, bytes]]) -> list[int]:
    fds = array.array("i")
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - (len(data) % fds.itemsize)])
    return list(fds)
