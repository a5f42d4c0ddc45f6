"""The sans-I/O media pipeline: two MediaStreams wired by hand, the test advances `now`."""

import itertools
import random
from collections.abc import Callable

import pytest
from aiortc.rtp import RtpPacket

from tests.rtp.helpers import best_correlation, load_stream, sine
from voicegw.audio.codecs import codec_for
from voicegw.rtp.events import DtmfDigit, MediaTimeout
from voicegw.rtp.packet import parse_rtp, serialize_rtp
from voicegw.rtp.session import Datagram
from voicegw.rtp.stream import MediaStream, StreamConfig

A = ("127.0.0.1", 40000)
B = ("127.0.0.1", 42000)
TICK = 0.02


def make(remote: tuple[str, int], seed: int, **kw: object) -> MediaStream:
    config = StreamConfig(
        codec=str(kw.pop("codec", "PCMU")),
        payload_type=int(kw.pop("payload_type", 0)),  # type: ignore[call-overload]
        sample_rate=int(kw.pop("sample_rate", 8000)),  # type: ignore[call-overload]
        remote=remote,
        telephone_event_pt=101,
        **kw,  # type: ignore[arg-type]
    )
    return MediaStream(config, now=0.0, rng=random.Random(seed))


class Wire:
    """Ticks two streams and carries A's datagrams to B (loss = `drop`) and B's back to A."""

    def __init__(
        self, a: MediaStream, b: MediaStream, drop: Callable[[int, Datagram], bool] = lambda i, d: False
    ):
        self.a, self.b, self.drop = a, b, drop
        self.sent: list[Datagram] = []
        self.frames: list[bytes] = []
        self.events: list[object] = []
        self.tick_no = 0

    def run(self, ticks: int) -> None:
        for _ in range(ticks):
            now = self.tick_no * TICK
            self.tick_no += 1
            self.a.tick(now)
            self.b.tick(now)
            for d in self.a.session.datagrams_to_send(now):
                self.sent.append(d)
                if not self.drop(len(self.sent), d):
                    self.b.receive(d.data, A, now, rtcp=d.rtcp)
            for d in self.b.session.datagrams_to_send(now):
                self.a.receive(d.data, B, now, rtcp=d.rtcp)
            self.frames += [pcm for pcm, _ in self.b.take_frames()]
            self.events += self.b.take_events()

    @property
    def media(self) -> list[RtpPacket]:
        return [parse_rtp(d.data) for d in self.sent if not d.rtcp]


def test_loss_pattern_is_concealed_and_counted() -> None:
    a, b = make(B, 1), make(A, 2)
    tone = sine(300, 2.0, 8000)
    a.play(tone, "tone")
    lost_seqs: list[int] = []

    def drop(i: int, d: Datagram) -> bool:
        if d.rtcp or i % 10:
            return False
        lost_seqs.append(parse_rtp(d.data).sequence_number)
        return True

    wire = Wire(a, b, drop)
    wire.run(140)
    wire.drop = lambda i, d: False
    wire.run(10)  # the last loss is only known once later packets arrive
    assert {len(f) for f in wire.frames} == {320}
    assert len(wire.frames) >= 150 - 10  # one frame per tick once the jitter buffer is primed
    assert len(lost_seqs) >= 13 and b.stats["lost"] == len(lost_seqs)
    assert b.frames_concealed >= len(lost_seqs) - 1
    score, _ = best_correlation(tone[: 8000 * 2], b"".join(wire.frames))
    assert score >= 0.8


def test_no_loss_gives_clean_audio_and_resamples_to_agent_rate() -> None:
    a, b = make(B, 1, sample_rate=16000), make(A, 2, sample_rate=16000)
    tone = sine(500, 1.0, 16000)
    a.play(tone, "tone")
    wire = Wire(a, b)
    wire.run(75)
    assert {len(f) for f in wire.frames} == {640}
    score, _ = best_correlation(tone, b"".join(wire.frames))
    assert score >= 0.95
    assert b.frames_concealed == 0 and b.stats["lost"] == 0


def test_ptime_40() -> None:
    a, b = make(B, 1, ptime_ms=40), make(A, 2)
    a.play(sine(400, 1.0, 8000), "tone")
    wire = Wire(a, b)
    wire.run(50)
    media = wire.media
    assert 24 <= len(media) <= 25 and {len(p.payload) for p in media} == {320}
    assert all((q.timestamp - p.timestamp) % 2**32 == 320 for p, q in itertools.pairwise(media))
    assert len(wire.frames) >= 50 - 6 and {len(f) for f in wire.frames} == {320}


