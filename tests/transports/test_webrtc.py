"""`WebRtcTransport` against a second aiortc peer on 127.0.0.1, in process: real ICE, DTLS, SRTP, Opus.

The peer plays the browser: it offers one sendrecv audio track carrying espeak speech and a data
channel, and records what the agent side sends back.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from aiortc import MediaStreamError, MediaStreamTrack, RTCDataChannel, RTCSessionDescription

from tests.signals import best_correlation, sine, speech
from voicegw.audio.codecs import frame_to_mono_pcm
from voicegw.contracts.transport import AudioTransport, CallStateChanged, EndReason, TransportClosed
from voicegw.rtp.clock import MediaClock
from voicegw.transports.webrtc import CallerFrames, WebRtcTransport, peer_connection

pytestmark = pytest.mark.timeout(60)
PEER_RATE = 48000
RATE = 24000
FRAME_BYTES = RATE * 20 // 1000 * 2


class PcmTrack(MediaStreamTrack):
    """The browser's microphone: PCM at 48 kHz in 20 ms frames on a real-time schedule, then silence."""

    kind = "audio"

    def __init__(self, pcm: bytes) -> None:
        super().__init__()
        self._pcm = pcm
        self._samples = PEER_RATE // 50
        self._pts = 0
        self._start: float | None = None

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        loop = asyncio.get_running_loop()
        self._start = self._start or loop.time()
        await asyncio.sleep(max(0.0, self._start + self._pts / PEER_RATE - loop.time()))
        chunk = self._pcm[self._pts * 2 : (self._pts + self._samples) * 2]
        frame = av.AudioFrame(format="s16", layout="mono", samples=self._samples)
        frame.planes[0].update(chunk.ljust(self._samples * 2, b"\0"))
        frame.sample_rate = PEER_RATE
        frame.pts = self._pts
        frame.time_base = Fraction(1, PEER_RATE)
        self._pts += self._samples
        return frame


class Browser:
    """The offering peer: sends `pcm`, records the answerer's audio and data-channel messages."""

    def __init__(self, pcm: bytes) -> None:
        self.pc = peer_connection()
        self.pc.addTrack(PcmTrack(pcm))
        self.channel: RTCDataChannel = self.pc.createDataChannel("events")
        self.heard = bytearray()
        """Agent audio received, mono s16 at 48 kHz."""
        self.messages: list[dict[str, object]] = []
        self.got_message = asyncio.Event()
        self.channel.on("message", self._on_message)
        self._tasks: list[asyncio.Task[None]] = []
        self.pc.on("track", self._on_track)

    def _on_message(self, data: str) -> None:
        self.messages.append(json.loads(data))
        self.got_message.set()

    def _on_track(self, track: MediaStreamTrack) -> None:
        self._tasks.append(asyncio.create_task(self._record(track)))

    async def _record(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                frame = await track.recv()
                assert isinstance(frame, av.AudioFrame)
                self.heard.extend(frame_to_mono_pcm(frame))
        except MediaStreamError:
            pass

    async def call(self, transport: WebRtcTransport) -> None:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        answer = await transport.accept(self.pc.localDescription.sdp)
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.pc.close()


@pytest.fixture(params=["own clock"])
async def call(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[Browser, WebRtcTransport, bytes]]:
    """A connected call; ``"shared clock"``: the transport is paced by a clock it does not own (the app's)."""
    spoken = speech(tmp_path / "question", PEER_RATE, "What is the weather like in Paris today?")
    browser = Browser(spoken + bytes(PEER_RATE * 2))  # a second of silence after the question
    clock = MediaClock() if request.param == "shared clock" else None
    if clock is not None:
        await clock.start()
    transport = WebRtcTransport(sample_rate=RATE, clock=clock)
    try:
        await browser.call(transport)
        yield browser, transport, spoken
    finally:
        await transport.close()
        await browser.close()
        if clock is not None:
            await clock.stop()


def dominant_hz(pcm: bytes, rate: int) -> float:
    x = np.frombuffer(pcm, "<i2").astype(np.float64)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spectrum) * rate / len(x))


def rms(pcm: bytes) -> float:
    x = np.frombuffer(pcm, "<i2").astype(np.float64)
    return float(np.sqrt(np.mean(x * x))) if len(x) else 0.0


