"""`WebRtcTransport`: a browser (or any WebRTC peer) is the caller, over an aiortc peer connection.

The page makes the offer (one Opus audio track, sendrecv, and a data channel); `accept()` returns
the answer. Caller audio arrives as aiortc's decoded `av.AudioFrame`s (48 kHz, often stereo) and
leaves `frames()` as 20 ms mono s16 frames at `sample_rate`. Agent audio goes out through
`AgentAudioTrack`, whose `recv()` hands aiortc's sender one frame per tick of the shared
`MediaClock` (silence when nothing is queued), so `played_ms()` counts what was encoded for the
wire and `flush()` silences the browser within one frame. The data channel carries JSON messages
both ways: `send_message()` to the page, and ``{"type": "hangup"}`` from it.

ICE uses host candidates only (`RTCConfiguration(iceServers=[])`): aiortc's default STUN server
is a public Google address, which is unreachable here and not ours to contact.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from fractions import Fraction
from typing import Any

import av
import structlog
from aiortc import (
    MediaStreamError,
    MediaStreamTrack,
    RTCConfiguration,
    RTCDataChannel,
    RTCPeerConnection,
    RTCSessionDescription,
)

from voicegw.audio.codecs import frame_to_mono_pcm
from voicegw.audio.format import BYTES_PER_SAMPLE, FRAME_MS
from voicegw.audio.playout import PlayoutBuffer
from voicegw.audio.resample import Resampler
from voicegw.contracts.transport import (
    AudioFrame,
    CallEvent,
    CallStateChanged,
    EndReason,
    TransportClosed,
)
from voicegw.rtp.clock import MediaClock
from voicegw.transports.queues import queued_frames, until_end

log = structlog.get_logger()

DEFAULT_SAMPLE_RATE = 24000
MAX_DUE_FRAMES = 2
"""Ticks the agent track remembers while aiortc's sender is not asking: a stall costs at most
this many back-to-back frames, never a burst."""

MAX_PENDING_MESSAGES = 256
"""Messages kept for the page until its data channel opens; older ones are dropped first."""

HANGUP_MESSAGE = "hangup"


class WebRtcOfferError(ValueError):
    """The peer's offer cannot be answered (not SDP, or no audio to talk over)."""


def peer_connection() -> RTCPeerConnection:
    """An aiortc peer connection with no STUN/TURN server: host candidates only."""
    return RTCPeerConnection(RTCConfiguration(iceServers=[]))


class CallerFrames:
    """Sans-I/O: decoded frames of any rate and layout in, 20 ms mono s16 frames at `sample_rate` out."""

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self._frame_bytes = sample_rate * FRAME_MS // 1000 * BYTES_PER_SAMPLE
        self._resampler: Resampler | None = None
        self._pending = bytearray()

    def feed(self, frame: av.AudioFrame) -> list[bytes]:
        """The whole 20 ms frames that `frame` completes (the remainder waits for the next one)."""
        if self._resampler is None or self._resampler.from_rate != frame.sample_rate:
            self._resampler = Resampler(frame.sample_rate, self.sample_rate)
        self._pending.extend(self._resampler.process(frame_to_mono_pcm(frame)))
        count = len(self._pending) // self._frame_bytes
        out = [
            bytes(self._pending[i * self._frame_bytes : (i + 1) * self._frame_bytes]) for i in range(count)
        ]
        del self._pending[: count * self._frame_bytes]
        return out


class AgentAudioTrack(MediaStreamTrack):
    """The agent's voice as an aiortc track, paced by the media clock (see the module docstring)."""

    kind = "audio"

    def __init__(self, sample_rate: int) -> None:
        super().__init__()
        self.sample_rate = sample_rate
        self.playout = PlayoutBuffer(sample_rate, frame_ms=FRAME_MS)
        self._samples = sample_rate * FRAME_MS // 1000
        self._silence = bytes(self._samples * BYTES_PER_SAMPLE)
        self._due = 0
        self._wake = asyncio.Event()
        self._pts = 0

    def tick(self, now: float) -> None:
        """`MediaClock`: one more frame is due."""
        self._due = min(self._due + 1, MAX_DUE_FRAMES)
        self._wake.set()

    async def recv(self) -> av.AudioFrame:
        """The next 20 ms frame, at the next tick: agent audio when queued, else silence."""
        while self._due == 0 and self.readyState == "live":
            self._wake.clear()
            await self._wake.wait()
        if self.readyState != "live":
            raise MediaStreamError
        self._due -= 1
        out = self.playout.next_frame()
        pcm = out.pcm if out is not None else self._silence
        frame = av.AudioFrame(format="s16", layout="mono", samples=self._samples)
        frame.planes[0].update(pcm)
        frame.sample_rate = self.sample_rate
        frame.pts = self._pts
        frame.time_base = Fraction(1, self.sample_rate)
        self._pts += self._samples
        return frame

    def stop(self) -> None:
        super().stop()
        self._wake.set()  # a pending recv() ends with MediaStreamError