def test_ptime_40_keeps_its_pace_through_silence() -> None:
    """40 ms packets every other tick, talking or silent (silence is not sent as a 20 ms packet
    of silence encoded once, nor audio started a tick sooner, as it is at ptime 20)."""
    a, b = make(B, 1, ptime_ms=40), make(A, 2)
    a.play(sine(400, 0.3, 8000), "tone")
    wire = Wire(a, b)
    wire.run(30)
    a.play(sine(400, 0.3, 8000), "again")
    wire.run(30)
    media = wire.media
    assert 29 <= len(media) <= 30 and {len(p.payload) for p in media} == {320}
    assert all((q.timestamp - p.timestamp) % 2**32 == 320 for p, q in itertools.pairwise(media))


@pytest.mark.parametrize(("codec", "ptime"), [("PCMU", 30), ("opus", 40)])
def test_bad_ptime(codec: str, ptime: int) -> None:
    with pytest.raises(
        ValueError, match=r"ptime 30 ms is not a multiple of 20 ms|Opus is sent in 20 ms packets only"
    ):
        make(B, 1, codec=codec, payload_type=111, ptime_ms=ptime)


def test_media_timeout_fires_once_and_rearms() -> None:
    a, b = make(B, 1), make(A, 2, media_timeout=1.0)
    wire = Wire(a, b, drop=lambda i, d: True)  # nothing reaches b
    wire.run(60)
    assert wire.events == [MediaTimeout(silence_s=1.0)]
    wire.drop = lambda i, d: False
    wire.run(10)
    wire.drop = lambda i, d: True
    wire.run(40)
    assert len(wire.events) == 1  # 0.8 s of silence since the last packet: not yet
    wire.run(20)
    assert len(wire.events) == 2
    assert isinstance(wire.events[1], MediaTimeout) and wire.events[1].silence_s == pytest.approx(
        1.0, abs=0.03
    )


def test_hold_stops_sending_and_pauses_timeout() -> None:
    a, b = make(B, 1, media_timeout=0.5), make(A, 2, media_timeout=0.5)
    wire = Wire(a, b)
    wire.run(5)
    a.set_hold(True, now=wire.tick_no * TICK)
    b.set_hold(True, now=wire.tick_no * TICK)
    before = len(wire.media)
    wire.run(50)
    assert len(wire.media) == before and wire.events == []
    a.set_hold(False, now=wire.tick_no * TICK)
    b.set_hold(False, now=wire.tick_no * TICK)
    wire.run(5)
    media = wire.media
    resumed = media[before]
    assert resumed.marker == 1
    assert (resumed.timestamp - media[before - 1].timestamp) % 2**32 == 51 * 160  # time ran on while held
    assert wire.events == []


def test_dtmf_replaces_audio_and_is_reported() -> None:
    a, b = make(B, 1), make(A, 2)
    a.play(sine(300, 1.0, 8000), "tone")
    wire = Wire(a, b)
    wire.run(5)
    a.send_dtmf("4", 100, now=wire.tick_no * TICK)
    wire.run(30)
    pts = [p.payload_type for p in wire.media]
    first_te = pts.index(101)
    # Telephone-events only from the press start until its last end packet and the gap after it.
    assert pts[first_te : first_te + 5] == [101] * 5  # start, update at 50 ms, 3 end packets
    assert pts.count(101) == 5 and pts[-1] == 0
    assert wire.events == [DtmfDigit("4", 100)]
    # Playout paused while the digit played: 35 ticks, 6 + 3 of them DTMF and gap.
    assert a.played_ms("tone") <= (35 - 8) * 20


def test_sipp_30ms_pcma_becomes_steady_20ms_frames() -> None:
    packets = load_stream("sipp_pcma_30ms.bin")
    stream = MediaStream(
        StreamConfig(codec="PCMA", payload_type=8, sample_rate=8000, remote=A), now=0.0, rng=random.Random(1)
    )
    decoder = codec_for("PCMA")()
    reference = b"".join(decoder.decode(parse_rtp(p).payload) for p in packets)
    frames: list[bytes] = []
    sent = 0
    for tick in range(148):  # 2.96 s: until the capture's last packet has played
        now = tick * TICK
        while sent < len(packets) and sent * 0.03 <= now:  # SIPp sends every 30 ms
            stream.receive(packets[sent], A, sent * 0.03)
            sent += 1
        stream.tick(now)
        frames += [pcm for pcm, _ in stream.take_frames()]
    assert {len(f) for f in frames} == {320}
    assert len(frames) >= 140  # one 20 ms frame per tick once primed
    assert stream.frames_concealed == 0 and stream.stats["lost"] == 0
    score, _ = best_correlation(reference[: 2 * 8000 * 2], b"".join(frames))
    assert score >= 0.99


