"""`OpenAIRealtimeSIPModel`: attach to a call that OpenAI's own SIP connector answered.

In this flow (the Agents SDK's twilio_sip example) the phone call reaches OpenAI, not voicegw:
OpenAI posts a ``realtime.call.incoming`` webhook, the application accepts the call over HTTP
(`accept_call`, after `voicegw.models.openai_webhooks.verify_webhook`), then attaches a session
to it by its ``call_id`` over the usual Realtime
WebSocket (``/realtime?call_id=...``). The audio never passes through voicegw; the session sees
transcripts, tool calls and history. voicegw's own SIP path (``voicegw serve``) keeps the media
in our hands and works offline; this one is for deployments that already route calls to OpenAI.
"""

from __future__ import annotations

import asyncio
import json
import os
import urllib.error
import urllib.request
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any
from urllib.parse import quote

from voicegw.contracts.model import ModelUnavailable, RealtimeModelConfig
from voicegw.models.openai import DEFAULT_BASE_URL, OpenAIRealtimeModel

ACCEPT_TIMEOUT_S = 10.0


class OpenAIRealtimeSIPModel(OpenAIRealtimeModel):
    """The OpenAI Realtime model attached to an existing call by its ``call_id``.

    Built with no arguments, as in the SDK; the key comes from ``model_config`` (``api_key``) or
    ``OPENAI_API_KEY``, the call from ``model_config["call_id"]``.
    """

    def __init__(
        self, *, api_key: str | None = None, headers: Mapping[str, str] | None = None, **kw: Any
    ) -> None:
        # The SDK builds this model before it has the call's options: a missing key is only an
        # error once it connects.
        key = api_key or os.environ.get("OPENAI_API_KEY")
        super().__init__(api_key=key, headers=headers if headers is not None or key else {}, **kw)

    async def connect(self, config: RealtimeModelConfig) -> None:
        """Attach to the call; raises `ValueError` when no ``call_id`` was given."""
        if self._call_id is None:
            raise ValueError("OpenAIRealtimeSIPModel needs model_config={'call_id': ...} to attach to a call")
        if not self._headers:
            raise ModelUnavailable(
                "the OpenAI SIP model needs an API key: model_config api_key or OPENAI_API_KEY"
            )
        await super().connect(config)


def accept_call_request(
    call_id: str, session: Mapping[str, Any], *, base_url: str = DEFAULT_BASE_URL
) -> tuple[str, bytes]:
    """The URL and JSON body that accept call `call_id` with `session` (a GA ``realtime`` session:
    ``model``, ``instructions``, ``audio``...). The Calls API answers 200, or 404 when the caller
    has already hung up."""
    http_base = base_url.replace("wss://", "https://", 1).replace("ws://", "http://", 1).rstrip("/")
    body = {"type": "realtime", **session}
    return f"{http_base}/realtime/calls/{quote(call_id, safe='')}/accept", json.dumps(body).encode()


class CallGone(Exception):
    """The call to accept no longer exists (the caller hung up before it was answered)."""


async def accept_call(
    call_id: str,
    session: Mapping[str, Any],
    *,
    api_key: str | None = None,
    base_url: str | None = None,
    timeout_s: float = ACCEPT_TIMEOUT_S,
) -> None:
    """Accept call `call_id` through OpenAI's Calls API (the request runs in a worker thread).

    Raises `CallGone` on 404, `ModelUnavailable` on 401/403 or with no key, `ConnectionError`
    for anything else.
    """
    key = api_key or os.environ.get("OPENAI_API_KEY")
    if not key:
        raise ModelUnavailable("accepting a call needs an API key: api_key= or OPENAI_API_KEY")
    url, body = accept_call_request(
        call_id, session, base_url=base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
    )
    request = urllib.request.Request(
        url, data=body, method="POST",
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )  # fmt: skip
    try:
        await asyncio.to_thread(_post, request, timeout_s)
    except urllib.error.HTTPError as exc:
        if exc.code == HTTPStatus.NOT_FOUND:
            raise CallGone(f"call {call_id} no longer exists") from None
        if exc.code in (HTTPStatus.UNAUTHORIZED, HTTPStatus.FORBIDDEN):
            raise ModelUnavailable(f"the Calls API refused the key (HTTP {exc.code})") from None
        raise ConnectionError(f"accepting call {call_id} failed: HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise ConnectionError(f"cannot reach the Calls API at {url}: {exc}") from None


def _post(request: urllib.request.Request, timeout: float) -> None:
    with urllib.request.urlopen(request, timeout=timeout) as response:
        response.read()
