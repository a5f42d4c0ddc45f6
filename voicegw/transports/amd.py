"""Answering-machine detection on a dialled SIP call: the callee's audio through the detector.

`AnsweringMachineScreen` is the asyncio shell of `voicegw.audio.amd`: it reads the call's frames
from the answer on, returns the decision (and puts it among the call's events, where a session
started afterwards reports it as `RealtimeAnsweringMachine`), then, for a machine, waits for the
moment its recording starts. The frames it reads are gone: whatever runs on the call next hears
the callee from that moment on.

    call = await ua.dial("sip:+15550123@trunk")
    screen = AnsweringMachineScreen(call)
    decision = await screen.decide()
    if decision.verdict == "machine":
        ready = await screen.wait_for_recording()  # the beep's end: speak now
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Callable
from typing import cast

from voicegw.audio.amd import AmdDecision, AmdSettings, AnsweringMachineDetector, VoicemailReady
from voicegw.audio.format import BYTES_PER_SAMPLE
from voicegw.contracts.transport import AnsweringMachineDetected, AudioFrame
from voicegw.sip.call import SipCall
from voicegw.transports.sip_call import SipCallTransport

STALL_SLACK_S = 2.0
"""Beyond the detector's own limits, how long to listen before deciding on what was heard (a
backstop: the silence below keeps the detector's clock going)."""

GAP_S = 0.2
"""No frame for this long: the callee sends no RTP while it is silent (silence suppression), so
the detector is fed this much silence, or a pause would never grow long enough to decide on.
Ten frame times, so that a loop late by a few ticks does not put silence into speech."""


class AnsweringMachineScreen:
    """Who answered a dialled call, decided from its first seconds of audio."""

    def __init__(self, call: SipCall, settings: AmdSettings | None = None) -> None:
        self.call = call
        self.detector = AnsweringMachineDetector(call.sample_rate, settings)
        self._transport = SipCallTransport(call)

    async def decide(self) -> AmdDecision:
        """Listen until the detector decides (``unknown`` when the audio stops or the call ends)."""
        limit_s = self.detector.settings.total_analysis_ms / 1000 + STALL_SLACK_S
        await self._listen(lambda: self.detector.decision is not None, limit_s)
        decision = self.detector.decision
        if decision is None:
            cause = "the call ended" if self.call.ended else "no audio from the callee"
            decision = AmdDecision("unknown", self.detector.position_ms, cause)
        self.call.log.info(
            "amd_decided", verdict=decision.verdict, decided_ms=decision.at_ms, cause=decision.cause
        )
        self.call.emit(AnsweringMachineDetected(decision.verdict, decision.at_ms, decision.cause))
        return decision

    async def wait_for_recording(self) -> VoicemailReady | None:
        """After a machine: wait for its greeting and beep to end; None if the call ended first."""
        settings = self.detector.settings
        limit_s = (settings.max_voicemail_wait_ms - self.detector.position_ms) / 1000 + STALL_SLACK_S
        await self._listen(lambda: self.detector.ready is not None, max(limit_s, 0.0))
        if self.call.ended:
            return None
        ready = self.detector.ready or VoicemailReady(self.detector.position_ms, "timeout")
        self.call.log.info("voicemail_ready", cause=ready.cause, at_ms=ready.at_ms, beep_hz=ready.beep_hz)
        return ready

    async def _listen(self, done: Callable[[], bool], limit_s: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit_s
        gap = bytes(round(self.call.sample_rate * GAP_S) * BYTES_PER_SAMPLE)
        # The frames' generator is closed on leaving, not left to the garbage collector: what runs
        # on the call next reads the same endpoint. A pending read is waited for, never cancelled
        # between frames (that would end the generator).
        frames = cast(AsyncGenerator[AudioFrame, None], self._transport.frames())
        async with contextlib.aclosing(frames):
            pending = asyncio.ensure_future(anext(frames))
            try:
                while not done() and (left := deadline - loop.time()) > 0:
                    arrived, _ = await asyncio.wait({pending}, timeout=min(GAP_S, left))
                    if not arrived:
                        self.detector.feed(gap)
                        continue
                    try:
                        frame = pending.result()
                    except StopAsyncIteration:
                        return
                    self.detector.feed(frame.pcm)
                    pending = asyncio.ensure_future(anext(frames))
            finally:
                pending.cancel()
                await asyncio.gather(pending, return_exceptions=True)