def test_tap_gets_one_caller_and_one_agent_frame_per_tick() -> None:
    """Recording's tap: B hears A's tone while B's agent plays its own; silence fills the gaps."""
    a, b = make(B, 1), make(A, 2)
    tapped: list[tuple[bytes, bytes]] = []
    b.tap = lambda caller, agent: tapped.append((caller, agent))
    a.play(sine(440, 1.0, 8000), "a")
    b.play(sine(1000, 0.5, 8000), "b")
    wire = Wire(a, b)
    wire.run(60)
    assert len(tapped) == 60 and all(len(c) == len(g) == 320 for c, g in tapped)
    caller = b"".join(c for c, _ in tapped)
    agent = b"".join(g for _, g in tapped)
    # What the consumer got, which had each frame on its packet's arrival, the tap at the tick after.
    assert best_correlation(b"".join(wire.frames[:-1]), caller)[0] > 0.99
    assert best_correlation(sine(1000, 0.5, 8000), agent)[0] > 0.95
    assert agent[-5 * 320 :] == bytes(5 * 320)  # the agent's half second is over: silence


def test_caller_frames_carry_the_arrival_of_their_packet() -> None:
    """The start of the gateway's inbound latency: each frame names when its packet arrived."""
    a, b = make(B, 1), make(A, 2)
    a.play(sine(300, 1.0, 8000), "tone")
    timed: list[tuple[bytes, float | None]] = []
    for tick in range(30):
        now = tick * TICK
        a.tick(now)
        for d in a.session.datagrams_to_send(now):
            b.receive(d.data, A, now + 0.005, rtcp=d.rtcp)  # each packet arrives 5 ms into its tick
        b.tick(now + TICK)
        timed += b.take_frames()
    assert len(timed) >= 25
    arrivals = [arrival for _, arrival in timed]
    assert all(arrival is not None and round(arrival * 1000) % 20 == 5 for arrival in arrivals)
    # The jitter buffer holds each packet a tick or more: frames leave after their packet came.
    assert arrivals == sorted(arrivals)


def test_only_model_audio_that_waits_for_nothing_is_timed() -> None:
    """The outbound latency: audio played into an idle stream is stamped on the packet carrying
    its first frame; audio queued behind other audio is not timed, and neither is silence."""
    a = make(B, 1)
    a.tick(0.0)
    assert a.sent_received_at is None
    a.play(sine(300, 0.1, 8000), "first", received_at=7.5)
    a.play(sine(300, 0.1, 8000), "second", received_at=8.5)  # behind "first": playback, not latency
    stamps = []
    for tick in range(1, 14):
        a.tick(tick * TICK)
        stamps.append(a.sent_received_at)
        a.sent_received_at = None  # the endpoint takes it once sent
    # The first frame took the place of the silence encoded for the next tick: it left with it.
    assert stamps == [7.5] + [None] * 12
    a.flush()
    a.play(sine(300, 0.1, 8000), "third", received_at=9.5)
    a.tick(15 * TICK)
    assert a.sent_received_at == 9.5


def test_audio_into_an_idle_stream_leaves_on_the_next_tick_and_is_tapped_whole() -> None:
    a = make(B, 1)
    tapped: list[bytes] = []
    a.tap = lambda caller, agent: tapped.append(agent)
    for tick in range(3):
        a.tick(tick * TICK)
    a.session.datagrams_to_send(3 * TICK)
    tone = sine(300, 0.1, 8000)
    a.play(tone, "answer")
    for tick in range(3, 12):
        a.tick(tick * TICK)
    media = [parse_rtp(d.data) for d in a.session.datagrams_to_send(12 * TICK) if not d.rtcp]
    encoded = codec_for("PCMU")().encode(tone)
    # Tick 3 already carries the answer's first frame, with the marker of a talkspurt.
    assert media[0].payload == encoded[:160] and media[0].marker
    assert b"".join(p.payload for p in media[:5]) == encoded
    # The recording's tap saw every frame of it, in order, one per tick, and caught up after.
    silence = bytes(320)
    assert len(tapped) == 12 and all(len(frame) == 320 for frame in tapped)
    assert b"".join(frame for frame in tapped if frame != silence) == tone
    assert tapped[-1] == tapped[-2] == silence


def caller_packets(count: int) -> list[bytes]:
    """`count` 20 ms PCMU packets of a tone, sequence numbers and timestamps in step."""
    encoded = codec_for("PCMU")().encode(sine(300, count * TICK, 8000))
    return [
        serialize_rtp(0, i == 0, 100 + i, 8000 + 160 * i, 0x1234, encoded[160 * i : 160 * (i + 1)])
        for i in range(count)
    ]


