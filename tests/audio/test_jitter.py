from __future__ import annotations

import pytest

from voicegw.audio.jitter import JitterBuffer, Lost
from voicegw.audio.timing import unwrap

RATE = 8000
TICK = 160  # samples per 20 ms at 8 kHz
SSRC = 0x1234


def payload(n: int) -> bytes:
    return n.to_bytes(4, "big")


class Feed:
    """Drives a buffer like the media clock: packets arrive, one pop per 20 ms tick."""

    def __init__(self, buffer: JitterBuffer, seq0: int = 0, ts0: int = 0) -> None:
        self.buffer = buffer
        self.seq0, self.ts0 = seq0, ts0
        self.now = 0.0

    def push(self, n: int, *, ssrc: int = SSRC, at: float | None = None, samples: int = TICK) -> None:
        self.buffer.push(
            (self.seq0 + n) & 0xFFFF,
            (self.ts0 + n * samples) & 0xFFFFFFFF,
            payload(n),
            ssrc,
            self.now if at is None else at,
        )

    def tick(self) -> bytes | Lost | None:
        self.now += 0.02
        return self.buffer.pop()

    def ticks(self, count: int) -> list[bytes | Lost | None]:
        return [self.tick() for _ in range(count)]


def played(results: list[bytes | Lost | None]) -> list[int | str]:
    out: list[int | str] = []
    for r in results:
        if isinstance(r, Lost):
            out.append("lost")
        elif r is not None:
            out.append(int.from_bytes(r, "big"))
    return out


def stream(feed: Feed, order: list[int]) -> list[int | str]:
    """Packets in `order`, one per tick from the start, then enough ticks to drain."""
    results = []
    for n in order:
        feed.push(n)
        results.append(feed.tick())
    out = played([*results, *feed.ticks(10)])
    while out and out[-1] == "lost":  # the stream ended: trailing concealment is expected
        out.pop()
    return out


def test_in_order_stream_plays_every_packet_once_after_the_priming_delay() -> None:
    feed = Feed(JitterBuffer(RATE, min_delay_ms=20))
    feed.push(0)
    assert feed.tick() is None and feed.tick() is None  # primed for 20 ms plus the phase tick
    assert stream(feed, list(range(1, 10)))[:10] == list(range(10))


def test_reordered_packets_come_out_in_order() -> None:
    feed = Feed(JitterBuffer(RATE, min_delay_ms=40))
    assert stream(feed, [0, 2, 1, 3, 5, 4, 6]) == [0, 1, 2, 3, 4, 5, 6]
    assert feed.buffer.stats.reordered == 2


def test_loss_is_reported_as_a_gap_of_one_tick() -> None:
    feed = Feed(JitterBuffer(RATE, min_delay_ms=40))
    assert stream(feed, [0, 1, 3, 4])[:5] == [0, 1, "lost", 3, 4]
    assert feed.buffer.stats.lost == 1


def test_duplicates_are_dropped() -> None:
    feed = Feed(JitterBuffer(RATE, min_delay_ms=40))
    assert stream(feed, [0, 1, 1, 2, 0, 3]) == [0, 1, 2, 3]
    assert feed.buffer.stats.duplicates == 2


def test_late_packet_after_its_playout_time_is_dropped() -> None:
    feed = Feed(JitterBuffer(RATE, min_delay_ms=20, max_delay_ms=20))
    results = []
    for n in [0, 1, 2, 4, 5, 6]:
        feed.push(n)
        results.append(feed.tick())
    results += feed.ticks(2)
    feed.push(3)  # long after 3's slot was concealed
    results += feed.ticks(5)
    assert played(results)[:6] == [0, 1, 2, "lost", 4, 5]
    assert feed.buffer.stats.late == 1


@pytest.mark.parametrize(("seq0", "ts0"), [(65530, 0), (0, 0xFFFFFFFF - 3 * TICK), (65533, 0xFFFFFF00)])
def test_sequence_and_timestamp_wrap_around(seq0: int, ts0: int) -> None:
    feed = Feed(JitterBuffer(RATE, min_delay_ms=40), seq0=seq0, ts0=ts0)
    assert stream(feed, [0, 1, 2, 4, 3, 5, 6, 7, 8]) == list(range(9))
    assert feed.buffer.stats.lost == 0 and feed.buffer.stats.late == 0


def test_ssrc_change_restarts_playout_without_loss_storms() -> None:
    feed = Feed(JitterBuffer(RATE, min_delay_ms=20))
    first = stream(feed, [0, 1, 2])
    other = Feed(feed.buffer, seq0=40000, ts0=123456789)
    other.now = feed.now
    second = stream(other, [0, 1, 2])
    assert first == [0, 1, 2] and second == [0, 1, 2]
    assert feed.buffer.stats.resets == 1


