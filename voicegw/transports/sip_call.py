"""`AudioTransport` over a SIP call: the caller's RTP in, the agent's audio out, call control."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from voicegw.audio.format import FRAME_MS
from voicegw.contracts.latency import model_audio_received
from voicegw.contracts.transport import (
    AudioFrame,
    CallEvent,
    EndReason,
    TransferResult,
    TransportClosed,
)
from voicegw.rtp.endpoint import RtpEndpoint
from voicegw.sip.call import SipCall

PLAYED_POLL_S = 0.02
"""How often `wait_played` looks at the playout: one media tick."""


class SipCallTransport:
    """One answered SIP call as an `AudioTransport` and `CallControl`."""

    def __init__(self, call: SipCall) -> None:
        if call.endpoint is None:
            raise ValueError(f"call {call.call_id} has no media: it was not answered")
        if not isinstance(call.endpoint, RtpEndpoint):
            raise ValueError(f"call {call.call_id}'s media runs in another process")
        self.call = call
        self.call_id = call.call_id
        self.info = call.info
        self._endpoint: RtpEndpoint = call.endpoint
        self.sample_rate: int = call.sample_rate
        self._position_ms = 0

    async def frames(self) -> AsyncIterator[AudioFrame]:
        async for pcm, received_at in self._endpoint.timed_frames():
            yield AudioFrame(pcm, self.sample_rate, self._position_ms, received_at=received_at)
            self._position_ms += FRAME_MS

    def events(self) -> AsyncIterator[CallEvent]:
        return self.call.events()

    async def play(self, pcm: bytes, *, item_id: str) -> None:
        if self.call.ended:
            raise TransportClosed(f"call {self.call_id} has ended")
        self._endpoint.play(pcm, item_id, model_audio_received.get())

    def flush(self) -> int:
        return self._endpoint.flush()

    def played_ms(self, item_id: str) -> int:
        return self._endpoint.played_ms(item_id)

    async def wait_played(self, item_id: str, length_ms: float, *, slack_s: float) -> None:
        """Return once `length_ms` of `item_id` have gone out, the call has ended, or the audio's
        own length plus `slack_s` has passed (a playout that stalls must not hold the call)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + length_ms / 1000 + slack_s
        while not self.call.ended and self.played_ms(item_id) < length_ms and loop.time() < deadline:
            await asyncio.sleep(PLAYED_POLL_S)

    async def hang_up(self, reason: EndReason = EndReason.AGENT_HUNG_UP, detail: str = "") -> None:
        await self.call.hang_up(reason, detail)

    async def transfer(self, target: str) -> TransferResult:
        return await self.call.transfer(target)

    async def send_dtmf(self, digits: str) -> None:
        await self.call.send_dtmf(digits)

    async def close(self) -> None:
        if not self.call.ended:
            await self.call.hang_up(EndReason.CLOSED, "transport closed")
