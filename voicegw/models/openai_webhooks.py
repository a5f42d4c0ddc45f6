"""OpenAI's webhooks, checked before anything is done with them (sans-I/O).

OpenAI signs each webhook as Standard Webhooks do: the headers ``webhook-id``,
``webhook-timestamp`` and ``webhook-signature`` (``v1,<base64 HMAC-SHA256>`` entries) over
``"{id}.{timestamp}.{body}"``, keyed with the secret shown when the endpoint was created
(``whsec_<base64>``). `verify_webhook` checks the signature and the timestamp, then parses the
event; `incoming_call_id` picks the call out of a ``realtime.call.incoming`` event.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

TOLERANCE_S = 300
"""How far a webhook's timestamp may be from now (replays of old deliveries are refused)."""

MAX_BODY_BYTES = 1 << 20


class WebhookError(ValueError):
    """A webhook that is not authentic, is stale, or is not the JSON it should be."""


def sign_webhook(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value for `body` (what OpenAI sends; tests use it too)."""
    digest = hmac.new(_key(secret), f"{webhook_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def signed_headers(secret: str, webhook_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three headers a signed delivery of `body` carries (what OpenAI sends; tests use it too)."""
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign_webhook(secret, webhook_id, timestamp, body),
    }


def verify_webhook(secret: str, headers: Mapping[str, str], body: bytes, *, now: float) -> dict[str, Any]:
    """The webhook's event, once its signature and timestamp check out; `WebhookError` otherwise."""
    if len(body) > MAX_BODY_BYTES:
        raise WebhookError(f"webhook body of {len(body)} bytes is too large")
    lowered = {k.lower(): v for k, v in headers.items()}
    try:
        webhook_id = lowered["webhook-id"]
        timestamp = int(lowered["webhook-timestamp"])
        signatures = lowered["webhook-signature"].split()
    except (KeyError, ValueError) as exc:
        raise WebhookError(f"webhook without valid signature headers ({exc})") from None
    if abs(timestamp - round(now)) > TOLERANCE_S:  # in ints: a 400-digit timestamp overflows a float
        raise WebhookError(f"webhook timestamp {timestamp} is more than {TOLERANCE_S} s from now")
    expected = sign_webhook(secret, webhook_id, timestamp, body)
    # As bytes: compare_digest refuses str with non-ASCII characters, which a header may carry.
    if not any(
        hmac.compare_digest(expected.encode(), given.encode(errors="replace")) for given in signatures
    ):
        raise WebhookError("webhook signature does not match")
    try:
        event = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise WebhookError(f"webhook body is not JSON: {exc}") from None
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        raise WebhookError("webhook body is not an event object")
    return event


def incoming_call_id(event: Mapping[str, Any]) -> str | None:
    """The ``call_id`` of a ``realtime.call.incoming`` event; None for any other event."""
    if event.get("type") != "realtime.call.incoming":
        return None
    data = event.get("data")
    call_id = data.get("call_id") if isinstance(data, Mapping) else None
    if not isinstance(call_id, str) or not call_id or len(call_id) > 200:
        raise WebhookError("realtime.call.incoming without a valid data.call_id")
    return call_id


def _key(secret: str) -> bytes:
    encoded = secret.removeprefix("whsec_")
    try:
        return base64.b64decode(encoded, validate=True)
    except binascii.Error:
        return encoded.encode()  # a secret not in base64 is used as its bytes
