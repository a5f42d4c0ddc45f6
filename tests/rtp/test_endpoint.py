"""The asyncio shell on real UDP sockets on 127.0.0.1, driven by a real MediaClock."""

import asyncio
import contextlib
import gc
import random
import socket
import struct
import threading
import time
import tracemalloc
import weakref
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np
import pytest
from aiortc.rtp import RtpPacket

from tests.rtp.helpers import best_correlation, free_range, sine, speech
from voicegw.audio.codecs import PCMU as PCMU_CODEC
from voicegw.rtp.clock import MediaClock
from voicegw.rtp.endpoint import EARLY_KEEP_S, RtpEndpoint
from voicegw.rtp.events import DtmfDigit, MediaTimeout
from voicegw.rtp.packet import parse_rtp
from voicegw.rtp.ports import RtpPortsExhausted
from voicegw.rtp.session import RELATCH_SILENCE_S
from voicegw.rtp.srtp import CryptoAttribute, SrtpKeys

LOCALHOST = "127.0.0.1"
PCMU, OPUS, TE = 0, 111, 101

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
async def clock() -> AsyncIterator[MediaClock]:
    clock = MediaClock()
    await clock.start()
    try:
        yield clock
    finally:
        await clock.stop()


@pytest.fixture(scope="module")
def speech_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("speech")


@pytest.fixture
async def pair(
    request: pytest.FixtureRequest, clock: MediaClock
) -> AsyncIterator[tuple[RtpEndpoint, RtpEndpoint]]:
    codec, pt, rate, *srtp_suite = getattr(request, "param", ("PCMU", PCMU, 16000))
    keys: list[SrtpKeys | None] = [None, None]
    if srtp_suite:
        # Each end protects with its own key and checks with the other's, as SDES sets them up.
        ka, kb = (CryptoAttribute.generate(1, srtp_suite[0]).key for _ in range(2))
        keys = [SrtpKeys(srtp_suite[0], ka, kb), SrtpKeys(srtp_suite[0], kb, ka)]
    port_range = free_range(8)
    a = await RtpEndpoint.open(host=LOCALHOST, port_range=port_range, clock=clock)
    b = await RtpEndpoint.open(host=LOCALHOST, port_range=port_range, clock=clock)
    try:
        for x, y, srtp in ((a, b, keys[0]), (b, a, keys[1])):
            x.start(
                codec=codec,
                payload_type=pt,
                remote=(LOCALHOST, y.local_port),
                sample_rate=rate,
                telephone_event_pt=TE,
                srtp=srtp,
            )
        yield a, b
    finally:
        await a.close()
        await b.close()


@pytest.fixture
def probe() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((LOCALHOST, 0))
    sock.setblocking(False)
    try:
        yield sock
    finally:
        sock.close()


async def collect(endpoint: RtpEndpoint, seconds: float) -> bytes:
    pcm = bytearray()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            async for frame in endpoint.frames():
                pcm += frame
    return bytes(pcm)


async def receive_packets(sock: socket.socket, count: int) -> list[tuple[float, RtpPacket]]:
    loop = asyncio.get_running_loop()
    packets: list[tuple[float, RtpPacket]] = []
    async with asyncio.timeout(5):
        while len(packets) < count:
            data, _ = await loop.sock_recvfrom(sock, 2048)
            packets.append((loop.time(), parse_rtp(data)))
    return packets


