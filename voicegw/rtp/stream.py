"""The sans-I/O media pipeline of one call, ticked every 20 ms by the media clock.

Inbound: `RtpSession` events -> `JitterBuffer.push` on arrival, and at once every packet now
in sequence -> decode -> resample to the agent rate -> 20 ms caller frames (the model needs the
caller's audio in order, not evenly paced); on each tick `pop()` conceals a gap still open a
jitter buffer's depth later, and the recording tap takes one caller frame.
Outbound: on each tick the next `PlayoutBuffer` frame, or silence so the far end's jitter
buffer and any NAT binding keep seeing a steady stream -> resample to the codec rate ->
encode, one tick ahead -> `RtpSession.send_media` at the start of the next tick. DTMF
replaces audio while it plays; hold stops sending.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeAlias

import structlog

from voicegw.audio.codecs import Codec, codec_for
from voicegw.audio.format import BYTES_PER_SAMPLE, FRAME_MS
from voicegw.audio.jitter import JitterBuffer, Lost
from voicegw.audio.playout import PlayoutBuffer
from voicegw.audio.resample import Resampler
from voicegw.rtp.events import (
    Address,
    BadPacket,
    DtmfDigit,
    EndpointEvent,
    MediaReceived,
    MediaTimeout,
    RemoteLatched,
)
from voicegw.rtp.session import RTCP_INTERVAL_S, RtpSession, RtpSessionConfig
from voicegw.rtp.srtp import SrtpKeys

log = structlog.get_logger(__name__)


MAX_TAP_BACKLOG_FRAMES = 5
"""Caller frames waiting for the recording tap's tick (packets arrive unevenly, the tap takes one
a tick) beyond which the oldest is left out of the recording (it did reach the consumer)."""


TALKSPURT_PAUSE_TICKS = 5
"""Ticks of silence after which agent audio starts a talkspurt, and its first packet leaves on
arrival. A shorter pause (an echo whose caller packet came a little late) keeps its tick: sent
early, its packet would come less than 20 ms after the one before it, once per stutter."""


TimedFrame: TypeAlias = tuple[bytes, float | None]
"""A 20 ms caller frame and the arrival time of its newest packet (None: concealed)."""


MediaTap: TypeAlias = Callable[[bytes, bytes], None]
"""(caller frame, agent frame) of one tick, 20 ms each at the agent rate (recording)."""


@dataclass(frozen=True, slots=True)
class StreamConfig:
    """One call's negotiated media and the agent side's PCM format."""

    codec: str
    """SDP encoding name (``"PCMU"``, ``"opus"``...), see `voicegw.audio.codecs.codec_for`."""

    payload_type: int
    sample_rate: int
    """Agent-side PCM rate of caller frames and of `play()` audio."""

    remote: Address | None = None
    remote_rtcp: Address | None = None
    telephone_event_pt: int | None = None
    ptime_ms: int = FRAME_MS
    """Outbound packet duration: a multiple of 20 ms (20 only for Opus)."""

    media_timeout: float = 30.0
    """Seconds without RTP (not on hold) before a `MediaTimeout` event."""

    jitter_min_ms: int = 20
    jitter_max_ms: int = 200
    rtcp_interval: float = RTCP_INTERVAL_S
    unix_offset: float = 0.0
    cname: str = "voicegw"
    srtp: SrtpKeys | None = None
    """SDES keys when the call negotiated SRTP (RTP/SAVP with ``a=crypto``)."""


def _frame_bytes(rate: int, ms: int = FRAME_MS) -> int:
    return rate * ms // 1000 * BYTES_PER_SAMPLE


class MediaStream:
    """Jitter buffer, codecs, resamplers and playout around one `RtpSession`."""

    def __init__(
        self,
        config: StreamConfig,
        *,
        now: float,
        rng: random.Random | None = None,
        logger: Any = None,
    ) -> None:
        codec_cls = codec_for(config.codec)
        if config.ptime_ms <= 0 or config.ptime_ms % FRAME_MS:
            raise ValueError(f"ptime {config.ptime_ms} ms is not a multiple of {FRAME_MS} ms")
        if config.ptime_ms != FRAME_MS and codec_cls.name.lower() == "opus":
            raise ValueError("Opus is sent in 20 ms packets only")
        self.config = config
        self.codec: type[Codec] = codec_cls
        # The endpoint passes its logger, bound with the call's port and SSRC.
        self._log = (logger or log).bind(codec=codec_cls.name)
        self.session = RtpSession(
            RtpSessionConfig(
                clock_rate=codec_cls.clock_rate,
                payload_type=config.payload_type,
                telephone_event_pt=config.telephone_event_pt,
                remote=config.remote,
                remote_rtcp=config.remote_rtcp,
                rtcp_interval=config.rtcp_interval,
                unix_offset=config.unix_offset,
                cname=config.cname,
                srtp=config.srtp,
            ),
            now=now,
            rng=rng,
        )
        self._decoder = codec_cls()
        self._encoder = codec_cls()
        self._jitter = JitterBuffer(
            codec_cls.clock_rate,
            frame_ms=FRAME_MS,
            min_delay_ms=config.jitter_min_ms,
            max_delay_ms=config.jitter_max_ms,
        )
        self._playout = PlayoutBuffer(config.sample_rate, frame_ms=FRAME_MS)
        self._to_agent = Resampler(codec_cls.sample_rate, config.sample_rate)
        self._to_codec = Resampler(config.sample_rate, codec_cls.sample_rate)
        self._agent_frame = _frame_bytes(config.sample_rate)
        self._codec_frame = _frame_bytes(codec_cls.sample_rate)
        self._packet_bytes = _frame_bytes(codec_cls.sample_rate, config.ptime_ms)
        self._packet_samples = config.ptime_ms * codec_cls.clock_rate // 1000
        self._tick_samples = FRAME_MS * codec_cls.clock_rate // 1000
        self._silence = bytes(self._agent_frame)
        self._silent_packet: bytes | None = None
        """A packet of silence encoded once, where that is exact: one frame a packet, no resampling
        in between and a codec without state (G.711). Agent calls send silence most of the time."""
        if (
            codec_cls.stateless
            and config.sample_rate == codec_cls.sample_rate
            and self._packet_bytes == self._codec_frame
        ):
            self._silent_packet = self._encoder.encode(bytes(self._packet_bytes))

        self._inbound = bytearray()
        self._outbound = bytearray()
        self._ready: bytes | None = None
        self._ready_marker = False
        self._pulled_ahead = False
        self._frames: list[TimedFrame] = []
        self._inbound_arrival: float | None = None
        """When the newest caller packet decoded into `_inbound` arrived (None: concealment)."""
        self._pending_received_at: float | None = None
        self._pulled_silence = True
        """The frame pulled last (into the packet about to leave) was silence: no agent audio ahead."""
        self._silent_pulls = 0
        """Frames of silence pulled in a row (`TALKSPURT_PAUSE_TICKS`)."""
        self._pulled_received_at: float | None = None
        self.sent_received_at: float | None = None
        """When the model audio in the packet sent this tick was received, if it is the first
        audio of a talkspurt (`voicegw.contracts.latency`): the endpoint takes it once sent."""
        self._events: list[EndpointEvent] = []
        self._logged_reasons: set[str] = set()

        self.tap: MediaTap | None = None
        """Called once per tick with (caller frame, agent frame), silence where there was none."""
        self._tap_caller: deque[bytes] = deque()
        self._tap_agent: deque[bytes] = deque()
        """Agent frames pulled and not yet tapped: one a tick, and one more for a while after
        `play` put audio in place of a packet of silence (`_start_sooner`)."""

        self.held = False
        self._timeout_since = now
        self._timeout_fired = False
        self.media_packets_in = 0
        self.frames_out = 0
        self.frames_concealed = 0
        self.tap_dropped_ms = 0

    # ---------------------------------------------------------------- inbound

    def receive(self, data: bytes, addr: Address, now: float, *, rtcp: bool = False) -> None:
        """Feed a datagram from the RTP (or RTCP) socket."""
        self.session.receive(data, addr, now, rtcp=rtcp)
        self._drain_session()

    def _drain_session(self) -> None:
        while (event := self.session.next_event()) is not None:
            match event:
                case MediaReceived():
                    self.media_packets_in += 1
                    self._jitter.push(
                        event.sequence_number,
                        event.timestamp,
                        event.payload,
                        event.ssrc,
                        event.arrival,
                        marker=event.marker,
                    )
                    self._decode_in_order()
                case DtmfDigit():
                    self._events.append(event)
                case RemoteLatched():
                    self._log.info("rtp_remote_latched", address=event.address, previous=event.previous)
                case BadPacket() if event.reason not in self._logged_reasons:
                    # Only the first of each kind: a flood of garbage must not flood the log too.
                    self._logged_reasons.add(event.reason)
                    self._log.info(
                        "rtp_bad_packet", reason=event.reason, address=event.address, detail=event.detail
                    )
                case _:
                    # Later bad packets and RTCP are counted by the session.
                    pass

    def _decode_in_order(self) -> None:
        """Decode every packet the jitter buffer can hand out in sequence now."""
        jitter = self._jitter
        while (payload := jitter.next_in_order()) is not None:
            self._inbound_arrival = jitter.last_arrival
            self._caller_pcm(self._decoder.decode(payload))

    def _receive_tick(self) -> None:
        item = self._jitter.pop()
        if isinstance(item, Lost):
            self.frames_concealed += 1
            self._inbound_arrival = None
            self._caller_pcm(
                self._decoder.conceal(item.samples * self.codec.sample_rate // self.codec.clock_rate)
            )
        elif item is not None:
            self._inbound_arrival = self._jitter.last_arrival
            self._caller_pcm(self._decoder.decode(item))
        # What waited behind a gap just concealed follows it.
        self._decode_in_order()

    def _caller_pcm(self, pcm: bytes) -> None:
        """Cut decoded audio into 20 ms caller frames at the agent rate."""
        if not pcm:
            return
        pcm = self._to_agent.process(pcm)
        if not self._inbound and len(pcm) == self._agent_frame:
            self._caller_frame(pcm)  # one packet, one frame: the usual case needs no copying
            return
        self._inbound += pcm
        while len(self._inbound) >= self._agent_frame:
            self._caller_frame(bytes(self._inbound[: self._agent_frame]))
            del self._inbound[: self._agent_frame]

    def _caller_frame(self, pcm: bytes) -> None:
        if len(self._tap_caller) >= MAX_TAP_BACKLOG_FRAMES:
            self._tap_caller.popleft()
            self.tap_dropped_ms += FRAME_MS
        self._tap_caller.append(pcm)
        self._frames.append((pcm, self._inbound_arrival))
        self.frames_out += 1

    # --------------------------------------------------------------- outbound

    def play(
        self, pcm: bytes, item_id: str, received_at: float | None = None, *, now: float | None = None
    ) -> None:
        """Queue agent audio (mono s16le at the agent rate), received from the model at
        `received_at` (`time.monotonic()`, for the gateway latency; None: not timed).

        With `now`, audio that starts a talkspurt (the call sent only silence for
        `TALKSPURT_PAUSE_TICKS`) has its first packet queued on the session at once, marked,
        instead of at the next tick: take it with `session.datagrams_to_send`."""
        idle = self._pulled_silence and not self._playout.queued_ms
        if received_at is not None and idle:
            # Nothing ahead of it: the wait until its first packet leaves is the gateway's own.
            self._pending_received_at = received_at
        self._playout.enqueue(pcm, item_id)
        if idle:
            self._start_sooner(now)

    def _start_sooner(self, now: float | None) -> None:
        """Agent audio came while the packet encoded for the next tick is silence: encode the
        audio in its place, so it leaves a tick sooner (20 ms less outbound latency), or at once
        when it starts a talkspurt. Only where that packet is `_silent_packet`: one frame, of
        which nothing else was made."""
        if self._ready is None or self._ready is not self._silent_packet:
            return
        talkspurt = self._silent_pulls > TALKSPURT_PAUSE_TICKS
        self._ready = None
        self._pull_frame()
        if now is None or not talkspurt or not self._sending_audio(now):
            return
        # RFC 3551 4.1: the first packet of a talkspurt carries the marker, and the far end's
        # playout re-syncs on it, so it may come less than a packet after the silence before
        # it. The next packet goes at the next tick as usual: the call keeps the shared clock's
        # phase, and its RTP timestamps gain a packet on that clock (the far end's playout
        # absorbs it at the marker).
        self._ready_marker = True
        self._send_ready(now)
        self._pull_frame()

    def flush(self) -> int:
        """Drop queued agent audio; ms of the current item already sent."""
        self._pending_received_at = None
        return self._playout.flush()

    def played_ms(self, item_id: str) -> int:
        return self._playout.played_ms(item_id)

    def send_dtmf(self, digit: str, duration_ms: int, now: float) -> None:
        self.session.send_dtmf(digit, duration_ms, now)

    def set_hold(self, held: bool, now: float) -> None:
        """On hold nothing is sent and silence is expected, so the media timeout pauses."""
        if self.held and not held:
            self._timeout_since = now
            self._timeout_fired = False
            self._ready_marker = True
        self.held = held

    def update_remote(self, remote: Address, remote_rtcp: Address | None = None) -> None:
        self.session.update_remote(remote, remote_rtcp)

    def _sending_audio(self, now: float) -> bool:
        return not self.held and not self.session.sending_dtmf(now)

    def _send_tick(self, now: float) -> None:
        if not self._sending_audio(now):
            # Media time runs on; the far end sees the gap in timestamps, not a compressed stream.
            self.session.advance(self._tick_samples)
            self._ready_marker = True
            return
        if not self._pulled_ahead:
            self._pull_frame()  # the first tick, or the first after hold or DTMF
        self._pulled_ahead = False
        if self._ready is not None:
            self._send_ready(now)

    def _send_ready(self, now: float) -> None:
        assert self._ready is not None
        self.session.send_media(self._ready, self._packet_samples, marker=self._ready_marker, now=now)
        self._ready = None
        self._ready_marker = False
        self.sent_received_at, self._pulled_received_at = self._pulled_received_at, None

    def _pull_frame(self) -> None:
        """Take one tick of agent audio (or silence) and encode it once a packet is full.

        Runs in the second half of the previous tick, so the first half only sends: every
        call's packet leaves at the start of the tick, and one call's resampling and encoding
        never delays the next call's packet. The price is 20 ms of outbound latency, and
        `played_ms` counting a frame up to 20 ms before it reaches the wire.
        """
        frame = self._playout.next_frame()
        self._pulled_silence = frame is None
        self._silent_pulls = self._silent_pulls + 1 if frame is None else 0
        if frame is not None and self._pending_received_at is not None:
            self._pulled_received_at, self._pending_received_at = self._pending_received_at, None
        pcm = frame.pcm if frame is not None else self._silence
        if frame is not None or not self._tap_agent:
            # A frame of silence while one is waiting: the tap catches up with the wire.
            self._tap_agent.append(pcm)
        self._ready_marker |= frame is not None and frame.marker
        if frame is None and self._silent_packet is not None:
            self._ready = self._silent_packet
            return
        pcm = self._to_codec.process(pcm)
        if not self._outbound and len(pcm) == self._packet_bytes == self._codec_frame:
            self._ready = self._encoder.encode(pcm)  # one frame, one packet: no copying
            return
        self._outbound += pcm
        if len(self._outbound) < self._codec_frame:
            # The resampler's start-up latency: pad once so a packet still leaves on every tick.
            self._outbound[:0] = bytes(self._codec_frame - len(self._outbound))
        if len(self._outbound) < self._packet_bytes:
            return
        chunk = self._outbound[: self._packet_bytes]
        del self._outbound[: self._packet_bytes]
        self._ready = b"".join(
            self._encoder.encode(bytes(chunk[i : i + self._codec_frame]))
            for i in range(0, len(chunk), self._codec_frame)
        )

    # ------------------------------------------------------------------- tick

    def tick(self, now: float) -> None:
        """One 20 ms step: `tick_send` then `tick_receive`."""
        self.tick_send(now)
        self.tick_receive(now)

    def tick_send(self, now: float) -> None:
        """The latency-critical half of a tick: timers (RTCP, DTMF) and this tick's packet."""
        timer = self.session.get_timer()
        if timer is not None and timer <= now:
            self.session.handle_timer(now)
        self._send_tick(now)

    def tick_receive(self, now: float) -> None:
        """The other half: one caller frame out of the jitter buffer, the media timeout, and
        the next tick's outbound packet encoded ahead."""
        self._drain_session()
        self._receive_tick()
        self._check_timeout(now)
        if not self._pulled_ahead and self._sending_audio(now):
            self._pull_frame()
            self._pulled_ahead = True
        agent = self._tap_agent.popleft() if self._tap_agent else self._silence
        caller = self._tap_caller.popleft() if self._tap_caller else self._silence
        if self.tap is not None:
            # One pair per tick keeps both directions on the media clock's timeline.
            self.tap(caller, agent)

    def _check_timeout(self, now: float) -> None:
        last = self.session.last_received_at
        if last is not None and last > self._timeout_since:
            self._timeout_since = last
            self._timeout_fired = False
        silence = now - self._timeout_since
        if not self.held and not self._timeout_fired and silence >= self.config.media_timeout:
            self._timeout_fired = True
            self._events.append(MediaTimeout(silence_s=round(silence, 3)))

    def take_frames(self) -> list[TimedFrame]:
        """Caller frames produced since the last call (20 ms each at the agent rate), each with
        the arrival time of its newest packet (None for concealment)."""
        frames, self._frames = self._frames, []
        return frames

    def take_events(self) -> list[EndpointEvent]:
        """DTMF digits and media timeouts since the last call."""
        events, self._events = self._events, []
        return events

    def close(self, now: float) -> None:
        """Queue the RTCP BYE; nothing is sent after this."""
        self.session.close(now)

    @property
    def stats(self) -> dict[str, Any]:
        """Counters for logs and metrics (names stable: they end up on dashboards)."""
        session = self.session
        receiver = session.receiver
        jitter = self._jitter.stats
        return {
            "codec": self.codec.name,
            "srtp": session.srtp.suite.name if session.srtp is not None else None,
            "sample_rate": self.config.sample_rate,
            "ssrc": session.ssrc,
            "remote": session.remote,
            "remote_ssrc": session.remote_ssrc,
            "packets_in": self.media_packets_in,
            "packets_out": session.sender.packets_sent,
            "octets_out": session.sender.octets_sent,
            "lost": receiver.packets_lost if receiver else 0,
            "jitter_ms": round(receiver.jitter_ms, 2) if receiver else 0.0,
            "late": jitter.late,
            "duplicates": jitter.duplicates,
            "reordered": jitter.reordered,
            "jitter_buffer_ms": jitter.depth_ms,
            "frames_out": self.frames_out,
            "frames_concealed": self.frames_concealed,
            "tap_dropped_ms": self.tap_dropped_ms,
            "bad_packets": sum(session.bad_packets.values()),
            "bad_packets_by_reason": dict(session.bad_packets),
            "rtcp_in": session.rtcp_received,
            "rtcp_out": session.rtcp_sent,
            "remote_fraction_lost": session.sender.remote_fraction_lost / 256,
            "remote_jitter": session.sender.remote_jitter,
            "rtt_ms": None if session.sender.rtt is None else round(session.sender.rtt * 1000, 1),
            "remote_bye": session.remote_bye,
        }
