"""`RtpEndpoint`: one call's media, the thin asyncio shell around `MediaStream`.

Two datagram sockets (RTP on an even port, RTCP on the next) screen each arriving datagram
(`RtpSession.screen`: other sources than the latched one are dropped unread, so a flood costs
a few comparisons each). The call's own source goes into the sans-I/O stream at once, up to
`INBOX_LIMIT` datagrams a tick (its caller frames leave on arrival: the gateway's inbound
latency); would-be sources are parked with their arrival time in a bounded queue until the
tick. The shared `MediaClock` calls `tick()` every 20 ms on every call first (each call's
outbound packet leaves), then `after_tick()` (the parked datagrams, concealment of a gap still
open, the recording tap). Caller frames and events leave through queues that the call's
consumer drains with `frames()` and `events()`.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable
from typing import Any, Concatenate, Final, ParamSpec

import structlog

from voicegw.contracts.latency import GATEWAY_LATENCY, Direction
from voicegw.rtp.clock import MediaClock
from voicegw.rtp.events import Address, EndpointEvent
from voicegw.rtp.ports import PortAllocator, allocator_for, disconnect_udp
from voicegw.rtp.session import RTCP_INTERVAL_S, Datagram
from voicegw.rtp.srtp import SrtpKeys
from voicegw.rtp.stream import MediaStream, MediaTap, StreamConfig, TimedFrame

FRAME_QUEUE_FRAMES = 50
"""Caller frames held for a slow consumer (one second); older ones are dropped first."""

INBOX_LIMIT = 64
"""Datagrams of the call's own source taken between two ticks (a peer sends 1-3): beyond that
it is a flood, dropped."""

CANDIDATE_LIMIT = 16
"""Datagrams of other sources that may still latch (call start, a silent far end) parked between
two ticks, in a queue of their own: however many arrive, the call's own packets keep their room."""

CANDIDATE_PER_SOURCE = 4
"""Of those, from one address: one flooding source cannot take every place from a caller behind
a NAT that is still on probation."""

EARLY_DATAGRAMS = 25
EARLY_KEEP_S = 0.5
"""Datagrams that arrive after the sockets are read but before `start()` (a delayed offer's
caller sends RTP with its ACK, before the answer in it has started our media; a worker takes
the sockets, and reads what queued, just before it starts them): the last `EARLY_DATAGRAMS` are
kept and taken at `start()` if they are at most `EARLY_KEEP_S` old, so the caller's first words
are not lost. Older ones are from before the call was answered: nobody listened yet."""

DATAGRAM_READ_SIZE = 2048
"""Bytes read per datagram: a 20 ms PCMU packet is 172, anything on an Ethernet path fits 1,500
(a longer one arrives cut, and fails SRTP's check or decodes short)."""

log = structlog.get_logger(__name__)

_P = ParamSpec("_P")


class _End:
    """Queue sentinel: the endpoint closed."""


_END: Final = _End()


class _DatagramProtocol(asyncio.DatagramProtocol):
    def __init__(self, endpoint: RtpEndpoint, *, rtcp: bool) -> None:
        self._endpoint = endpoint
        self._rtcp = rtcp
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self._endpoint._datagram_received(data, (addr[0], addr[1]), rtcp=self._rtcp)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable and the like: the far end is gone or not there yet.
        self._endpoint.socket_errors += 1

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)


