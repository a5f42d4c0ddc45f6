"""What a call leaves on disk: its transcript (JSON lines) and, optionally, a stereo recording.

`Transcript` collects an agent session's events while the call runs (the time each history item
first appeared, DTMF, interruptions, handoffs, call states) and writes the final history once
the session has ended, so that an interrupted agent item holds what the caller actually heard.

`StereoRecorder` takes one (caller, agent) frame pair per media clock tick: caller on the left,
agent on the right, aligned by the clock. The tick only interleaves and buffers; file work runs on
one writer thread shared by every call (`DiskWriter`), so a slow disk never stalls the media.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import time
import wave
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from voicegw.realtime.events import (
    RealtimeAudioInterrupted,
    RealtimeCallState,
    RealtimeDtmf,
    RealtimeHandoffEvent,
    RealtimeHistoryAdded,
    RealtimeHistoryUpdated,
    RealtimeToolEnd,
)
from voicegw.realtime.items import AssistantMessageItem, RealtimeItem, RealtimeToolCallItem, UserMessageItem
from voicegw.realtime.result import RealtimeResult

log = structlog.get_logger(__name__)

CHUNK_S = 1.0
"""Recorded audio handed to the writer thread in chunks of this length."""

_UNSAFE = re.compile(r"[^A-Za-z0-9._@-]+")


def call_file_stem(call_id: str, wall_time: float) -> str:
    """``20261125T100000Z-<call id>``: sorts by time, safe as a file name whatever the Call-ID holds."""
    stamp = datetime.fromtimestamp(wall_time, UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{_UNSAFE.sub('_', call_id)[:120]}"


def _iso(wall_time: float) -> str:
    return datetime.fromtimestamp(wall_time, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class DiskWriter:
    """One thread doing every call's file work in submission order; `close()` waits for it."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="voicegw-records")

    def submit(self, job: Any, *args: Any) -> asyncio.Future[Any]:
        return asyncio.wrap_future(self._pool.submit(job, *args))

    def submit_nowait(self, job: Any, *args: Any) -> None:
        """For the media clock's tick: queue and return, errors are the job's to log."""
        self._pool.submit(job, *args)

    async def close(self) -> None:
        await asyncio.to_thread(self._pool.shutdown, wait=True)


@dataclass(order=True)
class _Line:
    at: tuple[float, int]
    """Monotonic time (the ``t`` field) and the order seen, which breaks ties."""

    record: dict[str, Any] = field(compare=False)


