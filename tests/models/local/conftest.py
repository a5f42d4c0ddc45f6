"""Real audio for the embedded model's tests: espeak-ng speech through G.711 μ-law and back."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from voicegw.audio.line import phone_line
from voicegw.contracts.model import RealtimeModelEvent, SendAudio

FRAME_MS = 20
RATE = 8000
"""The session rate of the tests: a phone line."""


def spoken(text: str, tmp_dir: Path, rate: int = RATE) -> bytes:
    """`text` spoken by espeak-ng, sent through 8 kHz G.711 μ-law and back, at `rate`."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    path = tmp_dir / f"speech_{abs(hash(text))}.wav"
    subprocess.run(["espeak-ng", "-s", "150", "-w", str(path), text], check=True, capture_output=True)
    with wave.open(str(path)) as wav:
        return phone_line(wav.readframes(wav.getnframes()), wav.getframerate(), rate)


def silence(ms: int, rate: int = RATE) -> bytes:
    return b"\0" * (rate * ms // 1000 * 2)


@dataclass
class Recorder:
    """A model listener keeping every event with the time it arrived."""

    events: list[tuple[float, RealtimeModelEvent]] = field(default_factory=list)
    hook: Callable[[RealtimeModelEvent], None] | None = None

    async def on_event(self, event: RealtimeModelEvent) -> None:
        self.events.append((time.perf_counter(), event))
        if self.hook is not None:
            self.hook(event)

    def of(self, kind: type) -> list:
        return [event for _, event in self.events if isinstance(event, kind)]

    async def wait_for(self, predicate: Callable[[RealtimeModelEvent], bool], within: float = 30.0):
        deadline = time.perf_counter() + within
        seen = 0
        while time.perf_counter() < deadline:
            for _, event in self.events[seen:]:
                if predicate(event):
                    return event
            seen = len(self.events)
            await asyncio.sleep(0.02)
        raise AssertionError(f"no matching event in {within} s; got {[e.type for _, e in self.events]}")


async def feed(model, pcm: bytes, rate: int = RATE, *, realtime: bool = False) -> None:
    """Send `pcm` as 20 ms frames through `send_event` (paced like a live call when `realtime`)."""
    frame_bytes = rate * FRAME_MS // 1000 * 2
    for start in range(0, len(pcm), frame_bytes):
        await model.send_event(SendAudio(pcm[start : start + frame_bytes]))
        await asyncio.sleep(FRAME_MS / 1000 if realtime else 0)


@pytest.fixture
def speech(tmp_path: Path) -> Callable[[str], bytes]:
    return lambda text: spoken(text, tmp_path)
