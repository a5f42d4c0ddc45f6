"""`FakeTransport`: an in-memory `AudioTransport` driven by a manual clock, for tests.

The test pushes caller audio and call events, then advances the clock: each 20 ms tick plays
exactly one 20 ms frame of queued agent audio and hands the session one frame of caller audio.
So `played_ms` is exact and a barge-in's truncation point can be checked to the frame.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass

from voicegw.audio.format import FRAME_MS
from voicegw.contracts.transport import (
    AudioFrame,
    CallEvent,
    CallInfo,
    CallStateChanged,
    EndReason,
    TransferResult,
    TransportClosed,
)

SETTLE_ROUNDS = 50
"""Loop iterations `settle()` yields: enough for a frame to travel transport -> session -> model -> back."""


async def settle(rounds: int = SETTLE_ROUNDS) -> None:
    """Let every task run until it waits on something new (no real time passes)."""
    for _ in range(rounds):
        await asyncio.sleep(0)


@dataclass(frozen=True, slots=True)
class PlayedFrame:
    """One 20 ms frame that reached the (fake) caller."""

    item_id: str
    pcm: bytes
    at_ms: int
    """Clock time when it was played."""


class FakeTransport:
    """A transport whose time only moves when the test says so."""

    def __init__(self, sample_rate: int = 16000) -> None:
        self.sample_rate = sample_rate
        self.clock_ms = 0
        self.played: list[PlayedFrame] = []
        self.flushes: list[int] = []
        """What every `flush()` returned."""

        self.enqueued_bytes: dict[str, int] = {}
        """Agent audio handed to `play()`, per item (whether played or flushed later)."""

        self.closed = False
        self._frame_bytes = sample_rate * FRAME_MS // 1000 * 2
        self._inbound: deque[bytes] = deque()
        self._frames: asyncio.Queue[AudioFrame | None] = asyncio.Queue()
        self._events: asyncio.Queue[CallEvent | None] = asyncio.Queue()
        self._outbound: deque[tuple[str, bytearray]] = deque()
        self._played_bytes: dict[str, int] = {}
        self._current: str | None = None
        self._in_ms = 0

    # --- the test's side ---------------------------------------------------------------------

    def push_audio(self, pcm: bytes) -> None:
        """Caller audio, delivered one 20 ms frame per tick (the last frame zero-padded)."""
        for start in range(0, len(pcm), self._frame_bytes):
            self._inbound.append(pcm[start : start + self._frame_bytes].ljust(self._frame_bytes, b"\0"))

    def push_silence(self, ms: int) -> None:
        self.push_audio(bytes(self.sample_rate * ms // 1000 * 2))

    def push_event(self, event: CallEvent) -> None:
        """A call event (DTMF, state change), delivered at once."""
        self._events.put_nowait(event)

    def caller_hang_up(self, reason: EndReason = EndReason.CALLER_HUNG_UP, detail: str = "") -> None:
        """The call ends (the caller hangs up, by default): an ``ended`` state, then the end of
        frames and events."""
        self._events.put_nowait(CallStateChanged("ended", detail or reason.words, reason))
        self._end_streams()

    def tick(self, count: int = 1) -> None:
        """Advance the clock by `count` frames: play one outbound frame and deliver one inbound frame each."""
        for _ in range(count):
            self.clock_ms += FRAME_MS
            self._play_frame()
            if self._inbound and not self.closed:
                self._frames.put_nowait(AudioFrame(self._inbound.popleft(), self.sample_rate, self._in_ms))
                self._in_ms += FRAME_MS

    async def advance(self, ms: int) -> None:
        """Tick through `ms`, letting the session process each frame before the next."""
        for _ in range(ms // FRAME_MS):
            self.tick()
            await settle()

    @property
    def pending_inbound_ms(self) -> int:
        return len(self._inbound) * FRAME_MS

    @property
    def queued_ms(self) -> int:
        """Agent audio queued and not yet played."""
        return sum(len(buf) for _, buf in self._outbound) * 1000 // (2 * self.sample_rate)

    def played_audio(self, item_id: str) -> bytes:
        return b"".join(f.pcm for f in self.played if f.item_id == item_id)

    # --- AudioTransport ----------------------------------------------------------------------

    async def frames(self) -> AsyncIterator[AudioFrame]:
        while (frame := await self._frames.get()) is not None:
            yield frame

    async def events(self) -> AsyncIterator[CallEvent]:
        while (event := await self._events.get()) is not None:
            yield event

    async def play(self, pcm: bytes, *, item_id: str) -> None:
        if self.closed:
            raise TransportClosed("the fake call has ended")
        self.enqueued_bytes[item_id] = self.enqueued_bytes.get(item_id, 0) + len(pcm)
        if self._outbound and self._outbound[-1][0] == item_id:
            self._outbound[-1][1].extend(pcm)
        else:
            self._outbound.append((item_id, bytearray(pcm)))

    def flush(self) -> int:
        current = self._outbound[0][0] if self._outbound else self._current
        self._outbound.clear()
        played = self.played_ms(current) if current is not None else 0
        self.flushes.append(played)
        return played

    def played_ms(self, item_id: str) -> int:
        return self._played_bytes.get(item_id, 0) * 1000 // (2 * self.sample_rate)

    async def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._end_streams()

    # --- internals ---------------------------------------------------------------------------

    def _play_frame(self) -> None:
        if not self._outbound:
            return
        item_id, buf = self._outbound[0]
        chunk = bytes(buf[: self._frame_bytes])
        del buf[: self._frame_bytes]
        if not buf:
            self._outbound.popleft()
        self._current = item_id
        self._played_bytes[item_id] = self._played_bytes.get(item_id, 0) + len(chunk)
        self.played.append(PlayedFrame(item_id, chunk.ljust(self._frame_bytes, b"\0"), self.clock_ms))

    def _end_streams(self) -> None:
        self._frames.put_nowait(None)
        self._events.put_nowait(None)


FAKE_CALL_INFO = CallInfo(
    call_id="fake-call-1",
    from_uri="<sip:+15551230000@127.0.0.1>",
    to_uri="<sip:+15559870000@127.0.0.1>",
    source=("127.0.0.1", 5060),
    headers={"x-twilio-callsid": "CA0123456789abcdef"},
)


class FakeCallTransport(FakeTransport):
    """A `FakeTransport` that is also a phone call (`CallControl`), recording what the agent did.

    `hang_up` and an accepted `transfer` end the call as a SIP call does (an ``ended`` state,
    then the end of frames and events). Transfers answer with `transfer_status` (200: accepted).
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        *,
        info: CallInfo = FAKE_CALL_INFO,
        transfer_status: int = 200,
        transfer_reason: str = "OK",
    ) -> None:
        super().__init__(sample_rate)
        self.info = info
        self.transfer_status = transfer_status
        self.transfer_reason = transfer_reason
        self.hung_up: EndReason | None = None
        """The reason of our hang-up, once the agent hung up."""

        self.transfers: list[str] = []
        self.dtmf_sent: list[str] = []
        self.queued_at_hang_up_ms: int | None = None
        """Agent audio still queued when the call was hung up (the agent's unfinished sentence)."""

    async def hang_up(self, reason: EndReason = EndReason.AGENT_HUNG_UP, detail: str = "") -> None:
        if self.hung_up is not None or self.closed:
            return
        self.hung_up = reason
        self.queued_at_hang_up_ms = self.queued_ms
        self.closed = True
        self._events.put_nowait(CallStateChanged("ended", detail or reason.words, reason))
        self._end_streams()

    async def transfer(self, target: str) -> TransferResult:
        self.transfers.append(target)
        status = self.transfer_status
        result = TransferResult(target, 200 <= status < 300, status, self.transfer_reason)
        self._events.put_nowait(result)
        return result

    async def send_dtmf(self, digits: str) -> None:
        self.dtmf_sent.append(digits)
