"""The inbound jitter buffer: RTP payloads in as they arrive, in order out as soon as they can be.

Sans-I/O and pulled: `push` on every arrival (its `arrival` time feeds the RFC 3550 jitter
estimate that sets the depth), `next_in_order` right after it (the packet that follows the last
one handed out, at once: a model needs the caller's audio in order, not evenly paced), `pop`
once per 20 ms media-clock tick. The playout position `pop` keeps follows RTP timestamps a depth
behind the newest audio: what is still missing when it gets there is concealed, what arrives
after that is late. So any ptime works and a silence-suppressed gap is not loss.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from voicegw.audio.format import FRAME_MS
from voicegw.audio.timing import SEQ_MODULUS, TS_MODULUS, InterarrivalJitter, unwrap

RESYNC_S = 1.0
"""A timestamp this far from the playout position is a new timeline (a jump), not late or early."""

SHRINK_AFTER_TICKS = 50
"""Ticks the buffer must stay too deep before it drops a frame to come back down."""

REMEMBERED_SEQS = 128


@dataclass(frozen=True, slots=True)
class Lost:
    """A gap of `samples` (RTP clock) with no packet: conceal it."""

    samples: int


@dataclass(slots=True)
class JitterStats:
    """Counters of one `JitterBuffer`, for RTCP and the call's stats."""

    received: int = 0
    """Packets pushed, whatever became of them."""

    duplicates: int = 0
    late: int = 0
    """Arrived after their playout time: dropped."""

    reordered: int = 0
    """Arrived after a packet with a higher sequence number, in time to be played."""

    lost: int = 0
    """Gaps concealed while later packets were waiting."""

    resets: int = 0
    """SSRC changes and timestamp jumps that restarted playout."""

    depth_ms: int = 0
    """The current target delay."""

    jitter_ms: float = 0.0
    """RFC 3550 interarrival jitter estimate, which sets the target delay."""