class Transcript:
    """One call's transcript, written as JSON lines to `path` when the session ends."""

    def __init__(self, path: Path, call_id: str, *, started_at: float) -> None:
        self.path = path
        self.call_id = call_id
        self._started_at = started_at
        self._wall_offset = time.time() - time.monotonic()
        self._order = itertools.count()
        self._first_seen: dict[str, tuple[float, int]] = {}
        self._tool_output_at: dict[str, tuple[float, int]] = {}
        self._events: list[_Line] = []

    def add(self, event: object) -> None:
        """One session event (`async for event in session`)."""
        now = (time.monotonic(), next(self._order))
        match event:
            case RealtimeHistoryAdded(item=item):
                self._first_seen.setdefault(item.item_id, now)
            case RealtimeHistoryUpdated(history=history):
                for item in history:
                    self._first_seen.setdefault(item.item_id, now)
            case RealtimeToolEnd(call_id=call_id):
                self._tool_output_at.setdefault(call_id, now)
            case RealtimeDtmf(digit=digit, duration_ms=duration):
                self._event(now, {"type": "dtmf", "digit": digit, "duration_ms": duration})
            case RealtimeAudioInterrupted(item_id=item_id, played_ms=played):
                self._event(now, {"type": "interrupted", "item_id": item_id, "played_ms": played})
            case RealtimeHandoffEvent(from_agent=old, to_agent=new):
                self._event(now, {"type": "handoff", "from": old.name, "to": new.name})
            case RealtimeCallState(state=state, reason=reason):
                self._event(now, {"type": "call_state", "state": state, "reason": reason})

    def _event(self, at: tuple[float, int], record: dict[str, Any]) -> None:
        self._events.append(_Line(at, record))

    def lines(self, result: RealtimeResult | None, *, sip_reason: str = "") -> list[dict[str, Any]]:
        """Every line of the transcript, in time order, the end line last."""
        now = (time.monotonic(), next(self._order))
        lines = list(self._events)
        for item in result.history if result is not None else ():
            at = self._first_seen.get(item.item_id, now)
            lines.append(_Line(at, _item_record(item)))
            if isinstance(item, RealtimeToolCallItem) and item.output is not None:
                out_at = self._tool_output_at.get(item.call_id or "", at)
                record = {"type": "tool_output", "call_id": item.call_id, "output": item.output}
                lines.append(_Line(out_at, record))
        lines.sort()
        end = {
            "type": "end",
            "reason": result.end_reason if result is not None else None,
            "sip_reason": sip_reason,
            "error": result.error if result is not None else None,
            "agent": result.final_agent.name if result is not None else None,
        }
        lines.append(_Line(now, end))
        return [
            {
                "ts": _iso(line.at[0] + self._wall_offset),
                "t": round(line.at[0] - self._started_at, 3),
                "call_id": self.call_id,
            }
            | line.record
            for line in lines
        ]

    def write(self, lines: list[dict[str, Any]]) -> None:
        """Write the lines (blocking: run it on the writer thread)."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("w") as out:
                for line in lines:
                    out.write(json.dumps(line, ensure_ascii=False) + "\n")
        except OSError as exc:
            log.error("transcript_write_failed", path=str(self.path), error=str(exc), call_id=self.call_id)


def _item_record(item: RealtimeItem) -> dict[str, Any]:
    match item:
        case UserMessageItem():
            return {"type": "user", "item_id": item.item_id, "text": item.text}
        case AssistantMessageItem():
            return {"type": "agent", "item_id": item.item_id, "text": item.text, "status": item.status}
        case RealtimeToolCallItem():
            return {
                "type": "tool_call",
                "item_id": item.item_id,
                "call_id": item.call_id,
                "name": item.name,
                "arguments": item.arguments,
            }
    return {"type": "item", "item_id": getattr(item, "item_id", "")}


class StereoRecorder:
    """A call's two directions as one stereo 16-bit WAV: caller left, agent right."""

    def __init__(self, path: Path, sample_rate: int, writer: DiskWriter, *, call_id: str = "") -> None:
        self.path = path
        self.sample_rate = sample_rate
        self._writer = writer
        self._call_id = call_id
        self._chunk_bytes = int(sample_rate * CHUNK_S) * 4
        self._buffer = bytearray()
        self._wav: wave.Wave_write | None = None
        self._failed = False
        self.frames_recorded = 0
        writer.submit_nowait(self._open)

    def tick(self, caller: bytes, agent: bytes) -> None:
        """The media clock's tap: one 20 ms frame per direction."""
        stereo = np.empty(len(caller), dtype="<i2")  # 2 channels x len/2 samples = len samples
        stereo[0::2] = np.frombuffer(caller, dtype="<i2")
        stereo[1::2] = np.frombuffer(agent, dtype="<i2")
        self._buffer += stereo.tobytes()
        self.frames_recorded += 1
        if len(self._buffer) >= self._chunk_bytes:
            self._writer.submit_nowait(self._write, bytes(self._buffer))
            self._buffer.clear()

    async def close(self) -> None:
        """Write what is buffered and finish the file (the header gets its length)."""
        rest = bytes(self._buffer)
        self._buffer.clear()
        await self._writer.submit(self._finish, rest)

    def _open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            wav = wave.open(str(self.path), "wb")  # noqa: SIM115 (closed by _finish)
            wav.setnchannels(2)
            wav.setsampwidth(2)
            wav.setframerate(self.sample_rate)
            self._wav = wav
        except OSError as exc:
            self._fail(exc)

    def _write(self, data: bytes) -> None:
        if self._wav is None:
            return
        try:
            self._wav.writeframesraw(data)
        except OSError as exc:
            self._fail(exc)

    def _finish(self, rest: bytes) -> None:
        self._write(rest)
        if self._wav is not None:
            try:
                self._wav.close()
            except OSError as exc:
                self._fail(exc)
            self._wav = None

    def _fail(self, exc: OSError) -> None:
        if not self._failed:
            self._failed = True
            log.error("recording_failed", path=str(self.path), error=str(exc), call_id=self._call_id)
        wav, self._wav = self._wav, None
        if wav is not None:
            with contextlib.suppress(OSError):
                wav.close()
