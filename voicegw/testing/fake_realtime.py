"""A local WebSocket server that speaks the OpenAI Realtime protocol (GA): the only fake allowed.

It replays a scenario (``tests/models/data/*.json``): per connection, a list of steps that send
server events written from the API reference, wait for client events, wait for an amount of
caller audio, drop the connection, or stall (say nothing more, the connection open). It can also
refuse every handshake with an HTTP status or leave it unanswered (`hang_handshake`).
Every client event it receives is checked against the documented schema (`realtime_schema`) and
against protocol rules the real server enforces (a cancel with no response in progress, a
truncation past the audio sent); any deviation is recorded in `violations`, which the tests
require to be empty.

Audio placeholders ``{"$audio_ms": N}`` in a scenario become N ms of a 440 Hz tone, base64, in
the output format the client negotiated (``audio/pcmu`` or 24 kHz ``audio/pcm``), encoded here
with an independent G.711 implementation. ``{"$client": "field"}`` echoes a field of the last
client event a step waited for.

With ``calls_api=True`` it also plays OpenAI's SIP connector: `ring` posts a signed
``realtime.call.incoming`` webhook to the application, ``POST /v1/realtime/calls/{id}/accept``
(on `calls_url`) accepts a ringing call, and ``/v1/realtime?call_id=...`` attaches a WebSocket to
an accepted one.

Sessions end as the real server ends them at their time limit: an ``error`` event with code
``session_expired``, then the close, after `session_limit` seconds of a connection or at once
with `expire()`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from aiohttp import ClientSession, web
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from voicegw.models.openai_webhooks import signed_headers
from voicegw.testing.paths import TESTS
from voicegw.testing.realtime_schema import client_event_errors

DATA = TESTS / "models" / "data"
API_KEY = "test"
TONE_HZ = 440.0
TONE_AMPLITUDE = 8000
PCM_RATE = 24000
PCMU_RATE = 8000
EXPIRED_CLOSE_CODE = 1000


def session_expired_event(minutes: int = 60) -> dict[str, Any]:
    """The error the Realtime API sends when a session reaches its maximum duration (the shape
    reported in OpenAI's community forum, "Realtime API - session_expired?", with the GA limit)."""
    return {
        "type": "error",
        "event_id": "event_expired",
        "error": {
            "type": "invalid_request_error",
            "code": "session_expired",
            "message": f"Your session hit the maximum duration of {minutes} minutes.",
            "param": None,
            "event_id": None,
        },
    }


# --- G.711 μ-law (the classic reference algorithm, independent of voicegw.audio) -------------


def ulaw_encode(pcm: np.ndarray) -> bytes:
    x = pcm.astype(np.int32)
    sign = np.where(x < 0, 0x80, 0)
    magnitude = np.minimum(np.abs(x), 32635) + 0x84
    exponent = np.clip(np.floor(np.log2(magnitude)).astype(np.int32) - 7, 0, 7)
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return (~(sign | (exponent << 4) | mantissa) & 0xFF).astype(np.uint8).tobytes()


def ulaw_decode(data: bytes) -> np.ndarray:
    u = ~np.frombuffer(data, dtype=np.uint8).astype(np.int32) & 0xFF
    exponent = (u >> 4) & 0x07
    magnitude = (((u & 0x0F) << 3) + 0x84) << exponent
    return np.where(u & 0x80, 0x84 - magnitude, magnitude - 0x84).astype(np.int16)


@dataclass
class Connection:
    """What one client connection sent and was sent."""

    path: str
    headers: Headers
    received: list[dict[str, Any]] = field(default_factory=list)
    input_wire: bytearray = field(default_factory=bytearray)
    output_format: str = "audio/pcm"
    output_samples: int = 0
    """Samples of agent audio (tone) sent."""

    active_response: str | None = None
    late_cancels: int = 0
    """``response.cancel`` received after the response had ended (answered with an error)."""
    audio_sent_ms: dict[str, float] = field(default_factory=dict)
    """Per assistant item, ms of audio sent (a truncation may not go past it)."""

    expired: bool = False
    """The server ended it at its time limit (`FakeRealtimeServer.expire`)."""

    closed_by_client: bool = False
    """The client closed it (a close frame from the client)."""

    def negotiated(self, direction: str) -> str:
        """The audio format (``input`` or ``output``) of the client's last ``session.update``."""
        for event in reversed(self.received):
            if event["type"] == "session.update":
                fmt = event["session"].get("audio", {}).get(direction, {}).get("format")
                if fmt:
                    return str(fmt["type"])
        return "audio/pcm"

    def input_pcm(self) -> tuple[np.ndarray, int]:
        """The caller audio received, decoded: (samples, rate)."""
        if self.negotiated("input") == "audio/pcmu":
            return ulaw_decode(bytes(self.input_wire)), PCMU_RATE
        return np.frombuffer(bytes(self.input_wire), dtype="<i2"), PCM_RATE

    def input_ms(self) -> float:
        samples, rate = self.input_pcm()
        return len(samples) * 1000 / rate

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [event for event in self.received if event["type"] == kind]


class FakeRealtimeServer:
    """``async with FakeRealtimeServer("scenario") as server``; point the model at `base_url`."""

    def __init__(
        self,
        scenario: str,
        *,
        reject_status: int | None = None,
        hang_handshake: bool = False,
        calls_api: bool = False,
        session_limit: float | None = None,
    ) -> None:
        """`reject_status` answers every handshake with that HTTP status; `hang_handshake` takes
        the TCP connection and never answers the upgrade (a wedged endpoint or proxy); `calls_api`
        serves OpenAI's Calls API (accept) beside the WebSocket; `session_limit` ends each
        connection that many seconds after it opened, as the real server does (`expire`)."""
        self.scenario = json.loads((DATA / f"{scenario}.json").read_text())
        self.ringing: set[str] = set()
        self.accepted: dict[str, dict[str, Any]] = {}
        """Accepted calls and the session each was accepted with."""

        self._calls_runner: web.AppRunner | None = web.AppRunner(self._calls_app()) if calls_api else None
        self._calls_port = 0
        self.reject_status = reject_status
        self.hang_handshake = hang_handshake
        self.hung = 0
        """Handshakes left unanswered (`hang_handshake`)."""

        self.connections: list[Connection] = []
        self.violations: list[str] = []
        self.refused = 0
        """Handshakes refused (HTTP error) because the scenario had no connection left."""

        self.finished = asyncio.Event()
        """Set when the last connection's steps have all run."""

        self._server: Server | None = None
        self._tone_phase = 0
        self.session_limit = session_limit
        self._sockets: dict[int, ServerConnection] = {}

    @property
    def base_url(self) -> str:
        assert self._server is not None
        port = next(iter(self._server.sockets)).getsockname()[1]
        return f"ws://127.0.0.1:{port}/v1"

    async def __aenter__(self) -> FakeRealtimeServer:
        self._server = await serve(self._handle, "127.0.0.1", 0, process_request=self._check_request)
        if self._calls_runner is not None:
            await self._calls_runner.setup()
            site = web.TCPSite(self._calls_runner, "127.0.0.1", 0)
            await site.start()
            self._calls_port = self._calls_runner.addresses[0][1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        if self._calls_runner is not None:
            await self._calls_runner.cleanup()

    # --- the SIP connector: webhook, Calls API -----------------------------------------------

    @property
    def calls_url(self) -> str:
        """The HTTP base URL of the Calls API (``.../v1``)."""
        return f"http://127.0.0.1:{self._calls_port}/v1"

    async def ring(self, call_id: str, webhook_url: str, secret: str) -> int:
        """A SIP call arrives: post its signed webhook to the application; the HTTP status it answered."""
        self.ringing.add(call_id)
        body = json.dumps(
            {"object": "event", "id": f"evt_{call_id}", "type": "realtime.call.incoming",
             "created_at": int(time.time()),
             "data": {"call_id": call_id, "sip_headers": [{"name": "From", "value": "sip:+15551234@pstn"}]}}
        ).encode()  # fmt: skip
        stamp = int(time.time())
        headers = signed_headers(secret, f"wh_{call_id}", stamp, body) | {"content-type": "application/json"}
        async with (
            ClientSession() as client,
            client.post(webhook_url, data=body, headers=headers) as response,
        ):
            return response.status

    def _calls_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/realtime/calls/{call_id}/accept", self._accept)
        return app

    async def _accept(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {API_KEY}":
            return web.json_response({"error": {"code": "invalid_api_key"}}, status=401)
        call_id = request.match_info["call_id"]
        if call_id not in self.ringing:
            return web.json_response({"error": {"code": "call_not_found"}}, status=404)
        body = await request.json()
        if body.get("type") != "realtime":
            self.violations.append(f"accept of {call_id} without type realtime: {body}")
        self.ringing.discard(call_id)
        self.accepted[call_id] = body
        return web.Response(status=200)

    # --- handshake -------------------------------------------------------------------------

    async def _check_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if self.hang_handshake:
            self.hung += 1
            await asyncio.Event().wait()  # until the client gives up or the server closes
        if self.reject_status is not None:
            return _error_response(connection, self.reject_status, "invalid_api_key")
        if request.headers.get("Authorization") != f"Bearer {API_KEY}":
            return _error_response(connection, 401, "invalid_api_key")
        path, _, query = request.path.partition("?")
        if path == "/v1/realtime" and query.startswith("call_id="):
            if query.removeprefix("call_id=") not in self.accepted:
                self.violations.append(f"attach to a call never accepted: {request.path!r}")
                return _error_response(connection, 404, "call_not_found")
        elif path != "/v1/realtime" or not query.startswith("model="):
            self.violations.append(f"bad endpoint {request.path!r}")
            return _error_response(connection, 404, "not_found")
        if len(self.connections) >= len(self.scenario["connections"]):
            self.refused += 1
            return _error_response(connection, 503, "service_unavailable")
        return None

    # --- one connection --------------------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        conn = Connection(ws.request.path, ws.request.headers)
        index = len(self.connections)
        self.connections.append(conn)
        inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        audio_arrived = asyncio.Event()
        reader = asyncio.create_task(self._read(ws, conn, inbox, audio_arrived))
        steps = self.scenario["connections"][index]["steps"]
        player = asyncio.create_task(self._play(ws, conn, steps, inbox, audio_arrived))
        self._sockets[index] = ws
        limit = self.session_limit
        timer = asyncio.create_task(self._expire_after(index, limit)) if limit is not None else None
        try:
            # The client may leave mid-scenario (a test that is done): stop replaying then.
            await asyncio.wait({reader, player}, return_when=asyncio.FIRST_COMPLETED)
            failure = player.exception() if player.done() else None
            if failure is not None and not isinstance(failure, ConnectionClosed):
                self.violations.append(f"scenario failed: {failure!r}")
            elif player.done():
                if index == len(self.scenario["connections"]) - 1:
                    self.finished.set()
                await reader
        except ConnectionClosed:
            pass  # the client went away; what it sent is recorded
        finally:
            conn.closed_by_client = bool(ws.protocol.close_rcvd_then_sent)
            self._sockets.pop(index, None)
            tasks = [reader, player, *([timer] if timer else [])]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def expire(self, index: int = -1) -> None:
        """End connection `index` (default: the last) as the server does at the session limit."""
        position = index % len(self.connections)
        ws = self._sockets.get(position)
        if ws is None:
            raise RuntimeError(f"connection {position} is not open")
        self.connections[position].expired = True
        await ws.send(json.dumps(session_expired_event()))
        await ws.close(EXPIRED_CLOSE_CODE, "session expired")

    async def _expire_after(self, index: int, seconds: float) -> None:
        await asyncio.sleep(seconds)
        await self.expire(index)

    async def _read(
        self,
        ws: ServerConnection,
        conn: Connection,
        inbox: asyncio.Queue[dict[str, Any]],
        audio_arrived: asyncio.Event,
    ) -> None:
        async for message in ws:
            try:
                event = json.loads(message)
            except ValueError:
                self.violations.append(f"client sent non-JSON: {str(message)[:60]!r}")
                continue
            errors = client_event_errors(event)
            self.violations.extend(errors)
            if errors:
                continue
            conn.received.append(event)
            if (answer := self._check_rules(conn, event)) is not None:
                await ws.send(json.dumps(answer))
            if event["type"] == "input_audio_buffer.append":
                conn.input_wire.extend(base64.b64decode(event["audio"]))
                audio_arrived.set()
            inbox.put_nowait(event)

    def _check_rules(self, conn: Connection, event: dict[str, Any]) -> dict[str, Any] | None:
        """Rules the real server enforces: the error it answers with, or a violation of ours."""
        match event["type"]:
            case "response.cancel" if conn.active_response is None:
                # Documented as harmless (a cancel racing the server's own VAD cancellation).
                conn.late_cancels += 1
                return {
                    "type": "error",
                    "event_id": f"event_cancel_{conn.late_cancels}",
                    "error": {
                        "type": "invalid_request_error",
                        "code": "response_cancel_not_active",
                        "message": "Cancellation failed: no active response found",
                        "param": None,
                        "event_id": event.get("event_id"),
                    },
                }
            case "conversation.item.truncate":
                sent = conn.audio_sent_ms.get(event["item_id"])
                if sent is None:
                    self.violations.append(f"truncate of unknown item {event['item_id']!r}")
                elif event["audio_end_ms"] > sent:
                    self.violations.append(f"truncate at {event['audio_end_ms']} ms > {sent:.0f} ms sent")
        return None

    async def _play(
        self,
        ws: ServerConnection,
        conn: Connection,
        steps: list[dict[str, Any]],
        inbox: asyncio.Queue[dict[str, Any]],
        audio_arrived: asyncio.Event,
    ) -> None:
        last: dict[str, Any] = {}
        for step in steps:
            if "send" in step:
                for event in step["send"]:
                    await self._send(ws, conn, self._fill(event, conn, last))
            elif "send_text" in step:
                await ws.send(step["send_text"])
            elif "expect" in step:
                last = await self._expect(inbox, step["expect"], step.get("match", {}))
            elif "wait_audio_ms" in step:
                while conn.input_ms() < step["wait_audio_ms"]:
                    audio_arrived.clear()
                    await audio_arrived.wait()
            elif "sleep_ms" in step:
                await asyncio.sleep(step["sleep_ms"] / 1000)
            elif "stall" in step:
                await asyncio.Event().wait()  # a model that stops mid-way: silent, connection open
            elif "close" in step:
                await ws.close(step["close"], step.get("reason", ""))
                return
            elif "abort" in step:
                assert ws.transport is not None
                ws.transport.abort()  # a dropped TCP connection: no close frame
                return
            else:
                raise ValueError(f"unknown scenario step {step}")

    async def _expect(
        self, inbox: asyncio.Queue[dict[str, Any]], kind: str, match: dict[str, Any]
    ) -> dict[str, Any]:
        while True:
            event = await inbox.get()
            if event["type"] != kind:
                continue
            wrong = {k: v for k, v in match.items() if _lookup(event, k) != v}
            if wrong:
                self.violations.append(f"{kind}: expected {wrong}, got {event}")
            return event

    async def _send(self, ws: ServerConnection, conn: Connection, event: dict[str, Any]) -> None:
        match event["type"]:
            case "response.created":
                conn.active_response = event["response"]["id"]
            case "response.done":
                conn.active_response = None
        await ws.send(json.dumps(event))

    # --- placeholders ----------------------------------------------------------------------

    def _fill(self, value: Any, conn: Connection, last: dict[str, Any]) -> Any:
        if isinstance(value, list):
            return [self._fill(v, conn, last) for v in value]
        if not isinstance(value, dict):
            return value
        if "$audio_ms" in value:
            return self._tone(conn, value["$audio_ms"])
        if "$client" in value:
            return _lookup(last, value["$client"])
        filled = {k: self._fill(v, conn, last) for k, v in value.items()}
        if filled.get("type") == "response.output_audio.delta":
            ms = value["delta"]["$audio_ms"] if isinstance(value.get("delta"), dict) else 0
            conn.audio_sent_ms[filled["item_id"]] = conn.audio_sent_ms.get(filled["item_id"], 0) + ms
        return filled

    def _tone(self, conn: Connection, ms: float) -> str:
        conn.output_format = conn.negotiated("output")
        rate = PCMU_RATE if conn.output_format == "audio/pcmu" else PCM_RATE
        count = int(rate * ms / 1000)
        t = (np.arange(count) + conn.output_samples) / rate
        conn.output_samples += count
        pcm = (TONE_AMPLITUDE * np.sin(2 * np.pi * TONE_HZ * t)).astype(np.int16)
        wire = ulaw_encode(pcm) if rate == PCMU_RATE else pcm.astype("<i2").tobytes()
        return base64.b64encode(wire).decode("ascii")


def _lookup(event: dict[str, Any], dotted: str) -> Any:
    value: Any = event
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _error_response(connection: ServerConnection, status: int, code: str) -> Response:
    body = {"error": {"type": "invalid_request_error", "code": code, "message": f"HTTP {status}"}}
    return connection.respond(status, json.dumps(body) + "\n")


def dominant_hz(samples: np.ndarray, rate: int) -> float:
    """The strongest frequency of a signal (to check which tone went through)."""
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64) * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[int(np.argmax(spectrum))])