class JitterBuffer:
    """Reorders, de-duplicates and delays one RTP stream's payloads by an adaptive depth."""

    def __init__(
        self,
        clock_rate: int,
        *,
        frame_ms: int = FRAME_MS,
        min_delay_ms: int = 20,
        max_delay_ms: int = 200,
    ) -> None:
        if clock_rate <= 0 or frame_ms <= 0 or clock_rate * frame_ms % 1000:
            raise ValueError(f"{frame_ms} ms at {clock_rate} Hz is not a whole positive number of samples")
        if not 0 < min_delay_ms <= max_delay_ms:
            raise ValueError(f"need 0 < min_delay_ms <= max_delay_ms, got {min_delay_ms}, {max_delay_ms}")
        self.clock_rate = clock_rate
        self.frame_ms = frame_ms
        self.min_delay_ms = min_delay_ms
        self.max_delay_ms = max_delay_ms
        self._tick = clock_rate * frame_ms // 1000
        self._horizon = clock_rate * (max_delay_ms + 2 * frame_ms) // 1000
        self.stats = JitterStats(depth_ms=min_delay_ms)
        self._ssrc: int | None = None
        self.last_arrival = 0.0
        """The `arrival` of the newest packet `pop` handed out."""
        self._jitter = InterarrivalJitter(clock_rate)
        self._restart()

    def _restart(self) -> None:
        self._packets: dict[int, tuple[int, bytes, float]] = {}
        """Extended sequence number -> (extended timestamp, payload, arrival)."""
        self._played: deque[int] = deque()
        self._played_set: set[int] = set()
        """The same `REMEMBERED_SEQS` numbers: the deque says which to forget, the set is asked
        on every arrival (a scan of the deque cost more than the rest of `push`)."""
        self._highest_seq: int | None = None
        self._last_ts: int | None = None
        """Timestamp of the highest sequence number: the reference for unwrapping."""
        self._newest_ts = 0
        """The highest timestamp queued: packets leave oldest first, so while any is queued this
        one is (kept here rather than found by a scan every tick)."""
        self._jitter.new_timeline()
        self._play_ts: int | None = None
        self._covered_until = 0
        self._packet_samples = self._tick
        self._wait_ticks = 0
        self._underrun_ticks = 0
        self._deep_ticks = 0
        self._arrived = False
        """A packet was queued since the last tick: the stream is live."""
        self._taken_seq: int | None = None
        """The highest sequence number handed out: its successor may leave on arrival."""

    # --- input ----------------------------------------------------------------------------

    def push(
        self, seq: int, timestamp: int, payload: bytes, ssrc: int, arrival: float, *, marker: bool = False
    ) -> None:
        """Add a packet that just arrived (`arrival` in seconds, any monotonic clock).

        `marker` is the RTP marker bit: on a talkspurt that starts after the buffer ran dry,
        playout re-primes at the current target depth, the one moment a depth change is inaudible.
        """
        self.stats.received += 1
        if ssrc != self._ssrc:
            if self._ssrc is not None:
                self.stats.resets += 1
            self._ssrc = ssrc
            self._restart()
        ext_seq = seq if self._highest_seq is None else unwrap(seq, self._highest_seq, SEQ_MODULUS)
        ext_ts = timestamp if self._last_ts is None else unwrap(timestamp, self._last_ts, TS_MODULUS)

        if ext_seq in self._packets or ext_seq in self._played_set:
            self.stats.duplicates += 1
            return
        if self._play_ts is not None and abs(ext_ts - self._play_ts) > RESYNC_S * self.clock_rate:
            self.stats.resets += 1
            self._restart()
            ext_seq, ext_ts = seq, timestamp
        elif marker and not self._packets and self._play_ts is not None and ext_ts >= self._play_ts:
            # A new talkspurt: the sender's clock may have jumped across the pause, so neither the
            # old playout position nor the transit time across the pause means anything.
            self._play_ts = None
            self._jitter.new_timeline()
        # Every packet counts, in arrival order: late and reordered ones are the jitter.
        self._jitter.add(ext_ts, arrival)
        self.stats.jitter_ms = self._jitter.ms
        if self._play_ts is not None and ext_ts < self._play_ts:
            self.stats.late += 1
            return

        if self._highest_seq is not None and ext_seq < self._highest_seq:
            self.stats.reordered += 1
        else:
            in_sequence = self._highest_seq is not None and ext_seq == self._highest_seq + 1
            if in_sequence and self._last_ts is not None:
                step = ext_ts - self._last_ts
                if 0 < step <= self.max_delay_ms * self.clock_rate // 1000:
                    self._packet_samples = step
            self._highest_seq = ext_seq
            self._last_ts = ext_ts
        self._packets[ext_seq] = (ext_ts, payload, arrival)
        self._newest_ts = max(self._newest_ts, ext_ts) if len(self._packets) > 1 else ext_ts
        self._arrived = True

        if self._play_ts is None:
            self._play_ts = ext_ts
            self._covered_until = ext_ts
            self._taken_seq = None
            # One extra tick absorbs the phase between arrivals and the media clock.
            self._wait_ticks = self._target_ms() // self.frame_ms + 1

    def _target_ms(self) -> int:
        wanted = self.frame_ms + 3 * self.stats.jitter_ms
        frames = -(-int(wanted) // self.frame_ms)
        target = min(self.max_delay_ms, max(self.min_delay_ms, frames * self.frame_ms))
        self.stats.depth_ms = target
        return target

    # --- output ---------------------------------------------------------------------------

    def next_in_order(self) -> bytes | None:
        """The packet that follows the last one handed out, if it is here: call after each
        `push` (and `pop`) until None. A packet behind a gap waits for `pop` to conceal the gap;
        audio more than the deepest buffer ahead of the playout position (a peer sending
        faster than real time) waits for its turn too."""
        if self._taken_seq is None or self._play_ts is None:
            # A new timeline: its first packet starts it.
            if self._play_ts is None or not self._packets:
                return None
            seq = min(self._packets)
            if self._packets[seq][0] != self._play_ts:
                return None
        else:
            seq = self._taken_seq + 1
        packet = self._packets.get(seq)
        if packet is None or packet[0] - self._play_ts > self._horizon:
            return None
        self._covered_until = max(self._covered_until, packet[0] + self._packet_samples)
        return self._take(seq)

    def pop(self) -> bytes | Lost | None:
        """What is due at this tick: a payload, a `Lost` gap to conceal, or None (nothing due).

        None while priming, while a packet longer than a tick (30, 40 ms) still covers this one,
        and while the buffer holds playout for a tick to grow. Packets shorter than a tick come
        out joined, which suits sample-based codecs (G.711, G.722); Opus packets cannot be
        joined, so for 10 ms Opus build the buffer with ``frame_ms=10`` and pop twice per tick.
        """
        if self._play_ts is None:
            return None
        if self._wait_ticks > 0:
            self._wait_ticks -= 1
            return None
        if self._adapt():
            return None
        window_end = self._play_ts + self._tick
        due = sorted((ts, seq) for seq, (ts, _, _) in self._packets.items() if ts < window_end)
        result: bytes | Lost | None
        if due:
            result = b"".join(self._take(seq) for _, seq in due)
            self._covered_until = due[-1][0] + self._packet_samples
            self._underrun_ticks = 0
        elif self._covered_until > self._play_ts:
            result = None  # a packet longer than one tick is still playing
        elif self._packets:
            # A gap with later packets waiting: conceal up to the next packet when it starts
            # within the next tick, so a lost 30 ms packet is concealed as 30 ms, not 20.
            self.stats.lost += 1
            # What waited behind the gap follows the concealment in order (`next_in_order`).
            self._taken_seq = min(self._packets) - 1
            following = min(ts for ts, _, _ in self._packets.values())
            window_end = following if following < window_end + self._tick else window_end
            result = self._conceal_until(window_end)
        else:
            self._underrun_ticks += 1
            if self._underrun_ticks * self.frame_ms > self.max_delay_ms:
                # The sender went quiet (silence suppression, hold): wait for it to come back.
                self._play_ts = None
                return None
            result = self._conceal_until(window_end)
        self._play_ts = window_end
        return result

    def _conceal_until(self, end: int) -> Lost:
        """Concealment from the end of the audio handed out so far (the last packet may have
        stopped short of this tick) to `end`: the output stays continuous to the sample."""
        start, self._covered_until = self._covered_until, end
        return Lost(end - start)

    def _take(self, seq: int) -> bytes:
        if self._taken_seq is None or seq > self._taken_seq:
            self._taken_seq = seq
        self._played.append(seq)
        self._played_set.add(seq)
        if len(self._played) > REMEMBERED_SEQS:
            self._played_set.discard(self._played.popleft())
        _, payload, self.last_arrival = self._packets.pop(seq)
        return payload

    def _adapt(self) -> bool:
        """Grow or shrink toward the target depth; True when this tick is spent stalling."""
        assert self._play_ts is not None
        if not self._packets and self._covered_until <= self._play_ts:
            self._deep_ticks = 0
            return False
        # Audio handed out in order ahead of the playout position counts as buffered: the depth
        # is how long a gap may stay open before it is concealed.
        head = self._covered_until
        if self._packets:
            head = max(head, self._newest_ts + self._packet_samples)
        depth_ms = (head - self._play_ts) * 1000 // self.clock_rate
        target = self._target_ms()
        if depth_ms > target + 2 * self.frame_ms:
            self._deep_ticks += 1
            if self._deep_ticks >= SHRINK_AFTER_TICKS:
                # Skip one tick of audio: latency comes back down once the jitter has calmed.
                self._deep_ticks = 0
                skipped_end = self._play_ts + self._tick
                for seq in [s for s, (ts, _, _) in self._packets.items() if ts < skipped_end]:
                    self._take(seq)
                self._play_ts = skipped_end
                self._covered_until = max(self._covered_until, skipped_end)
            return False
        self._deep_ticks = 0
        # Too shallow for the measured jitter: hold playout one tick to build depth, but only
        # while packets keep coming (after the last one, holding would never end).
        arrived, self._arrived = self._arrived, False
        return arrived and depth_ms + self.frame_ms < target
