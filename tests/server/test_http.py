"""The health endpoint: routing (sans-I/O) and a real TCP round trip."""

from __future__ import annotations

import asyncio
import contextlib
import json

import pytest

from voicegw.server.http import MAX_WAITING, HealthServer, HttpStartError, route


def body(raw: bytes) -> tuple[int, dict[str, object]]:
    head, _, payload = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(payload)


def test_health_is_200_while_taking_calls_and_503_while_draining() -> None:
    assert body(route("GET /health HTTP/1.1", lambda: (True, {"active_calls": 3}))) == (
        200,
        {"status": "ok", "active_calls": 3},
    )
    assert body(route("GET /health?x=1 HTTP/1.1", lambda: (False, {})))[0] == 503


@pytest.mark.parametrize(
    ("line", "status"), [("GET /nope HTTP/1.1", 404), ("POST /health HTTP/1.1", 405), ("garbage", 405)]
)
def test_other_requests_are_refused(line: str, status: int) -> None:
    assert body(route(line, lambda: (True, {})))[0] == status


@pytest.mark.timeout(10)
async def test_real_request_and_address_in_use() -> None:
    draining = False
    server = HealthServer("127.0.0.1", 0, lambda: (not draining, {}))
    await server.start()
    try:

        async def get() -> int:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            raw = await reader.read()
            writer.close()
            return body(raw)[0]

        assert await get() == 200
        draining = True
        assert await get() == 503
        with pytest.raises(HttpStartError, match=f"HTTP could not start on 127.0.0.1:{server.port}"):
            await HealthServer("127.0.0.1", server.port, lambda: (True, {})).start()
    finally:
        await server.stop()


def test_healthz_is_health_and_metrics_are_served_when_given() -> None:
    assert body(route("GET /healthz HTTP/1.1", lambda: (False, {})))[0] == 503
    assert body(route("GET /metrics HTTP/1.1", lambda: (True, {})))[0] == 404  # no metrics source
    raw = route("GET /metrics HTTP/1.1", lambda: (True, {}), lambda: (b"x_total 1.0\n", "text/plain"))
    head, _, payload = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK") and b"Content-Type: text/plain" in head
    assert payload == b"x_total 1.0\n"


@pytest.mark.timeout(30)
async def test_idle_connections_cannot_crowd_out_a_probe() -> None:
    server = HealthServer("127.0.0.1", 0, lambda: (True, {}))
    await server.start()
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    try:
        for _ in range(MAX_WAITING * 4):  # a slow-loris: connected, sending nothing
            idle.append(await asyncio.open_connection("127.0.0.1", server.port))
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /health HTTP/1.1\r\n\r\n")
        assert body(await asyncio.wait_for(reader.read(), 2))[0] == 200
        writer.close()
        # The oldest were closed to make room: no more than MAX_WAITING stay open on the server.
        closed = 0
        for idle_reader, _ in idle:
            with contextlib.suppress(TimeoutError, ConnectionError):
                if await asyncio.wait_for(idle_reader.read(), 0.01) == b"":
                    closed += 1
        assert closed >= len(idle) - MAX_WAITING, closed
        assert server.evicted >= len(idle) - MAX_WAITING
    finally:
        for _, idle_writer in idle:
            idle_writer.close()
        await server.stop()