def test_caller_audio_in_sequence_leaves_on_arrival_not_at_the_tick() -> None:
    """The model needs the caller's audio in order, not evenly paced: each packet that follows
    the last one is decoded on arrival, with no tick in between."""
    b = make(A, 2)
    packets = caller_packets(5)
    for i, packet in enumerate(packets):
        b.receive(packet, A, 0.001 + i * TICK)
        frames = b.take_frames()
        assert [arrival for _, arrival in frames] == [0.001 + i * TICK]
    assert b.frames_out == 5 and b.frames_concealed == 0


def test_a_reordered_packet_is_held_and_handed_on_in_order() -> None:
    b = make(A, 2)
    first, second, third, fourth = caller_packets(4)
    decoder = codec_for("PCMU")()
    b.receive(first, A, 0.0)
    b.receive(third, A, 0.040)  # overtook the second: held
    assert len(b.take_frames()) == 1
    b.receive(second, A, 0.045)  # the gap closes: both leave at once, in order
    b.receive(fourth, A, 0.060)
    frames = [pcm for pcm, _ in b.take_frames()]
    assert frames == [decoder.decode(parse_rtp(p).payload) for p in (second, third, fourth)]
    assert b.stats["reordered"] == 1 and b.frames_concealed == 0 and b.stats["lost"] == 0


def test_a_missing_packet_is_concealed_once_the_buffer_depth_has_passed() -> None:
    b = make(A, 2)
    packets = caller_packets(6)
    b.receive(packets[0], A, 0.0)
    assert len(b.take_frames()) == 1
    for i in (2, 3, 4):  # the second never comes
        b.receive(packets[i], A, i * TICK)
    assert b.take_frames() == []  # held behind the gap
    ticks = 0
    while not (frames := b.take_frames()):
        ticks += 1
        b.tick(ticks * TICK)
    # Concealed at the tick that found the gap still open a buffer's depth after it was due
    # (the first packet's tick, then 20 ms and a tick of phase: three ticks after the missing
    # packet's own), and the held packets right behind the concealment, in order.
    assert ticks == 4
    assert [arrival for _, arrival in frames] == [None, 2 * TICK, 3 * TICK, 4 * TICK]
    assert b.frames_concealed == 1 and b.stats["lost"] == 1
    b.receive(packets[1], A, 5 * TICK)  # too late now: counted, not played
    b.receive(packets[5], A, 5 * TICK)
    assert [arrival for _, arrival in b.take_frames()] == [5 * TICK]
    assert b.stats["late"] == 1


def test_a_talkspurt_starts_on_arrival_with_the_marker_and_the_next_packet_keeps_the_tick() -> None:
    a = make(B, 1)
    for tick in range(8):  # silence, long enough to be a pause
        a.tick(tick * TICK)
    silence = [parse_rtp(d.data) for d in a.session.datagrams_to_send(8 * TICK) if not d.rtcp]
    tone = sine(300, 0.1, 8000)
    a.play(tone, "answer", received_at=0.1503, now=0.1503)  # between the ticks at 0.14 and 0.16
    early = [parse_rtp(d.data) for d in a.session.datagrams_to_send(0.1503)]
    encoded = codec_for("PCMU")().encode(tone)
    assert len(early) == 1 and early[0].marker and early[0].payload == encoded[:160]
    assert a.sent_received_at == 0.1503
    a.sent_received_at = None
    # It took the place of the silence encoded for the next tick; the rest follow tick by tick.
    assert (early[0].sequence_number - silence[-1].sequence_number) % 2**16 == 1
    assert (early[0].timestamp - silence[-1].timestamp) % 2**32 == 160
    for tick in range(8, 12):
        a.tick(tick * TICK)
    rest = [parse_rtp(d.data) for d in a.session.datagrams_to_send(12 * TICK) if not d.rtcp]
    assert b"".join(p.payload for p in [*early, *rest])[: len(encoded)] == encoded
    assert not any(p.marker for p in rest) and a.sent_received_at is None


def test_audio_after_a_short_pause_waits_for_the_tick() -> None:
    """An echo whose caller packet came a tick late is no talkspurt: its packet keeps the pace."""
    a = make(B, 1)
    a.play(sine(300, 0.1, 8000), "first")
    for tick in range(7):
        a.tick(tick * TICK)
    a.session.datagrams_to_send(7 * TICK)
    a.play(sine(300, 0.1, 8000), "second", now=0.1503)
    assert a.session.datagrams_to_send(0.1503) == []
