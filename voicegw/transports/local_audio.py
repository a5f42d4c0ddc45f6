"""`LocalAudioTransport`: the computer's microphone is the caller, its speaker the line.

Over `sounddevice` (the optional ``audio`` extra, which needs the PortAudio library). PortAudio
calls us from its own threads: the input callback hands each 20 ms block to the event loop with
`call_soon_threadsafe`; the output callback pulls one 20 ms frame from the playout buffer under
a lock, so `flush()` silences the speaker within one block and `played_ms()` counts what
actually went to the device.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from types import ModuleType
from typing import Any

import structlog

from voicegw.audio.format import FRAME_MS
from voicegw.audio.playout import PlayoutBuffer
from voicegw.contracts.transport import (
    AudioFrame,
    CallEvent,
    CallStateChanged,
    EndReason,
    TransportClosed,
)
from voicegw.transports.queues import queued_frames, until_end

log = structlog.get_logger()

DEFAULT_SAMPLE_RATE = 24000
INSTALL_HINT = "pip install 'voicegw[audio]' (and the PortAudio library: apt-get install libportaudio2)"


class AudioDeviceUnavailable(RuntimeError):
    """No usable sound device: `sounddevice` or PortAudio is missing, or there is no device."""


def load_sounddevice() -> ModuleType:
    """The `sounddevice` module; `AudioDeviceUnavailable` naming what to install when it cannot load."""
    try:
        import sounddevice
    except ImportError as exc:
        raise AudioDeviceUnavailable(
            f"the sound device needs the 'sounddevice' package: {INSTALL_HINT}"
        ) from exc
    except OSError as exc:  # sounddevice is there, the PortAudio library is not
        raise AudioDeviceUnavailable(f"the sound device is unavailable ({exc}): {INSTALL_HINT}") from exc
    return sounddevice


def check_device(
    sample_rate: int = DEFAULT_SAMPLE_RATE, *, input_device: Any = None, output_device: Any = None
) -> None:
    """Raise `AudioDeviceUnavailable` unless a microphone and a speaker take mono 16-bit at `sample_rate`."""
    sd = load_sounddevice()
    try:
        sd.check_input_settings(device=input_device, channels=1, dtype="int16", samplerate=sample_rate)
        sd.check_output_settings(device=output_device, channels=1, dtype="int16", samplerate=sample_rate)
    except (sd.PortAudioError, ValueError) as exc:
        raise AudioDeviceUnavailable(
            f"no usable sound device ({exc}); check the device or {INSTALL_HINT}"
        ) from exc


def device_available(sample_rate: int = DEFAULT_SAMPLE_RATE) -> bool:
    """True when `LocalAudioTransport` can open the default devices."""
    try:
        check_device(sample_rate)
    except AudioDeviceUnavailable:
        return False
    return True


class LocalAudioTransport:
    """An `AudioTransport` over the default (or given) microphone and speaker."""

    def __init__(
        self, *, sample_rate: int = DEFAULT_SAMPLE_RATE, input_device: Any = None, output_device: Any = None
    ) -> None:
        """Raises `AudioDeviceUnavailable` when the devices cannot be used (see `check_device`)."""
        check_device(sample_rate, input_device=input_device, output_device=output_device)
        self._sd = load_sounddevice()
        self.sample_rate = sample_rate
        self._devices = (input_device, output_device)
        self._block = sample_rate * FRAME_MS // 1000
        self._playout = PlayoutBuffer(sample_rate, frame_ms=FRAME_MS)
        self._lock = threading.Lock()  # the playout buffer is shared with PortAudio's thread
        self._frames: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._events: asyncio.Queue[CallEvent | None] = asyncio.Queue()
        self._events.put_nowait(CallStateChanged("answered"))
        self._streams: list[Any] = []
        self._closed = False

    def frames(self) -> AsyncIterator[AudioFrame]:
        if self._streams:
            raise RuntimeError("frames() can be iterated once")
        self._start(asyncio.get_running_loop())
        return queued_frames(self._frames, self.sample_rate)

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        def on_input(indata: Any, frames: int, time: Any, status: Any) -> None:
            loop.call_soon_threadsafe(self._frames.put_nowait, bytes(indata))

        def on_output(outdata: Any, frames: int, time: Any, status: Any) -> None:
            with self._lock:
                frame = self._playout.next_frame()
            outdata[:] = frame.pcm if frame is not None else bytes(len(outdata))

        common = {"samplerate": self.sample_rate, "channels": 1, "dtype": "int16", "blocksize": self._block}
        self._streams = [
            self._sd.RawInputStream(device=self._devices[0], callback=on_input, **common),
            self._sd.RawOutputStream(device=self._devices[1], callback=on_output, **common),
        ]
        for stream in self._streams:
            stream.start()

    def events(self) -> AsyncIterator[CallEvent]:
        return until_end(self._events)

    async def play(self, pcm: bytes, *, item_id: str) -> None:
        if self._closed:
            raise TransportClosed("the sound device is closed")
        with self._lock:
            self._playout.enqueue(pcm, item_id)

    def flush(self) -> int:
        with self._lock:
            return self._playout.flush()

    def played_ms(self, item_id: str) -> int:
        with self._lock:
            return self._playout.played_ms(item_id)

    async def close(self) -> None:
        """Stop and close the device streams (off the loop: PortAudio blocks); safe to call twice."""
        if self._closed:
            return
        self._closed = True
        streams, self._streams = self._streams, []
        for stream in streams:
            await asyncio.to_thread(stream.close)
        self._frames.put_nowait(None)
        self._events.put_nowait(CallStateChanged("ended", EndReason.CLOSED.words, EndReason.CLOSED))
        self._events.put_nowait(None)
