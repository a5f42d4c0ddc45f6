"""A minimal HTTP/1.1 POST over asyncio streams, for webhooks (no HTTP client among our dependencies).

One request per connection (``Connection: close``); only the status line of the answer is read,
within a bound, since a webhook's answer carries nothing we use. ``https`` URLs use the system's
certificate store.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Mapping
from urllib.parse import urlsplit

MAX_STATUS_LINE = 1024
USER_AGENT = "voicegw-webhooks"


class HttpPostError(ConnectionError):
    """The server could not be reached, or did not answer with an HTTP status line."""


def check_url(url: str) -> None:
    """Raise `ValueError` naming what is wrong unless `url` is an absolute http(s) URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"{url!r} is not an http:// or https:// URL")
    if not parts.hostname:
        raise ValueError(f"{url!r} has no host")
    try:
        parts.port  # noqa: B018 (urlsplit checks the port only when asked)
    except ValueError as exc:
        raise ValueError(f"{url!r}: {exc}") from None


def _request(url: str, body: bytes, headers: Mapping[str, str]) -> tuple[str, int, bool, bytes]:
    parts = urlsplit(url)
    secure = parts.scheme == "https"
    host = parts.hostname or ""
    port = parts.port or (443 if secure else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    lines = [
        f"POST {target} HTTP/1.1",
        f"Host: {parts.netloc.rpartition('@')[2]}",
        f"User-Agent: {USER_AGENT}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        "Connection: close",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    return host, port, secure, ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def parse_status_line(line: bytes) -> int:
    """The status code of ``HTTP/1.1 200 OK``; `HttpPostError` for anything else."""
    version, _, rest = line.decode("latin-1").strip().partition(" ")
    code = rest[:3]
    if not version.startswith("HTTP/1.") or not code.isdigit() or not 100 <= int(code) <= 599:
        raise HttpPostError(f"not an HTTP status line: {line[:80]!r}")
    return int(code)


async def post(url: str, body: bytes, headers: Mapping[str, str], *, timeout: float) -> int:  # noqa: ASYNC109 (the whole exchange's bound)
    """POST `body` (JSON) to `url`: the response's status code.

    Raises `HttpPostError` when the server cannot be reached or answers garbage, `TimeoutError`
    when the whole exchange takes longer than `timeout` seconds.
    """
    host, port, secure, request = _request(url, body, headers)
    async with asyncio.timeout(timeout):
        try:
            reader, writer = await asyncio.open_connection(
                host, port, ssl=ssl.create_default_context() if secure else None, limit=MAX_STATUS_LINE
            )
        except OSError as exc:
            raise HttpPostError(f"cannot reach {host}:{port}: {exc}") from exc
        try:
            writer.write(request)
            await writer.drain()
            line = await reader.readline()
        except (OSError, ValueError) as exc:  # ValueError: a status line beyond the limit
            raise HttpPostError(f"{host}:{port}: {exc}") from exc
        finally:
            writer.close()
            with contextlib.suppress(OSError):  # the server's reset after our request is not our concern
                await writer.wait_closed()
    return parse_status_line(line)
