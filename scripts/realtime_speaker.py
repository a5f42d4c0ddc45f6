"""A local server of the OpenAI Realtime protocol (GA) that talks all the time: load for agent calls.

For scripts/bench_capacity.py's agent mode, in a process of its own so that its CPU is not
voicegw's. Every connection gets `session.created`, then an answer of `--answer-ms` of audio (a
tone, in the format the client's ``session.update`` asked for) whenever it has been quiet for
`--every` seconds and at the end of each caller turn (server VAD's ``create_response``), streamed
faster than real time as OpenAI does, in 200 ms deltas. Its server VAD is a plain energy detector
on the caller audio received: when the caller starts talking while an answer is being streamed
or played, it does what OpenAI's server VAD does with ``interrupt_response``: it sends
``input_audio_buffer.speech_started``, stops the answer and ends it with a cancelled
``response.done``; the client then truncates the item (answered with
``conversation.item.truncated``). A ``response.create`` from the client starts an answer at once.

    .venv/bin/python scripts/realtime_speaker.py --port 0 --ready-file /tmp/speaker.json

It writes ``{"port": N}`` to `--ready-file` once listening, and its counters (connections,
answers, barge-ins, truncations received, caller audio) as JSON to `--stats-file` at SIGUSR1
and at SIGTERM.
The API key it wants is ``Bearer test``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import itertools
import json
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from voicegw.audio.codecs import PCMU
from voicegw.server.loop import run

API_KEY = "test"
DELTA_MS = 200
STREAM_SPEED = 4.0
"""Answers are streamed this many times faster than real time."""

TONE_HZ = 440.0
TONE_AMPLITUDE = 6000
SPEECH_RMS = 300.0
"""Caller audio above this RMS (s16) is speech to the VAD."""

ULAW_LOUD = 0x50
"""μ-law bytes below this (sign bit off) are louder than about 1,000 of 32,767: with a quarter of a
chunk's samples that loud, the chunk is speech."""
APPEND = '{"type": "input_audio_buffer.append", "audio": "'
"""How voicegw's appends start (its JSON has no other key)."""
SPEECH_START_MS = 100
SPEECH_STOP_MS = 500
PCM_RATE = 24000
PCMU_RATE = 8000


@dataclass
class Stats:
    """What the server did, summed over connections."""

    connections: int = 0
    answers_started: int = 0
    answers_completed: int = 0
    barge_ins: int = 0
    """Answers cut off because the caller spoke (speech_started while one streamed or played)."""
    truncations: int = 0
    """``conversation.item.truncate`` received (the client's side of a barge-in)."""
    cancels: int = 0
    caller_audio_s: float = 0.0
    agent_audio_s: float = 0.0


@dataclass
class Answer:
    response_id: str
    item_id: str
    ends_at: float
    """When its audio has finished playing at the caller (monotonic), if it is not cut off."""
    streamed: bool = False
    """Its ``response.done`` went out: only the caller's playback of it goes on."""


