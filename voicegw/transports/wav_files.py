"""`WavFilesTransport`: a WAV file plays the caller, another WAV records what the agent said.

For development and tests without a phone or a sound device. The input file is handed out as
20 ms frames, in real time or as fast as possible; then trailing silence (so the model's turn
detection hears the turn end), then silence paced in real time while the agent answers. Agent
audio goes through a playout buffer pulled one frame per 20 ms tick, so `flush()` and
`played_ms()` behave as on a phone line and a barge-in truncates where the caller stopped
hearing. When the input is done and the answer has finished (nothing played for
`answer_idle_ms`, or no answer within `answer_timeout_ms`), the call ends: `frames()` stops and
`events()` gives ``CallStateChanged("ended")``. `close()` writes the output WAV: the agent's
side of the call from its first word on, silences between answers included.
"""

from __future__ import annotations

import asyncio
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import structlog

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
from voicegw.transports.queues import until_end

log = structlog.get_logger()

DEFAULT_TRAILING_SILENCE_MS = 1000
DEFAULT_ANSWER_TIMEOUT_MS = 15000
DEFAULT_ANSWER_IDLE_MS = 2000
ENDED_REASON = "the caller's input file ended"


def read_wav(path: str | Path, sample_rate: int | None = None) -> tuple[bytes, int]:
    """A 16-bit WAV as mono s16le PCM (channels averaged), resampled to `sample_rate` if given."""
    with wave.open(str(path), "rb") as wav:
        if wav.getsampwidth() != BYTES_PER_SAMPLE:
            raise ValueError(f"{path}: {8 * wav.getsampwidth()}-bit WAV; only 16-bit PCM is supported")
        channels, rate = wav.getnchannels(), wav.getframerate()
        data = wav.readframes(wav.getnframes())
    samples = np.frombuffer(data, dtype="<i2")
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1).astype("<i2")
    pcm = samples.tobytes()
    if sample_rate is not None and sample_rate != rate:
        return Resampler(rate, sample_rate).process(pcm), sample_rate
    return pcm, rate


def write_wav(path: str | Path, pcm: bytes, sample_rate: int) -> None:
    """Mono s16le PCM to a WAV file."""
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(BYTES_PER_SAMPLE)
        wav.setframerate(sample_rate)
        wav.writeframes(pcm)


class WavFilesTransport:
    """An `AudioTransport` over two WAV files (see the module docs)."""

    def __init__(
        self,
        input_path: str | Path,
        output_path: str | Path,
        *,
        sample_rate: int | None = None,
        realtime: bool = True,
        trailing_silence_ms: int = DEFAULT_TRAILING_SILENCE_MS,
        answer_timeout_ms: int = DEFAULT_ANSWER_TIMEOUT_MS,
        answer_idle_ms: int = DEFAULT_ANSWER_IDLE_MS,
    ) -> None:
        """`sample_rate` None: the input file's rate. Raises `ValueError` for a non-16-bit WAV."""
        self._input, self.sample_rate = read_wav(input_path, sample_rate)
        self.output_path = Path(output_path)
        self.realtime = realtime
        self._trailing_ms = trailing_silence_ms
        self._answer_timeout_ms = answer_timeout_ms
        self._answer_idle_ms = answer_idle_ms
        self._frame_bytes = self.sample_rate * FRAME_MS // 1000 * BYTES_PER_SAMPLE
        self._playout = PlayoutBuffer(self.sample_rate, frame_ms=FRAME_MS)
        self._recording = bytearray()
        self._clock_ms = 0
        """The call's clock: advanced 20 ms per frame handed out."""

        self._last_agent_ms: int | None = None
        """Clock time when agent audio last arrived or played."""

        self._events: asyncio.Queue[CallEvent | None] = asyncio.Queue()
        self._events.put_nowait(CallStateChanged("answered"))
        self._ended = False
        self._started = False
        self._closed = False

    @property
    def recorded_ms(self) -> int:
        """Length of the agent-side recording so far."""
        return len(self._recording) * 1000 // (self.sample_rate * BYTES_PER_SAMPLE)

    # --- AudioTransport ----------------------------------------------------------------------

    def frames(self) -> AsyncIterator[AudioFrame]:
        if self._started:
            raise RuntimeError("frames() can be iterated once")
        self._started = True
        return self._frames()

    async def _frames(self) -> AsyncIterator[AudioFrame]:
        loop = asyncio.get_running_loop()
        deadline = loop.time()
        silence = bytes(self._frame_bytes)
        input_frames = -(-len(self._input) // self._frame_bytes)
        trailing_frames = self._trailing_ms // FRAME_MS
        index = 0
        while not self._closed:
            waiting = index >= input_frames + trailing_frames
            if waiting and self._answer_finished():
                break
            # The input may go as fast as possible; waiting for the answer is real time anyway.
            if self.realtime or waiting:
                deadline = max(deadline + FRAME_MS / 1000, loop.time() - FRAME_MS / 1000)
                await asyncio.sleep(max(0.0, deadline - loop.time()))
            pcm = self._input[index * self._frame_bytes : (index + 1) * self._frame_bytes]
            pcm = pcm + silence[len(pcm) :]
            self._tick()
            yield AudioFrame(pcm, self.sample_rate, timestamp_ms=index * FRAME_MS)
            index += 1
        self._end(EndReason.CALLER_HUNG_UP, ENDED_REASON)

    def _answer_finished(self) -> bool:
        if self._playout.queued_ms > 0:
            return False
        waited = self._clock_ms - (len(self._input) * 1000 // (self.sample_rate * BYTES_PER_SAMPLE))
        if self._last_agent_ms is None:
            return waited >= self._trailing_ms + self._answer_timeout_ms
        return self._clock_ms - self._last_agent_ms >= self._answer_idle_ms

    def _tick(self) -> None:
        """One 20 ms of the call: the caller hears the next agent frame (or silence)."""
        self._clock_ms += FRAME_MS
        frame = self._playout.next_frame()
        if frame is not None:
            self._recording.extend(frame.pcm)
            self._last_agent_ms = self._clock_ms
        elif self._recording:
            self._recording.extend(bytes(self._frame_bytes))

    def events(self) -> AsyncIterator[CallEvent]:
        return until_end(self._events)

    async def play(self, pcm: bytes, *, item_id: str) -> None:
        if self._closed or self._ended:
            raise TransportClosed("the WAV call has ended")
        self._playout.enqueue(pcm, item_id)
        self._last_agent_ms = self._clock_ms

    def flush(self) -> int:
        return self._playout.flush()

    def played_ms(self, item_id: str) -> int:
        return self._playout.played_ms(item_id)

    async def close(self) -> None:
        """End the call (if it has not ended) and write the output WAV; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._end(EndReason.CLOSED)
        await asyncio.to_thread(write_wav, self.output_path, bytes(self._recording), self.sample_rate)
        log.info("wav_call_recorded", output=str(self.output_path), agent_ms=self.recorded_ms)

    def _end(self, reason: EndReason, detail: str = "") -> None:
        if self._ended:
            return
        self._ended = True
        self._events.put_nowait(CallStateChanged("ended", detail or reason.words, reason))
        self._events.put_nowait(None)