class RtpEndpoint:
    """One call's RTP/RTCP sockets and media pipeline; create with `await RtpEndpoint.open(...)`."""

    def __init__(
        self,
        *,
        rtp_sock: socket.socket,
        rtcp_sock: socket.socket,
        allocator: PortAllocator,
        clock: MediaClock,
    ) -> None:
        # Set by connect(): bind() may run in a pjsua2 callback, outside any coroutine.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._allocator = allocator
        self._clock = clock
        self.local_port: int = rtp_sock.getsockname()[1]
        self._rtp_sock = rtp_sock
        self._rtcp_sock = rtcp_sock
        self._rtp: asyncio.DatagramTransport | None = None
        self._rtcp: asyncio.DatagramTransport | None = None
        self._protocols: list[_DatagramProtocol] = []
        self._stream: MediaStream | None = None
        self._frames: asyncio.Queue[TimedFrame | _End] = asyncio.Queue(maxsize=FRAME_QUEUE_FRAMES)
        self._events: asyncio.Queue[EndpointEvent | _End] = asyncio.Queue()
        self._dtmf_waiters: list[asyncio.Future[None]] = []
        self._failure: BaseException | None = None
        self._closing: asyncio.Future[None] | None = None
        self._log = log.bind(rtp_port=self.local_port)
        self._taken = 0
        """Datagrams of the call's own source taken since the last tick."""
        self._candidates: list[tuple[bytes, Address, bool, float]] = []
        self._candidates_from: Counter[Address] = Counter()
        self._pinned: list[Address | None] = [None, None]
        """Where the RTP and RTCP sockets are connected to (the kernel drops every other source)."""
        self.frames_dropped = 0
        self._early: deque[tuple[bytes, Address, bool, float]] = deque(maxlen=EARLY_DATAGRAMS)
        self.datagrams_before_start = 0
        self.datagrams_overflow = 0
        self.candidates_overflow = 0
        self.socket_errors = 0

    @classmethod
    async def open(cls, *, host: str, port_range: tuple[int, int], clock: MediaClock) -> RtpEndpoint:
        """Bind an even RTP port and RTP+1 for RTCP on `host`; raises `RtpPortsExhausted`."""
        self = cls.bind(host=host, port_range=port_range, clock=clock)
        await self.connect()
        return self

    @classmethod
    def bind(cls, *, host: str, port_range: tuple[int, int], clock: MediaClock) -> RtpEndpoint:
        """Reserve the ports now (`local_port` is known at once); `connect()` before `start()`.

        SIP needs the port synchronously, inside the callback that writes the SDP answer.
        """
        allocator = allocator_for(port_range)
        rtp_sock, rtcp_sock = allocator.bind(host)
        return cls(rtp_sock=rtp_sock, rtcp_sock=rtcp_sock, allocator=allocator, clock=clock)

    async def connect(self) -> None:
        """Hand the bound sockets to the event loop."""
        if self._loop is not None or self._closing is not None:
            raise RuntimeError("RTP endpoint already connected or closed")
        self._loop = asyncio.get_running_loop()
        try:
            self._rtp = await self._connect(self._loop, self._rtp_sock, rtcp=False)
            self._rtcp = await self._connect(self._loop, self._rtcp_sock, rtcp=True)
        except BaseException:
            await self.close()
            raise

    async def _connect(
        self, loop: asyncio.AbstractEventLoop, sock: socket.socket, *, rtcp: bool
    ) -> asyncio.DatagramTransport:
        protocol = _DatagramProtocol(self, rtcp=rtcp)
        transport, _ = await loop.create_datagram_endpoint(lambda: protocol, sock=sock)
        # asyncio's selector transport reads every datagram into a new 256 KiB bytes object and
        # shrinks it (its `max_size`): at 60 calls that was 98 % of all the process's malloc
        # traffic, 1.7 GB a second (jemalloc's profile, docs/architecture.md "Memory").
        if hasattr(transport, "max_size"):
            transport.max_size = DATAGRAM_READ_SIZE
        self._protocols.append(protocol)
        return transport

    def _connected_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError("RTP endpoint not connected: await connect() first (or use open())")
        return self._loop

    # --------------------------------------------------------------- control

    def start(
        self,
        *,
        codec: str,
        payload_type: int,
        remote: Address,
        sample_rate: int,
        telephone_event_pt: int | None = None,
        remote_rtcp: Address | None = None,
        ptime_ms: int = 20,
        media_timeout: float = 30.0,
        rtcp_interval: float = RTCP_INTERVAL_S,
        srtp: SrtpKeys | None = None,
    ) -> None:
        """Start media with the negotiated codec; `sample_rate` is the agent-side PCM rate.

        With `srtp`, every datagram is SRTP/SRTCP: inbound ones failing their check are dropped
        and counted (``srtp_auth``, ``srtp_replay`` in `stats`) like any other bad packet.

        Raises `UnsupportedCodec` for an unknown codec, RuntimeError when started twice or closed.
        """
        if self._stream is not None or self._closing is not None:
            raise RuntimeError("RTP endpoint already started or closed")
        now = self._connected_loop().time()
        # The media clock's task logs for every call: keep the starting task's context (the call id).
        self._log = self._log.bind(**structlog.contextvars.get_contextvars())
        self._stream = MediaStream(
            StreamConfig(
                codec=codec,
                payload_type=payload_type,
                sample_rate=sample_rate,
                remote=remote,
                remote_rtcp=remote_rtcp,
                telephone_event_pt=telephone_event_pt,
                ptime_ms=ptime_ms,
                media_timeout=media_timeout,
                rtcp_interval=rtcp_interval,
                unix_offset=time.time() - now,
                srtp=srtp,
            ),
            now=now,
            logger=self._log,
        )
        self._log = self._log.bind(codec=codec, ssrc=self._stream.session.ssrc)
        self._log.info(
            "rtp_started", remote=remote, payload_type=payload_type, srtp=srtp.suite if srtp else None
        )
        self._clock.add(self)
        early = list(self._early)
        self._early.clear()
        for data, addr, rtcp, arrival in early:
            if now - arrival <= EARLY_KEEP_S:
                self._datagram_received(data, addr, rtcp=rtcp, now=arrival)

    def _started(self) -> MediaStream:
        if self._stream is None:
            raise RuntimeError("RTP endpoint not started")
        return self._stream

    def update_remote(self, remote: Address, remote_rtcp: Address | None = None) -> None:
        """The far end moved (re-INVITE): send there and latch again on its next packet."""
        stream = self._started()
        stream.update_remote(remote, remote_rtcp)
        self._filter_sources(stream, self._connected_loop().time())

    def rekey_srtp(self, remote_key: bytes) -> None:
        """The far end's new SDES key (re-INVITE); a no-op when it is the key in use."""
        self._started().session.rekey(remote_key)

    def set_hold(self, held: bool) -> None:
        """Stop sending (and stop expecting media) while held."""
        self._started().set_hold(held, self._connected_loop().time())

    def play(self, pcm: bytes, item_id: str, received_at: float | None = None) -> None:
        """Queue agent audio (mono s16le at the `sample_rate` given to `start`), received from the
        model at `received_at` (`time.monotonic()`: timed as gateway latency when given)."""
        stream = self._started()
        # A talkspurt's first packet leaves now rather than at the next tick.
        now = self._connected_loop().time()
        stream.play(pcm, item_id, received_at, now=now)
        self._send_queued(stream, now)

    def flush(self) -> int:
        """Drop all queued agent audio; return ms of the current item already sent."""
        return 0 if self._stream is None else self._stream.flush()

    def played_ms(self, item_id: str) -> int:
        """Milliseconds of `item_id` sent so far."""
        return 0 if self._stream is None else self._stream.played_ms(item_id)

    def set_tap(self, tap: MediaTap | None) -> None:
        """Hand every tick's caller and agent frame to `tap` (runs on the media clock: never block)."""
        self._started().tap = tap

    async def send_dtmf(self, digits: str, *, duration_ms: int = 100) -> None:
        """Send `digits` as RFC 4733 events and return once the last end packet left."""
        stream = self._started()
        if self._closing is not None:
            raise RuntimeError("RTP endpoint closed")
        loop = self._connected_loop()
        now = loop.time()
        for digit in digits:
            stream.send_dtmf(digit, duration_ms, now)
        waiter = loop.create_future()
        self._dtmf_waiters.append(waiter)
        await waiter

    # ----------------------------------------------------------------- media

    def _datagram_received(self, data: bytes, addr: Address, *, rtcp: bool, now: float | None = None) -> None:
        """`now`: when it arrived, for a datagram kept from before `start()`."""
        if now is None:
            # The monotonic clock asyncio's loop.time() reads too (uvloop's at 1 ms resolution):
            # the arrival also starts the gateway's inbound latency (voicegw.contracts.latency).
            now = time.monotonic()
        stream = self._stream
        if stream is None:
            self.datagrams_before_start += 1
            self._early.append((data, addr, rtcp, now))
            return
        if self._closing is not None:
            return
        match stream.session.screen(data, addr, now, rtcp=rtcp):
            case "own" if self._taken < INBOX_LIMIT:
                # Decoded now, not at the next tick: the caller's audio reaches the model up to
                # a tick sooner, and in sequence it waits for no jitter buffer either.
                self._taken += 1
                self._step(self._take_datagram, now, data, addr, rtcp)
            case "own":
                self.datagrams_overflow += 1
            case "candidate" if (
                len(self._candidates) < CANDIDATE_LIMIT and self._candidates_from[addr] < CANDIDATE_PER_SOURCE
            ):
                self._candidates.append((data, addr, rtcp, now))
                self._candidates_from[addr] += 1
            case "candidate":
                self.candidates_overflow += 1
            case "drop":
                pass

    def tick(self, now: float) -> None:
        """First half of a media clock tick: send this tick's packet (and any RTCP, DTMF)."""
        self._step(self._send_phase, now)

    def after_tick(self, now: float) -> None:
        """Second half, once every call sent: take in the datagrams that arrived, decode one
        caller frame, hand out frames and events."""
        self._step(self._receive_phase, now)

    def _step(
        self,
        phase: Callable[Concatenate[MediaStream, float, _P], None],
        now: float,
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> None:
        stream = self._stream
        if stream is None or self._closing is not None:
            return
        try:
            phase(stream, now, *args, **kwargs)
        except Exception as exc:
            self._fail(exc)

    def _take_datagram(self, stream: MediaStream, now: float, data: bytes, addr: Address, rtcp: bool) -> None:
        stream.receive(data, addr, now, rtcp=rtcp)
        self._put_frames(stream)

    def _send_phase(self, stream: MediaStream, now: float) -> None:
        stream.tick_send(now)
        self._send_queued(stream, now)
        if self._dtmf_waiters and not stream.session.sending_dtmf(now):
            waiters, self._dtmf_waiters = self._dtmf_waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    def _send_queued(self, stream: MediaStream, now: float) -> None:
        self._send(stream.session.datagrams_to_send(now))
        if stream.sent_received_at is not None:
            GATEWAY_LATENCY[Direction.OUTBOUND].since(stream.sent_received_at)
            stream.sent_received_at = None

    def _receive_phase(self, stream: MediaStream, now: float) -> None:
        self._taken = 0
        candidates, self._candidates = self._candidates, []
        self._candidates_from.clear()
        for data, addr, rtcp, arrival in candidates:
            stream.receive(data, addr, arrival, rtcp=rtcp)
        stream.tick_receive(now)
        self._filter_sources(stream, now)
        self._put_frames(stream)
        for event in stream.take_events():
            self._log.info("media_event", kind=event.type, detail=repr(event))
            self._events.put_nowait(event)

    def _filter_sources(self, stream: MediaStream, now: float) -> None:
        """Connect the sockets to the latched source while it is sending, so that a flood from
        elsewhere is dropped by the kernel: it then neither costs this process anything nor
        crowds the call's own packets out of a socket's buffer when the machine is busy.
        Disconnected again whenever another source may latch (`RtpSession.exclusive_source`,
        `exclusive_rtcp_source`)."""
        session = stream.session
        wanted = (session.exclusive_source(now), session.exclusive_rtcp_source(now))
        for index, (sock, peer) in enumerate(zip((self._rtp_sock, self._rtcp_sock), wanted, strict=True)):
            if peer == self._pinned[index]:
                continue
            try:
                if peer is None:
                    disconnect_udp(sock)
                else:
                    sock.connect(peer)
            except OSError as exc:
                # The screen in _datagram_received still drops other sources, only at a higher cost.
                self._log.warning("rtp_source_filter_failed", peer=peer, error=str(exc))
                continue
            self._pinned[index] = peer

    def _put_frames(self, stream: MediaStream) -> None:
        for frame in stream.take_frames():
            self._put_frame(frame)

    def _put_frame(self, frame: TimedFrame | _End) -> None:
        if self._frames.full():
            # The consumer fell behind: old audio is worth less than new audio.
            self._frames.get_nowait()
            self.frames_dropped += 1
        self._frames.put_nowait(frame)

    def _send(self, datagrams: list[Datagram]) -> None:
        for datagram in datagrams:
            transport = self._rtcp if datagram.rtcp else self._rtp
            if transport is not None and not transport.is_closing():
                transport.sendto(datagram.data, datagram.address)

    def _fail(self, exc: BaseException) -> None:
        # A bug, not a peer's bad packet (those are counted and dropped inside the stream):
        # keep it for the consumer and stop this call's media.
        self._log.error("rtp_endpoint_failed", exc_info=exc)
        if self._failure is None:
            self._failure = exc
        self._clock.remove(self)
        self._end_queues()

    def _end_queues(self) -> None:
        self._put_frame(_END)
        self._events.put_nowait(_END)

    async def frames(self) -> AsyncIterator[bytes]:
        """Caller audio: 20 ms mono s16le frames at the agent rate; ends at close."""
        async for pcm, _ in self.timed_frames():
            yield pcm

    async def timed_frames(self) -> AsyncIterator[TimedFrame]:
        """`frames`, each with the arrival (`time.monotonic()`) of its newest packet, None when
        the frame was concealed."""
        while not isinstance(frame := await self._frames.get(), _End):
            yield frame
        self._raise_failure()

    async def events(self) -> AsyncIterator[EndpointEvent]:
        """`DtmfDigit` and `MediaTimeout` events; ends at close."""
        while not isinstance(event := await self._events.get(), _End):
            yield event
        self._raise_failure()

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    @property
    def stats(self) -> dict[str, Any]:
        """Packet, loss, jitter and drop counters of this call's media."""
        stream_stats = self._stream.stats if self._stream is not None else {}
        return {
            **stream_stats,
            "local_port": self.local_port,
            "frames_dropped": self.frames_dropped,
            "datagrams_before_start": self.datagrams_before_start,
            "datagrams_overflow": self.datagrams_overflow,
            "candidates_overflow": self.candidates_overflow,
            "exclusive_source": self._pinned[0],
            "exclusive_rtcp_source": self._pinned[1],
            "socket_errors": self.socket_errors,
        }

    # ----------------------------------------------------------------- close

    async def close(self) -> None:
        """Send RTCP BYE, close both sockets, free the ports, end the iterators; idempotent."""
        if self._closing is not None:
            await asyncio.shield(self._closing)
            return
        loop = asyncio.get_running_loop()
        self._closing = loop.create_future()
        try:
            self._clock.remove(self)
            if self._stream is not None:
                now = loop.time()
                try:
                    self._stream.close(now)
                    self._send(self._stream.session.datagrams_to_send(now))
                except Exception:  # our bug: the goodbye is lost, not the sockets
                    self._log.exception("rtp_goodbye_failed")
                self._log.info("rtp_closed", **self._stream.stats)
            for transport, sock in ((self._rtp, self._rtp_sock), (self._rtcp, self._rtcp_sock)):
                if transport is not None:
                    transport.close()
                else:
                    # open() failed before this socket was handed to a transport.
                    sock.close()
            await asyncio.gather(*(protocol.lost for protocol in self._protocols))
        finally:
            # Each protocol points back here: without the cycle, a closed call's whole pipeline
            # goes when its last reference does, not at the collector's next full pass.
            self._protocols = []
            self._allocator.release(self.local_port)
            for waiter in self._dtmf_waiters:
                if not waiter.done():
                    waiter.set_exception(RuntimeError("RTP endpoint closed before the DTMF was sent"))
            self._dtmf_waiters = []
            self._end_queues()
            self._closing.set_result(None)