def test_timestamp_jump_resyncs_instead_of_emitting_losses() -> None:
    feed = Feed(JitterBuffer(RATE, min_delay_ms=20))
    stream(feed, [0, 1, 2])
    jumped = Feed(feed.buffer, seq0=3, ts0=3 * TICK + 10 * RATE)  # ten seconds ahead
    results = stream(jumped, [0, 1, 2])
    assert results == [0, 1, 2]
    assert feed.buffer.stats.resets == 1 and feed.buffer.stats.lost == 0


def test_30ms_packets_play_on_20ms_ticks() -> None:
    feed = Feed(JitterBuffer(RATE, min_delay_ms=40))
    results = []
    for n in range(6):  # 180 ms of audio in 6 packets of 30 ms, arriving every 30 ms
        feed.buffer.push(n, n * 240, payload(n), SSRC, n * 0.03)
        results += [feed.buffer.pop()] if n % 2 else [feed.buffer.pop(), feed.buffer.pop()]
    results += [feed.buffer.pop() for _ in range(3)]
    assert played(results) == [0, 1, 2, 3, 4, 5]
    assert feed.buffer.stats.lost == 0


def test_depth_grows_under_jitter_and_stays_within_bounds() -> None:
    buffer = JitterBuffer(RATE, min_delay_ms=20, max_delay_ms=120)
    assert buffer.stats.depth_ms == 20
    for n in range(200):
        arrival = n * 0.02 + (0.06 if n % 3 == 0 else 0.0)  # every third packet 60 ms late
        buffer.push(n, n * TICK, payload(n), SSRC, arrival)
        buffer.pop()
    assert buffer.stats.jitter_ms > 10
    assert 60 <= buffer.stats.depth_ms <= 120


def test_depth_shrinks_back_when_jitter_calms() -> None:
    buffer = JitterBuffer(RATE, min_delay_ms=20, max_delay_ms=200)
    for n in range(100):
        buffer.push(n, n * TICK, payload(n), SSRC, n * 0.02 + (0.08 if n % 2 else 0.0))
        buffer.pop()
    high = buffer.stats.depth_ms
    for n in range(100, 600):
        buffer.push(n, n * TICK, payload(n), SSRC, n * 0.02)
        buffer.pop()
    assert buffer.stats.depth_ms < high
    assert buffer.stats.depth_ms <= 40


def test_a_quiet_sender_is_not_counted_as_loss_forever() -> None:
    feed = Feed(JitterBuffer(RATE, min_delay_ms=20, max_delay_ms=100))
    stream(feed, [0, 1, 2])
    results = feed.ticks(50)
    assert results[-1] is None  # gone idle after max_delay of concealment
    assert sum(isinstance(r, Lost) for r in results) <= 100 // 20 + 1


def test_unwrap_picks_the_nearest_extension() -> None:
    assert unwrap(2, 65534, 1 << 16) == 65538
    assert unwrap(65534, 65538, 1 << 16) == 65534
    assert unwrap(5, 3, 1 << 16) == 5


def test_bad_bounds_are_our_misuse() -> None:
    with pytest.raises(ValueError, match="min_delay_ms <= max_delay_ms"):
        JitterBuffer(RATE, min_delay_ms=100, max_delay_ms=50)


def simulate(
    buffer: JitterBuffer, packets: list[tuple[float, int, int, bytes]], seconds: float, tick_s: float = 0.02
) -> list[bytes | Lost | None]:
    """Packets `(arrival, seq, timestamp, payload)` pushed when their time comes, pops every tick."""
    pending = sorted(packets)
    results: list[bytes | Lost | None] = []
    for tick in range(round(seconds / tick_s)):
        now = tick * tick_s
        while pending and pending[0][0] <= now + 1e-9:
            arrival, seq, ts, data = pending.pop(0)
            buffer.push(seq, ts, data, SSRC, arrival)
        results.append(buffer.pop())
    return results


def sized(n: int, samples: int) -> bytes:
    """A G.711-like payload: one byte per sample, all of them `n`."""
    return bytes([n]) * samples


def audio_samples(results: list[bytes | Lost | None]) -> int:
    return sum(r.samples if isinstance(r, Lost) else len(r) for r in results if r is not None)