@pytest.mark.parametrize(
    ("pair", "threshold"),
    [(("PCMU", PCMU, 16000), 0.9), (("PCMU", PCMU, 8000), 0.9), (("opus", OPUS, 24000), 0.8)],
    indirect=["pair"],
    ids=["pcmu-16k", "pcmu-8k", "opus-24k"],
)
async def test_speech_roundtrip(
    pair: tuple[RtpEndpoint, RtpEndpoint], threshold: float, speech_dir: Path
) -> None:
    a, b = pair
    rate = a.stats["sample_rate"]
    pcm = speech(speech_dir, rate)
    a.play(pcm, "item-1")
    received = await collect(b, len(pcm) / (2 * rate) + 0.6)
    score, lag = best_correlation(pcm, received)
    print(f"correlation {score:.3f}, latency {lag * 1000 // rate} ms")
    assert score >= threshold, f"correlation {score:.3f} at lag {lag}"
    assert lag / rate < 0.25  # playout + jitter buffer latency on loopback
    assert abs(a.played_ms("item-1") - len(pcm) * 1000 // (2 * rate)) <= 20
    stats = b.stats
    assert stats["lost"] == 0 and stats["bad_packets"] == 0 and stats["frames_dropped"] == 0
    assert stats["packets_in"] >= len(received) // (2 * rate // 50) - 1


async def test_outbound_headers_and_pacing(clock: MediaClock, probe: socket.socket) -> None:
    endpoint = await RtpEndpoint.open(host=LOCALHOST, port_range=free_range(2), clock=clock)
    try:
        endpoint.start(codec="PCMU", payload_type=PCMU, remote=probe.getsockname(), sample_rate=8000)
        head = await receive_packets(probe, 10)
        endpoint.play(sine(440, 0.4, 8000), "tone")
        packets = head + await receive_packets(probe, 40)
    finally:
        await endpoint.close()
    rtp = [p for _, p in packets]
    assert {p.ssrc for p in rtp} == {endpoint.stats["ssrc"]}
    assert {p.payload_type for p in rtp} == {PCMU}
    assert [p.sequence_number for p in rtp] == [(rtp[0].sequence_number + i) % 65536 for i in range(50)]
    assert [p.timestamp for p in rtp] == [(rtp[0].timestamp + 160 * i) % 2**32 for i in range(50)]
    assert {len(p.payload) for p in rtp} == {160}
    assert rtp[0].payload == b"\xff" * 160  # silence keeps the stream going before any audio
    markers = [i for i, p in enumerate(rtp) if p.marker]
    assert markers[0] == 0 and len(markers) == 2 and markers[1] >= 10  # first packet, start of the tone
    intervals = np.diff([t for t, _ in packets]) * 1000
    assert abs(float(np.median(intervals)) - 20) < 2
    assert float(np.mean(intervals)) == pytest.approx(20, abs=1)


async def test_garbage_is_counted_and_dropped(
    pair: tuple[RtpEndpoint, RtpEndpoint], probe: socket.socket, speech_dir: Path
) -> None:
    a, b = pair
    pcm = speech(speech_dir, 16000)
    a.play(pcm, "item-1")
    await asyncio.sleep(0.3)
    spoof = RtpPacket(
        payload_type=PCMU, sequence_number=1, timestamp=1, ssrc=a.stats["ssrc"], payload=b"\0" * 160
    )
    wrong_pt = RtpPacket(payload_type=8, sequence_number=1, timestamp=1, ssrc=7, payload=b"\xd5" * 160)
    junk = [
        (b"\x00\x01junk", b.local_port),
        (b"GET / HTTP/1.1\r\n\r\n", b.local_port),
        (wrong_pt.serialize()[:11], b.local_port),
        (wrong_pt.serialize(), b.local_port),
        (spoof.serialize(), b.local_port),
        (b"\x80\xc8\x00\x06garbage", b.local_port + 1),
    ]
    for data, port in junk:
        probe.sendto(data, (LOCALHOST, port))
    received = await collect(b, len(pcm) / 32000 + 0.4)
    # The latched peer is talking: the RTP socket is connected to it, so the kernel drops RTP
    # from any other port unseen, whatever it holds; RTCP from the peer's host is parsed (its
    # port may differ behind a NAT).
    assert b.stats["exclusive_source"] == (LOCALHOST, a.local_port)
    assert b.stats["bad_packets_by_reason"] == {"bad_rtcp": 1}
    assert b.stats["remote"] == (LOCALHOST, a.local_port)
    score, _ = best_correlation(pcm[len(pcm) // 4 // 2 * 2 :], received)
    assert score >= 0.9


@pytest.mark.parametrize(
    "pair",
    [("PCMU", PCMU, 8000, "AES_CM_128_HMAC_SHA1_80"), ("opus", OPUS, 24000, "AEAD_AES_128_GCM")],
    indirect=True,
    ids=["pcmu-aes-cm-80", "opus-aes-gcm"],
)
async def test_srtp_speech_roundtrip_drops_plain_rtp(
    pair: tuple[RtpEndpoint, RtpEndpoint], probe: socket.socket, speech_dir: Path
) -> None:
    a, b = pair
    rate = a.stats["sample_rate"]
    pcm = speech(speech_dir, rate)
    a.play(pcm, "item-1")
    await asyncio.sleep(0.3)
    # Plain RTP (from a foreign port: dropped by the kernel) and RTCP (from the peer's host:
    # fails its check) at an SRTP call: dropped before they can latch or play.
    spoof = RtpPacket(payload_type=PCMU, sequence_number=9, timestamp=1, ssrc=7, payload=b"\0" * 160)
    probe.sendto(spoof.serialize(), (LOCALHOST, b.local_port))
    probe.sendto(b"\x80\xc9\x00\x01\x00\x00\x00\x07", (LOCALHOST, b.local_port + 1))
    received = await collect(b, len(pcm) / (2 * rate) + 0.4)
    assert b.stats["srtp"] == a.stats["srtp"] != None  # noqa: E711
    assert b.stats["bad_packets_by_reason"] == {"srtp_auth": 1}  # the RTP never reached us
    assert b.stats["remote"] == (LOCALHOST, a.local_port)
    score, _ = best_correlation(pcm[len(pcm) // 4 // 2 * 2 :], received)
    assert score >= 0.8, score


async def test_dtmf_end_to_end(pair: tuple[RtpEndpoint, RtpEndpoint]) -> None:
    a, b = pair
    await a.send_dtmf("12#", duration_ms=80)
    digits = []
    async with asyncio.timeout(2):
        async for event in b.events():
            digits.append(event)
            if len(digits) == 3:
                break
    assert digits == [DtmfDigit("1", 80), DtmfDigit("2", 80), DtmfDigit("#", 80)]


async def test_media_timeout_and_hold(clock: MediaClock, probe: socket.socket) -> None:
    port_range = free_range(4)
    silent = await RtpEndpoint.open(host=LOCALHOST, port_range=port_range, clock=clock)
    held = await RtpEndpoint.open(host=LOCALHOST, port_range=port_range, clock=clock)
    try:
        for endpoint in (silent, held):
            endpoint.start(
                codec="PCMU",
                payload_type=PCMU,
                remote=probe.getsockname(),
                sample_rate=8000,
                media_timeout=0.3,
            )
        held.set_hold(True)
        async with asyncio.timeout(1.5):
            event = await anext(silent.events())
        assert isinstance(event, MediaTimeout) and event.silence_s >= 0.3
        await asyncio.sleep(0.3)
        assert held.stats["packets_out"] == 0  # on hold nothing is sent ...
        held.set_hold(False)  # ... and the timeout counts from the resume
        async with asyncio.timeout(1.5):
            event = await anext(held.events())
        assert isinstance(event, MediaTimeout) and event.silence_s == pytest.approx(0.3, abs=0.05)
        assert held.stats["packets_out"] > 0
    finally:
        await silent.close()
        await held.close()


async def test_slow_consumer_drops_oldest_frames(pair: tuple[RtpEndpoint, RtpEndpoint]) -> None:
    _, b = pair
    await asyncio.sleep(1.6)  # nobody reads b's frames
    assert b.stats["frames_dropped"] >= 10
    frames = b.frames()
    first = await anext(frames)
    assert len(first) == 640  # 20 ms at 16 kHz


async def test_close_idempotent_ends_iterators_and_frees_ports(clock: MediaClock) -> None:
    port_range = free_range(1)
    endpoint = await RtpEndpoint.open(host=LOCALHOST, port_range=port_range, clock=clock)
    with pytest.raises(RtpPortsExhausted):
        await RtpEndpoint.open(host=LOCALHOST, port_range=port_range, clock=clock)
    endpoint.start(codec="PCMU", payload_type=PCMU, remote=(LOCALHOST, 9), sample_rate=8000)
    reader = asyncio.create_task(collect(endpoint, 5))
    await asyncio.sleep(0.1)
    await asyncio.gather(endpoint.close(), endpoint.close())
    await endpoint.close()
    await asyncio.wait_for(reader, 1)  # frames() ended
    assert [e async for e in endpoint.events()] == []
    with pytest.raises(RuntimeError, match="already started or closed"):
        endpoint.start(codec="PCMU", payload_type=PCMU, remote=(LOCALHOST, 9), sample_rate=8000)
    again = await RtpEndpoint.open(host=LOCALHOST, port_range=port_range, clock=clock)
    assert again.local_port == endpoint.local_port
    await again.close()
    assert len(clock) == 0


async def test_rtcp_reports_over_the_rtcp_ports(clock: MediaClock) -> None:
    port_range = free_range(4)
    a = await RtpEndpoint.open(host=LOCALHOST, port_range=port_range, clock=clock)
    b = await RtpEndpoint.open(host=LOCALHOST, port_range=port_range, clock=clock)
    try:
        for x, y in ((a, b), (b, a)):
            x.start(
                codec="PCMU",
                payload_type=PCMU,
                remote=(LOCALHOST, y.local_port),
                sample_rate=8000,
                rtcp_interval=0.3,  # RFC 3550 says 5 s; short here so the test stays fast
            )
        await asyncio.sleep(1.5)
        for x, y in ((a, b), (b, a)):
            stats = x.stats
            assert stats["rtcp_in"] >= 2 and stats["rtcp_out"] >= 2
            assert stats["rtt_ms"] is not None and 0 <= stats["rtt_ms"] < 50
            assert stats["remote_fraction_lost"] == 0 and stats["remote_ssrc"] == y.stats["ssrc"]
            # Both sockets hear the far end alone now: its media and its reports came in.
            assert stats["exclusive_source"] == (LOCALHOST, y.local_port)
            assert stats["exclusive_rtcp_source"] == (LOCALHOST, y.local_port + 1)
        await a.close()
        await asyncio.sleep(0.1)
        assert b.stats["remote_bye"]
    finally:
        await a.close()
        await b.close()


async def test_bind_then_connect_and_close_unconnected(clock: MediaClock) -> None:
    port_range = free_range(1)
    endpoint = RtpEndpoint.bind(host=LOCALHOST, port_range=port_range, clock=clock)  # port known at once
    with pytest.raises(RuntimeError, match="not connected"):
        endpoint.start(codec="PCMU", payload_type=PCMU, remote=(LOCALHOST, 9), sample_rate=8000)
    await endpoint.close()  # never connected: the sockets and ports are released all the same
    again = RtpEndpoint.bind(host=LOCALHOST, port_range=port_range, clock=clock)
    assert again.local_port == endpoint.local_port
    await again.connect()
    with pytest.raises(RuntimeError, match="already connected"):
        await again.connect()
    again.start(codec="PCMU", payload_type=PCMU, remote=(LOCALHOST, 9), sample_rate=8000)
    await again.close()


async def test_another_source_takes_over_only_after_the_latched_one_fell_silent(
    pair: tuple[RtpEndpoint, RtpEndpoint], probe: socket.socket
) -> None:
    a, b = pair
    await asyncio.sleep(0.3)
    assert b.stats["exclusive_source"] == (LOCALHOST, a.local_port)
    loop = asyncio.get_running_loop()

    async def stream_from_probe(seconds: float, first: int) -> None:
        for i in range(int(seconds / 0.02)):
            packet = RtpPacket(payload_type=PCMU, sequence_number=first + i, timestamp=160 * i, ssrc=0xD1CE)
            probe.sendto(packet.serialize(), (LOCALHOST, b.local_port))
            await asyncio.sleep(0.02)

    await stream_from_probe(0.5, 1)  # while `a` talks: unheard
    assert b.stats["remote"] == (LOCALHOST, a.local_port)
    a.set_hold(True)  # `a` stops sending
    started = loop.time()
    await stream_from_probe(RELATCH_SILENCE_S + 0.5, 100)
    assert b.stats["exclusive_source"] == b.stats["remote"] == probe.getsockname()
    assert b.stats["remote_ssrc"] == 0xD1CE and loop.time() - started >= RELATCH_SILENCE_S - 0.1
    data, _ = await asyncio.wait_for(loop.sock_recvfrom(probe, 2048), 1)  # and b answers there
    assert parse_rtp(data).ssrc == b.stats["ssrc"]


async def test_a_caller_behind_a_nat_latches_through_a_flood(clock: MediaClock, probe: socket.socket) -> None:
    endpoint = await RtpEndpoint.open(host=LOCALHOST, port_range=free_range(2), clock=clock)
    caller = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    caller.bind((LOCALHOST, 0))
    stop = threading.Event()
    rng = random.Random(5)
    junk = [  # would-be sources that never pass probation: fresh SSRCs, random sequence numbers
        RtpPacket(
            payload_type=PCMU, sequence_number=rng.randrange(65536), ssrc=rng.randrange(1, 2**32)
        ).serialize()
        for _ in range(256)
    ]

    def flood() -> None:
        i = 0
        while not stop.is_set():
            probe.sendto(junk[i % len(junk)], (LOCALHOST, endpoint.local_port))
            i += 1
            if i % 100 == 0:
                time.sleep(0.002)

    flooder = threading.Thread(target=flood)
    try:
        # The SDP named an address nobody sends from: the caller's NAT address must earn its latch.
        endpoint.start(codec="PCMU", payload_type=PCMU, remote=(LOCALHOST, 9), sample_rate=8000)
        flooder.start()
        await asyncio.sleep(0.2)
        for seq in range(50):
            packet = RtpPacket(payload_type=PCMU, sequence_number=seq, timestamp=160 * seq, ssrc=0xCA11)
            caller.sendto(packet.serialize(), (LOCALHOST, endpoint.local_port))
            await asyncio.sleep(0.02)
            if endpoint.stats["remote"] == caller.getsockname():
                break
        assert endpoint.stats["remote"] == caller.getsockname(), endpoint.stats
        assert endpoint.stats["candidates_overflow"] > 0  # the flood was on meanwhile
    finally:
        stop.set()
        if flooder.is_alive():
            flooder.join()
        caller.close()
        await endpoint.close()


async def test_datagrams_are_read_into_small_buffers(clock: MediaClock, probe: socket.socket) -> None:
    # asyncio's own read size (256 KiB a datagram, shrunk after) was nearly all of a loaded
    # server's malloc traffic; the largest buffer a read may take shows in tracemalloc's peak.
    endpoint = await RtpEndpoint.open(host=LOCALHOST, port_range=free_range(2), clock=clock)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before, _ = tracemalloc.get_traced_memory()
        for _ in range(20):
            probe.sendto(b"\x80" + bytes(171), (LOCALHOST, endpoint.local_port))
        async with asyncio.timeout(5):
            while endpoint.datagrams_before_start < 20:
                await asyncio.sleep(0.01)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        await endpoint.close()
    assert peak - before < 64 * 1024


async def test_caller_audio_reaches_frames_with_no_tick_in_between(probe: socket.socket) -> None:
    """The media clock never ticks here: a caller packet in sequence is decoded in the socket's
    callback and its frame handed to `frames()` at once (the gateway's inbound latency)."""
    idle_clock = MediaClock()  # not started
    endpoint = await RtpEndpoint.open(host=LOCALHOST, port_range=free_range(2), clock=idle_clock)
    try:
        endpoint.start(codec="PCMU", payload_type=PCMU, remote=probe.getsockname(), sample_rate=8000)
        frames = endpoint.timed_frames()
        for seq in range(3):
            packet = RtpPacket(payload_type=PCMU, sequence_number=seq, timestamp=160 * seq, ssrc=7)
            packet.payload = b"\x00" * 160
            probe.sendto(packet.serialize(), (LOCALHOST, endpoint.local_port))
            async with asyncio.timeout(5):
                pcm, arrival = await anext(frames)
            assert len(pcm) == 320 and arrival is not None
        assert idle_clock.ticks == 0 and endpoint.stats["frames_out"] == 3
    finally:
        await endpoint.close()


async def test_caller_audio_from_just_before_start_is_kept(probe: socket.socket) -> None:
    """A delayed offer's caller sends RTP with its ACK, before the answer in it starts our media:
    what came within `EARLY_KEEP_S` of `start()` is taken then, what came before it is not."""
    idle_clock = MediaClock()  # not started: frames come from the socket callback alone
    endpoint = await RtpEndpoint.open(host=LOCALHOST, port_range=free_range(2), clock=idle_clock)

    def send(seq: int, level: int) -> None:
        packet = RtpPacket(payload_type=PCMU, sequence_number=seq, timestamp=160 * seq, ssrc=7)
        packet.payload = bytes([level]) * 160
        probe.sendto(packet.serialize(), (LOCALHOST, endpoint.local_port))

    async def arrived(count: int) -> None:
        async with asyncio.timeout(5):
            while endpoint.datagrams_before_start < count:
                await asyncio.sleep(0.005)

    try:
        send(0, 0x00)  # before the call was answered: stale by the time media starts
        await arrived(1)
        await asyncio.sleep(EARLY_KEEP_S + 0.1)
        for seq in (1, 2, 3):
            send(seq, 0x80 + seq)
        await arrived(4)
        endpoint.start(codec="PCMU", payload_type=PCMU, remote=probe.getsockname(), sample_rate=8000)
        frames = endpoint.timed_frames()
        async with asyncio.timeout(5):
            taken = [pcm for pcm, _ in [await anext(frames) for _ in range(3)]]
        assert [PCMU_CODEC().decode(bytes([0x80 + seq]) * 160) for seq in (1, 2, 3)] == taken
        assert endpoint.stats["frames_out"] == 3 and endpoint.datagrams_before_start == 4
    finally:
        await endpoint.close()


async def test_a_closed_endpoint_is_freed_by_reference_counting(probe: socket.socket) -> None:
    """No reference cycle outlives close(): a server's ended calls are freed as they end, not
    when the cyclic collector next gets to them (minutes, on a busy worker)."""
    idle_clock = MediaClock()  # not started: no tick holds on to the endpoint
    gc.collect()
    gc.disable()
    try:
        endpoint = await RtpEndpoint.open(host=LOCALHOST, port_range=free_range(2), clock=idle_clock)
        endpoint.start(codec="PCMU", payload_type=PCMU, remote=probe.getsockname(), sample_rate=8000)
        await endpoint.close()
        await asyncio.sleep(0.05)  # the transports' last callbacks
        freed = weakref.ref(endpoint)
        del endpoint
        assert freed() is None, [type(r).__qualname__ for r in gc.get_referrers(freed())]
    finally:
        gc.enable()


async def test_a_goodbye_that_fails_still_closes_the_sockets_and_frees_the_ports(
    probe: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    ports = free_range(2)
    endpoint = await RtpEndpoint.open(host=LOCALHOST, port_range=ports, clock=MediaClock())
    endpoint.start(codec="PCMU", payload_type=PCMU, remote=probe.getsockname(), sample_rate=8000)
    stream = endpoint._started()

    def broken(now: float) -> None:
        raise struct.error("argument out of range")

    monkeypatch.setattr(stream, "close", broken)
    await endpoint.close()  # logged, not raised: the call's end goes on
    for port in (endpoint.local_port, endpoint.local_port + 1):
        again = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        again.bind((LOCALHOST, port))  # the sockets are closed
        again.close()