def _tone(ms: int, rate: int) -> np.ndarray:
    t = np.arange(rate * ms // 1000) / rate
    return (TONE_AMPLITUDE * np.sin(2 * np.pi * TONE_HZ * t)).astype("<i2")


class Connection:
    """One client: its format, VAD state and the answer in progress."""

    ids = itertools.count(1)

    def __init__(self, ws: ServerConnection, args: argparse.Namespace, stats: Stats) -> None:
        self.ws = ws
        self.args = args
        self.stats = stats
        self.n = next(self.ids)
        self.input_pcmu = False
        self.output_pcmu = False
        self.answer: Answer | None = None
        self.streamer: asyncio.Task[None] | None = None
        self.speaking = False
        self.voice_ms = 0
        self.quiet_ms = 0
        self.heard_ms = 0
        self.responses = itertools.count(1)
        self.pcmu = PCMU()
        self.user = f"user_{self.n}"

    async def send(self, event: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(event))

    def session(self) -> dict[str, Any]:
        fmt = {"type": "audio/pcmu"} if self.output_pcmu else {"type": "audio/pcm", "rate": PCM_RATE}
        infmt = {"type": "audio/pcmu"} if self.input_pcmu else {"type": "audio/pcm", "rate": PCM_RATE}
        return {
            "type": "realtime", "object": "realtime.session", "id": f"sess_{self.n}",
            "model": "gpt-realtime", "output_modalities": ["audio"], "instructions": "",
            "tools": [], "tool_choice": "auto", "max_output_tokens": "inf", "tracing": None,
            "prompt": None, "expires_at": int(time.time()) + 3600, "include": None,
            "audio": {
                "input": {"format": infmt, "transcription": None, "noise_reduction": None,
                          "turn_detection": {"type": "server_vad", "create_response": True,
                                             "interrupt_response": True}},
                "output": {"format": fmt, "voice": "marin", "speed": 1},
            },
        }  # fmt: skip

    # --- client events ---------------------------------------------------------------------

    async def handle(self, event: dict[str, Any]) -> None:
        match event.get("type"):
            case "input_audio_buffer.append":
                await self.hear(base64.b64decode(event["audio"]))
            case "session.update":
                audio = event.get("session", {}).get("audio", {})
                self.input_pcmu = audio.get("input", {}).get("format", {}).get("type") == "audio/pcmu"
                self.output_pcmu = audio.get("output", {}).get("format", {}).get("type") == "audio/pcmu"
                await self.send({"type": "session.updated", "session": self.session()})
            case "response.create":
                await self.start_answer()
            case "response.cancel":
                self.stats.cancels += 1
                if self.answer is not None and not self.answer.streamed:
                    await self.end_answer("cancelled", {"type": "cancelled", "reason": "client_cancelled"})
                else:
                    await self.send({"type": "error", "error": {
                        "type": "invalid_request_error", "code": "response_cancel_not_active",
                        "message": "Cancellation failed: no active response found"}})  # fmt: skip
            case "conversation.item.truncate":
                self.stats.truncations += 1
                await self.send({"type": "conversation.item.truncated", "item_id": event["item_id"],
                                 "content_index": event.get("content_index", 0),
                                 "audio_end_ms": event.get("audio_end_ms", 0)})  # fmt: skip

    async def hear(self, wire: bytes) -> None:
        """Energy VAD over one appended chunk."""
        if self.input_pcmu:
            # μ-law bytes are a level already: the share of loud ones, no decoding needed.
            ulaw = np.frombuffer(wire, np.uint8)
            samples, loud = len(ulaw), bool(np.count_nonzero((ulaw & 0x7F) < ULAW_LOUD) * 4 > len(ulaw))
            rate = PCMU_RATE
        else:
            pcm = np.frombuffer(wire, "<i2")
            samples, loud = len(pcm), float(np.sqrt(np.mean(pcm.astype(np.float32) ** 2))) > SPEECH_RMS
            rate = PCM_RATE
        if not samples:
            return
        ms = samples * 1000 // rate
        self.heard_ms += ms
        self.stats.caller_audio_s += ms / 1000
        self.voice_ms, self.quiet_ms = (self.voice_ms + ms, 0) if loud else (0, self.quiet_ms + ms)
        if not self.speaking and self.voice_ms >= SPEECH_START_MS:
            self.speaking = True
            start = self.heard_ms - self.voice_ms
            await self.send(
                {"type": "input_audio_buffer.speech_started", "audio_start_ms": start, "item_id": self.user}
            )
            if self.answer is not None and time.monotonic() < self.answer.ends_at:
                self.stats.barge_ins += 1
                await self.end_answer("cancelled", {"type": "cancelled", "reason": "turn_detected"})
        elif self.speaking and self.quiet_ms >= SPEECH_STOP_MS:
            self.speaking = False
            end_ms = self.heard_ms - self.quiet_ms
            await self.send(
                {"type": "input_audio_buffer.speech_stopped", "audio_end_ms": end_ms, "item_id": self.user}
            )
            await self.start_answer()  # server VAD's create_response: the caller's turn is answered

    # --- answers ---------------------------------------------------------------------------

    async def speak_every(self) -> None:
        while True:
            await asyncio.sleep(self.args.every)
            if self.answer is None and not self.speaking:
                await self.start_answer()

    async def start_answer(self) -> None:
        if self.answer is not None:
            return
        k = next(self.responses)
        self.answer = Answer(f"resp_{self.n}_{k}", f"item_{self.n}_{k}", float("inf"))
        self.stats.answers_started += 1
        self.streamer = asyncio.get_running_loop().create_task(self.stream(self.answer))

    async def stream(self, answer: Answer) -> None:
        rid, iid = answer.response_id, answer.item_id
        item = {"id": iid, "type": "message", "object": "realtime.item", "status": "in_progress",
                "role": "assistant", "content": []}  # fmt: skip
        await self.send({"type": "response.created", "response": {
            "object": "realtime.response", "id": rid, "status": "in_progress", "status_details": None,
            "output": [], "output_modalities": ["audio"]}})  # fmt: skip
        await self.send({"type": "response.output_item.added", "response_id": rid, "output_index": 0,
                         "item": item})  # fmt: skip
        await self.send({"type": "response.output_audio_transcript.delta", "response_id": rid,
                         "item_id": iid, "output_index": 0, "content_index": 0,
                         "delta": "La la la."})  # fmt: skip
        rate = PCMU_RATE if self.output_pcmu else PCM_RATE
        started = time.monotonic()
        answer.ends_at = started + self.args.answer_ms / 1000 + 0.1
        for sent_ms in range(0, self.args.answer_ms, DELTA_MS):
            pcm = _tone(DELTA_MS, rate).tobytes()
            wire = self.pcmu.encode(pcm) if self.output_pcmu else pcm
            await self.send({"type": "response.output_audio.delta", "response_id": rid, "item_id": iid,
                             "output_index": 0, "content_index": 0,
                             "delta": base64.b64encode(wire).decode("ascii")})  # fmt: skip
            self.stats.agent_audio_s += DELTA_MS / 1000
            await asyncio.sleep(
                max(0.0, started + (sent_ms + DELTA_MS) / 1000 / STREAM_SPEED - time.monotonic())
            )
        await self.finish_stream(answer, "completed", None)
        answer.streamed = True
        # Its audio still plays at the caller for a while: a barge-in may still cut it off.
        await asyncio.sleep(max(0.0, answer.ends_at - time.monotonic()))
        if self.answer is answer:
            self.stats.answers_completed += 1
            self.answer = None

    async def finish_stream(self, answer: Answer, status: str, details: dict[str, Any] | None) -> None:
        rid, iid = answer.response_id, answer.item_id
        done_item = {"id": iid, "type": "message", "object": "realtime.item",
                     "status": "completed" if status == "completed" else "incomplete", "role": "assistant",
                     "content": [{"type": "output_audio", "transcript": "La la la."}]}  # fmt: skip
        await self.send({"type": "response.output_audio.done", "response_id": rid, "item_id": iid,
                         "output_index": 0, "content_index": 0})  # fmt: skip
        await self.send({"type": "response.output_item.done", "response_id": rid, "output_index": 0,
                         "item": done_item})  # fmt: skip
        await self.send({"type": "response.done", "response": {
            "object": "realtime.response", "id": rid, "status": status, "status_details": details,
            "output": [done_item], "output_modalities": ["audio"], "usage": None}})  # fmt: skip

    async def end_answer(self, status: str, details: dict[str, Any]) -> None:
        """Cut the answer in progress off (barge-in or cancel)."""
        answer, self.answer = self.answer, None
        if answer is None:
            return
        if self.streamer is not None:
            self.streamer.cancel()
            await asyncio.gather(self.streamer, return_exceptions=True)
        if not answer.streamed:
            await self.finish_stream(answer, status, details)
        self.streamer = None


class Speaker:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.stats = Stats()

    async def check(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.headers.get("Authorization") != f"Bearer {API_KEY}":
            return connection.respond(401, '{"error": {"code": "invalid_api_key"}}\n')
        return None

    async def handle(self, ws: ServerConnection) -> None:
        self.stats.connections += 1
        conn = Connection(ws, self.args, self.stats)
        speaker = asyncio.get_running_loop().create_task(conn.speak_every())
        try:
            await conn.send({"type": "session.created", "session": conn.session()})
            async for message in ws:
                if isinstance(message, str) and message.startswith(APPEND) and message.endswith('"}'):
                    # 50 a second per call: read without a JSON parse, this server keeps up.
                    await conn.hear(base64.b64decode(message[len(APPEND) : -2]))
                else:
                    await conn.handle(json.loads(message))
        except ConnectionClosed:
            pass  # the call ended
        finally:
            speaker.cancel()
            tasks = [speaker] + ([conn.streamer] if conn.streamer is not None else [])
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def serve(self) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGUSR1, self.write_stats)
        async with serve(
            self.handle, "127.0.0.1", self.args.port, process_request=self.check, max_size=2**20
        ) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            if self.args.ready_file:
                self.args.ready_file.write_text(json.dumps({"port": port}))
            print(f"realtime_speaker: listening on ws://127.0.0.1:{port}/v1", flush=True)
            await stop.wait()
        self.write_stats()

    def write_stats(self) -> None:
        if self.args.stats_file:
            # Whole or not at all: the benchmark may read it at any moment.
            partial = self.args.stats_file.with_suffix(".partial")
            partial.write_text(json.dumps(asdict(self.stats)))
            partial.replace(self.args.stats_file)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--every", type=float, default=1.0, help="at most this many quiet seconds")
    parser.add_argument("--answer-ms", type=int, default=3000, help="audio per answer")
    parser.add_argument("--ready-file", type=Path, help='written {"port": N} once listening')
    parser.add_argument("--stats-file", type=Path, help="counters as JSON, written at SIGUSR1 and SIGTERM")
    run(Speaker(parser.parse_args()).serve())


if __name__ == "__main__":
    main()