def test_10ms_packets_are_joined_two_per_tick() -> None:
    packets = [(n * 0.01, n, n * 80, sized(n, 80)) for n in range(20)]
    results = simulate(JitterBuffer(RATE, min_delay_ms=40), packets, 0.3)
    out = [r for r in results if r is not None]
    assert all(isinstance(r, bytes) and len(r) == TICK for r in out[:10])
    assert b"".join(out[:10]) == b"".join(p[3] for p in packets)  # type: ignore[arg-type]


def test_10ms_ticks_pop_10ms_packets_one_by_one() -> None:
    packets = [(n * 0.01, n, n * 80, sized(n, 80)) for n in range(20)]
    results = simulate(JitterBuffer(RATE, frame_ms=10, min_delay_ms=20), packets, 0.4, tick_s=0.01)
    assert [r[0] for r in results if isinstance(r, bytes)] == list(range(20))
    assert not any(isinstance(r, Lost) for r in results[: results.index(sized(19, 80))])


def test_40ms_packets_leave_every_other_tick_empty() -> None:
    packets = [(n * 0.04, n, n * 320, sized(n, 320)) for n in range(10)]
    results = simulate(JitterBuffer(RATE, min_delay_ms=40), packets, 0.6)
    start = next(i for i, r in enumerate(results) if r is not None)
    playing = results[start : start + 20]
    assert [r[0] if isinstance(r, bytes) else r for r in playing] == [x for n in range(10) for x in (n, None)]


def test_lost_30ms_packet_is_concealed_as_30ms() -> None:
    packets = [(n * 0.03, n, n * 240, sized(n, 240)) for n in range(12) if n != 5]
    buffer = JitterBuffer(RATE, min_delay_ms=40)
    results = simulate(buffer, packets, 0.6)
    results = results[: results.index(sized(11, 240)) + 1]  # concealment after the end is not loss
    lost = [r for r in results if isinstance(r, Lost)]
    assert lost == [Lost(240)]
    assert buffer.stats.lost == 1
    # Every sample of the 360 ms stream comes out once, audio or concealment, none invented.
    assert audio_samples(results) == 12 * 240


def test_marker_after_a_pause_restarts_playout_at_the_target_depth() -> None:
    feed = Feed(JitterBuffer(RATE, min_delay_ms=40, max_delay_ms=400))
    assert stream(feed, [0, 1, 2, 3]) == [0, 1, 2, 3]
    lost_before = sum(isinstance(r, Lost) for r in feed.ticks(2))
    # The sender's clock jumps 600 ms at a talkspurt (under the resync threshold, over max delay).
    results = []
    for n in range(4):
        feed.buffer.push(4 + n, (4 + n) * TICK + 600 * 8, payload(4 + n), SSRC, feed.now, marker=n == 0)
        results.append(feed.tick())
    results += feed.ticks(4)
    assert played(results) == [4, 5, 6, 7, "lost"]  # no 600 ms of concealment before the speech
    assert results.index(payload(4)) <= 40 // 20 + 1
    assert feed.buffer.stats.resets == 0 and lost_before <= 2


def test_the_last_packets_play_out_even_while_the_depth_is_growing() -> None:
    buffer = JitterBuffer(RATE, min_delay_ms=20, max_delay_ms=200)
    packets = [(n * 0.02 + (0.05 if n % 2 else 0.0), n, n * TICK, sized(n, TICK)) for n in range(30)]
    results = simulate(buffer, packets, 1.5)
    played_seqs = [r[0] for r in results if isinstance(r, bytes)]
    assert buffer.stats.depth_ms > 60  # grown under the jitter: late odd packets at first...
    assert played_seqs[-20:] == list(range(10, 30))  # ...then every one, to the very last
    assert not any(isinstance(r, Lost) for r in results[: results.index(sized(29, TICK))][-20:])


def test_late_and_reordered_arrivals_count_as_jitter() -> None:
    steady, shuffled = JitterBuffer(RATE), JitterBuffer(RATE)
    for n in range(50):
        steady.push(n, n * TICK, payload(n), SSRC, n * 0.02)
        m = n ^ 1  # pairs swapped: 1, 0, 3, 2, ...
        shuffled.push(m, m * TICK, payload(m), SSRC, n * 0.02)
    assert steady.stats.jitter_ms < 0.1
    assert shuffled.stats.jitter_ms > 10
    # The first to arrive (1) set the playout start, so 0 was late; every other pair reordered.
    assert (shuffled.stats.late, shuffled.stats.reordered) == (1, 24)


def test_bad_frame_size_is_our_misuse() -> None:
    with pytest.raises(ValueError, match="0 ms at 8000 Hz is not a whole positive number of samples"):
        JitterBuffer(RATE, frame_ms=0)
