"""A minimal HTTP endpoint (`voicegw serve --http HOST:PORT`): health probes and metrics.

pjsua answers every out-of-dialog OPTIONS with 200 itself, draining or not, so a load balancer
that must stop sending calls during a drain asks ``GET /health`` (or ``/healthz``) instead: 200
while taking calls, 503 while draining (or while nothing can take a call: no worker up, or,
without workers, the embedded model stuck until a restart). ``GET /metrics`` is the Prometheus
text exposition. One request per connection, no keep-alive: probes and scrapes only.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

READ_TIMEOUT_S = 5.0

MAX_WAITING = 64
"""Connections still sending their request head, at most: a new one past this closes the oldest.
Idle sockets held open (or a flood of them) would otherwise use up the descriptors that calls'
RTP sockets need; a probe or scrape sends its head at once, so it is never the oldest for long."""

REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}

log = structlog.get_logger(__name__)

HEALTH_PATHS = ("/health", "/healthz")
METRICS_PATH = "/metrics"

HealthProbe = Callable[[], tuple[bool, dict[str, Any]]]
"""Returns (taking calls, details for the JSON body; a ``status`` among them replaces the
default "ok" or "draining")."""

MetricsSource = Callable[[], tuple[bytes, str]]
"""Returns (the exposition, its content type)."""


def response(status: int, body: dict[str, Any]) -> bytes:
    """A complete HTTP/1.1 response with a JSON body."""
    return raw_response(status, json.dumps(body).encode(), "application/json")


def raw_response(status: int, payload: bytes, content_type: str) -> bytes:
    """A complete HTTP/1.1 response carrying `payload` as `content_type`."""
    head = (
        f"HTTP/1.1 {status} {REASONS[status]}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + payload


def route(request_line: str, probe: HealthProbe, metrics: MetricsSource | None = None) -> bytes:
    """The response for one request line (sans-I/O)."""
    parts = request_line.split()
    if len(parts) != 3:
        return response(405, {"error": "bad request line"})
    method, path = parts[0], parts[1].split("?", 1)[0]
    known = HEALTH_PATHS + ((METRICS_PATH,) if metrics is not None else ())
    if path not in known:
        return response(404, {"error": f"no such path {path}"})
    if method not in ("GET", "HEAD"):
        return response(405, {"error": f"{method} not allowed"})
    if path == METRICS_PATH and metrics is not None:
        return raw_response(200, *metrics())
    taking_calls, details = probe()
    status = 200 if taking_calls else 503
    return response(status, {"status": "ok" if taking_calls else "draining", **details})


class HttpStartError(RuntimeError):
    """The health endpoint could not listen (address in use, no permission)."""


class HealthServer:
    """Serves `route` on a TCP address until `stop()`; `/metrics` only when `metrics` is given."""

    def __init__(
        self,
        host: str,
        port: int,
        probe: HealthProbe,
        metrics: MetricsSource | None = None,
        refresh: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """`refresh` is awaited before each metrics response (to gather other processes' counts)."""
        self.host, self.port = host, port
        self._probe = probe
        self._metrics = metrics
        self._refresh = refresh
        self._server: asyncio.Server | None = None
        self._waiting: dict[asyncio.StreamWriter, None] = {}
        """Connections reading their head, oldest first."""
        self.evicted = 0

    async def start(self) -> None:
        """Listen; raises `HttpStartError` when the address is taken."""
        try:
            self._server = await asyncio.start_server(self._handle, self.host, self.port)
        except OSError as exc:
            raise HttpStartError(f"HTTP could not start on {self.host}:{self.port}: {exc.strerror}") from None
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("http_started", host=self.host, port=self.port)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._waiting) >= MAX_WAITING:
            oldest = next(iter(self._waiting))
            del self._waiting[oldest]
            oldest.transport.abort()  # its read ends (IncompleteReadError), and its handler with it
            self.evicted += 1
            if self.evicted == 1 or self.evicted % 1000 == 0:
                log.warning("http_connections_evicted", evicted=self.evicted, waiting=MAX_WAITING)
        self._waiting[writer] = None
        try:
            # Read the whole head: closing with unread bytes would reset the connection.
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT_S)
            self._waiting.pop(writer, None)
            line = head.split(b"\r\n", 1)[0]
            parts = line.split()
            if (
                self._refresh is not None
                and len(parts) > 1
                and parts[1].split(b"?")[0] == METRICS_PATH.encode()
            ):
                await self._refresh()
            writer.write(route(line.decode("latin-1"), self._probe, self._metrics))
            await writer.drain()
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            self._waiting.pop(writer, None)
            writer.close()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