def test_caller_frames_downmix_and_resample() -> None:
    frames = CallerFrames(RATE)
    tone = np.frombuffer(sine(1000, 0.1, PEER_RATE), "<i2")
    stereo = np.stack([tone, tone], axis=1).reshape(1, -1)  # packed s16, as aiortc's Opus decoder
    out: list[bytes] = []
    for start in range(0, stereo.shape[1], 2 * 1024):  # odd-sized frames: 1024 samples per channel
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(stereo[:, start : start + 2048]), format="s16", layout="stereo"
        )
        frame.sample_rate = PEER_RATE
        out.extend(frames.feed(frame))
    assert all(len(pcm) == FRAME_BYTES for pcm in out)
    assert len(out) == 5  # 100 ms in, 100 ms out (the resampler delays the signal, not the count)
    assert abs(dominant_hz(b"".join(out), RATE) - 1000) < 30


async def test_browser_speech_comes_out_as_frames(
    tmp_path: Path, call: tuple[Browser, WebRtcTransport, bytes]
) -> None:
    _, transport, _ = call
    assert isinstance(transport, AudioTransport)
    reference = speech(tmp_path / "reference", RATE, "What is the weather like in Paris today?")
    received = bytearray()

    async def collect() -> None:
        async for frame in transport.frames():
            assert frame.sample_rate == RATE and len(frame.pcm) == FRAME_BYTES
            received.extend(frame.pcm)
            if len(received) >= len(reference) + RATE:  # the question and half a second more
                return

    await asyncio.wait_for(collect(), 20)
    correlation, lag = best_correlation(reference, bytes(received), max_lag=RATE)
    assert correlation > 0.8, (correlation, lag)
    assert 0 <= lag < RATE // 2  # the speech starts within the first half second

    # The call was answered once the connection came up.
    events = transport.events()
    assert await asyncio.wait_for(anext(events), 5) == CallStateChanged("answered")


@pytest.mark.parametrize("call", ["own clock", "shared clock"], indirect=True)
async def test_play_flush_played_ms(call: tuple[Browser, WebRtcTransport, bytes]) -> None:
    browser, transport, _ = call
    events = transport.events()
    assert await asyncio.wait_for(anext(events), 10) == CallStateChanged("answered")
    await transport.play(sine(440, 3.0, RATE), item_id="answer")
    await asyncio.sleep(0.6)
    played = transport.flush()
    assert 300 <= played <= 1500, played  # wide: the first frames wait for DTLS and the sender
    assert transport.played_ms("answer") == played
    assert transport.played_ms("unknown") == 0
    heard_at_flush = len(browser.heard)
    await asyncio.sleep(0.6)
    assert transport.played_ms("answer") == played  # nothing more of it left after the flush

    heard = bytes(browser.heard)
    loud = [i for i in range(0, len(heard) - 1920, 1920) if rms(heard[i : i + 1920]) > 2000]
    assert loud, "no agent audio reached the browser"
    tone = heard[loud[0] : loud[-1] + 1920]
    assert abs(dominant_hz(tone, PEER_RATE) - 440) < 10
    heard_ms = len(loud) * 20
    assert abs(heard_ms - played) <= 100, (heard_ms, played)  # the browser heard what was counted
    # After the flush (and what was in flight), the browser hears silence.
    assert rms(heard[heard_at_flush + 2 * 1920 * 5 :]) < 200
    assert len(heard) > heard_at_flush + 1920 * 20  # ... that is, silence frames keep coming


async def test_data_channel_both_ways(call: tuple[Browser, WebRtcTransport, bytes]) -> None:
    browser, transport, _ = call
    transport.send_message({"type": "hello", "n": 1})  # before the channel is open: kept for it
    await asyncio.wait_for(browser.got_message.wait(), 10)
    assert browser.messages == [{"type": "hello", "n": 1}]

    frames = transport.frames()
    await asyncio.wait_for(anext(frames), 10)
    for garbage in ("not json", "[" * 100_000, '{"type": []}'):  # skipped, the channel goes on
        browser.channel.send(garbage)
    browser.channel.send(json.dumps({"type": "hangup"}))
    events = [event async for event in transport.events()]
    assert events[-1] == CallStateChanged("ended", "caller hung up", EndReason.CALLER_HUNG_UP)
    remaining = [frame async for frame in frames]
    assert len(remaining) < 100  # the caller's audio ended too
    with pytest.raises(TransportClosed):
        await transport.play(b"\0\0", item_id="late")


async def test_closing_the_browser_ends_the_call(call: tuple[Browser, WebRtcTransport, bytes]) -> None:
    browser, transport, _ = call
    events = transport.events()
    assert await asyncio.wait_for(anext(events), 10) == CallStateChanged("answered")
    await browser.close()
    ended = await asyncio.wait_for(anext(events), 30)
    assert isinstance(ended, CallStateChanged) and ended.state == "ended", ended
    await transport.close()
    await transport.close()  # twice is fine