class WebRtcTransport:
    """One browser conversation as an `AudioTransport`; create it, then `await accept(offer_sdp)`."""

    def __init__(
        self,
        *,
        sample_rate: int = DEFAULT_SAMPLE_RATE,
        clock: MediaClock | None = None,
        call_id: str | None = None,
    ) -> None:
        """`clock`: the media clock shared by every conversation (one of its own when None)."""
        self.sample_rate = sample_rate
        self.call_id = call_id or f"webrtc-{uuid.uuid4().hex[:12]}"
        self.pc = peer_connection()
        self._track = AgentAudioTrack(sample_rate)
        self._caller = CallerFrames(sample_rate)
        self._clock = clock if clock is not None else MediaClock()  # an idle clock is falsy (len 0)
        self._owns_clock = clock is None
        self._frames: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._events: asyncio.Queue[CallEvent | None] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None
        self._channel: RTCDataChannel | None = None
        self._pending: list[str] = []
        self._log = log.bind(call_id=self.call_id)
        self._answered = False
        self._ended = False
        self._closed = False
        self._frames_started = False

    @property
    def ended(self) -> bool:
        """True once the conversation is over (hang-up, failed connection, `close()`)."""
        return self._ended

    async def accept(self, offer_sdp: str) -> str:
        """Answer the peer's SDP offer; returns the answer SDP (with every ICE candidate in it)."""
        if self._closed:
            raise TransportClosed("the WebRTC transport is closed")
        pc = self.pc
        pc.on("track", self._on_track)
        pc.on("datachannel", self._on_datachannel)
        pc.on("connectionstatechange", self._on_connection_state)
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
            if not any(t.kind == "audio" for t in pc.getTransceivers()):
                raise WebRtcOfferError("the offer has no audio")
            pc.addTrack(self._track)
            await pc.setLocalDescription(await pc.createAnswer())
        except WebRtcOfferError:
            raise
        except Exception as exc:
            # aiortc checks an offer with asserts and attribute access as well as ValueError:
            # mutated offers (tests/transports/test_webrtc_offers.py) raise AssertionError,
            # AttributeError and TypeError from these three calls.
            raise WebRtcOfferError(f"the offer is not usable SDP: {exc!r}") from exc
        self._clock.add(self._track)
        if self._owns_clock:
            await self._clock.start()
        return pc.localDescription.sdp

    def send_message(self, message: dict[str, Any]) -> None:
        """Send JSON to the page over the data channel (kept until the channel opens)."""
        text = json.dumps(message)
        channel = self._channel
        if channel is not None and channel.readyState == "open":
            channel.send(text)
            return
        self._pending.append(text)
        del self._pending[:-MAX_PENDING_MESSAGES]

    # --- aiortc's callbacks ------------------------------------------------------------------

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "audio" and self._reader is None and not self._closed:
            self._reader = asyncio.create_task(self._read_caller(track), name=f"{self.call_id}-caller")

    async def _read_caller(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                frame = await track.recv()
                assert isinstance(frame, av.AudioFrame)
                for pcm in self._caller.feed(frame):
                    self._frames.put_nowait(pcm)
        except MediaStreamError:
            self._end(EndReason.CALLER_HUNG_UP, "caller hung up (the audio track ended)")

    def _on_datachannel(self, channel: RTCDataChannel) -> None:
        self._channel = channel
        channel.on("message", self._on_message)
        if channel.readyState == "open":
            self._send_pending()
        else:
            channel.on("open", self._send_pending)

    def _send_pending(self) -> None:
        pending, self._pending = self._pending, []
        if self._channel is not None:
            for text in pending:
                self._channel.send(text)

    def _on_message(self, data: str | bytes) -> None:
        try:
            message = json.loads(data)
        except (ValueError, RecursionError):  # RecursionError: nested past the parser's depth
            self._log.warning("webrtc_bad_message", data=repr(data)[:80])
            return
        if isinstance(message, dict) and message.get("type") == HANGUP_MESSAGE:
            self._end(EndReason.CALLER_HUNG_UP)

    def _on_connection_state(self) -> None:
        state = self.pc.connectionState
        self._log.info("webrtc_connection_state", state=state)
        if state == "connected" and not self._answered:
            self._answered = True
            self._events.put_nowait(CallStateChanged("answered"))
        elif state in ("failed", "closed"):
            self._end(EndReason.CALLER_HUNG_UP, f"caller hung up (connection {state})")

    def _end(self, reason: EndReason, detail: str = "") -> None:
        if self._ended:
            return
        self._ended = True
        self._frames.put_nowait(None)
        self._events.put_nowait(CallStateChanged("ended", detail or reason.words, reason))
        self._events.put_nowait(None)

    # --- AudioTransport ----------------------------------------------------------------------

    def frames(self) -> AsyncIterator[AudioFrame]:
        if self._frames_started:
            raise RuntimeError("frames() can be iterated once")
        self._frames_started = True
        return queued_frames(self._frames, self.sample_rate)

    def events(self) -> AsyncIterator[CallEvent]:
        return until_end(self._events)

    async def play(self, pcm: bytes, *, item_id: str) -> None:
        if self._ended:
            raise TransportClosed(f"{self.call_id} has ended")
        self._track.playout.enqueue(pcm, item_id)

    def flush(self) -> int:
        return self._track.playout.flush()

    def played_ms(self, item_id: str) -> int:
        return self._track.playout.played_ms(item_id)

    async def close(self) -> None:
        """Hang up: stop both directions, close the peer connection; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._end(EndReason.CLOSED)
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        self._clock.remove(self._track)
        if self._owns_clock:
            await self._clock.stop()
        self._track.stop()
        try:
            await self.pc.close()
        except Exception as exc:  # aiortc's close trips over a half-applied offer; nothing is left open
            self._log.warning("webrtc_close_failed", error=repr(exc))
