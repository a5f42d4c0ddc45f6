"""Signed webhooks: ``call.started``, ``call.answered`` and ``call.ended`` POSTed to the operator's URLs.

Each delivery is a JSON body ``{"id", "type", "created_at", "data"}`` with these headers:

- ``X-Voicegw-Event``: the event type; ``X-Voicegw-Delivery``: the body's ``id``, the same on
  every retry (a receiver that saw it already answers 2xx and ignores it);
- ``X-Voicegw-Timestamp``: Unix seconds when this attempt was signed;
- ``X-Voicegw-Signature``: ``v1=`` and the hex HMAC-SHA256, keyed with the shared secret, of
  ``timestamp + "." + body`` (the raw bytes received).

A receiver recomputes the HMAC over the raw body, compares it in constant time, and refuses
timestamps further than a tolerance (default 5 minutes) from its own clock, so that a captured
request cannot be replayed later: `verify` does exactly that.

Delivery never touches a call: `WebhookSender.submit` only queues (a bounded queue: overflow is
dropped and counted), and a few worker tasks POST, retrying connection errors, timeouts, 408,
429 and 5xx with exponential back-off and jitter. Every delivery's outcome is counted
(``voicegw_webhook_deliveries_total{event,outcome}``); failures are logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import random
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

import structlog

from voicegw.server.cdr import CallAnswered, CallEnded, CallLifecycleEvent, CallStarted, iso_utc, plain
from voicegw.server.http_post import HttpPostError, post

log = structlog.get_logger(__name__)

EVENT_HEADER = "X-Voicegw-Event"
DELIVERY_HEADER = "X-Voicegw-Delivery"
TIMESTAMP_HEADER = "X-Voicegw-Timestamp"
SIGNATURE_HEADER = "X-Voicegw-Signature"
SIGNATURE_VERSION = "v1"
DEFAULT_TOLERANCE_S = 300.0
"""How far a receiver lets a delivery's timestamp stray from its clock (`verify`)."""

WORKERS = 4
"""Deliveries in flight at once: a hanging receiver holds at most this many."""

BACKOFF_BASE_S = 0.5
BACKOFF_MAX_S = 30.0
RETRY_STATUSES = frozenset({408, 429})
"""Besides 5xx: statuses that say "later", not "never"."""

Outcome: TypeAlias = Literal["delivered", "rejected", "failed", "dropped"]
"""delivered: 2xx; rejected: another 4xx (not retried); failed: retries exhausted; dropped: the
queue was full (or the server stopped before it went out)."""

Counter: TypeAlias = Callable[[str, Outcome], None]
"""Counts one delivery by event type and outcome (the metric)."""


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    """``[server.webhooks]``."""

    urls: tuple[str, ...]
    """Every URL receives every event."""

    secret: str
    """The HMAC key shared with the receivers."""

    timeout: float = 5.0
    """Seconds one attempt may take, connection to status line."""

    retries: int = 3
    """Attempts after the first, for errors that may pass."""

    queue_size: int = 1000
    """Deliveries waiting at most; beyond, new ones are dropped and counted."""


class WebhookVerificationError(ValueError):
    """A delivery's signature or timestamp does not check out: refuse it (HTTP 400 or 401)."""


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header's value: ``v1=<hex HMAC-SHA256 of timestamp + "." + body>``."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"{SIGNATURE_VERSION}={digest}"


def verify(
    secret: str,
    body: bytes,
    timestamp: str,
    signature: str,
    *,
    tolerance: float = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> None:
    """Check a received delivery: `body` as received (raw bytes), the ``X-Voicegw-Timestamp`` and
    ``X-Voicegw-Signature`` headers. Returns None if it is genuine and fresh; raises
    `WebhookVerificationError` saying why not. `signature` may list several ``v1=`` values,
    comma-separated (while a secret is being rotated)."""
    try:
        sent_at = int(timestamp)
    except ValueError:
        raise WebhookVerificationError(f"bad timestamp {timestamp[:40]!r}") from None
    skew = abs((time.time() if now is None else now) - sent_at)
    if skew > tolerance:
        raise WebhookVerificationError(f"timestamp {skew:.0f} s away from now (tolerance {tolerance:g} s)")
    expected = sign(secret, timestamp, body)
    if not any(hmac.compare_digest(expected, given.strip()) for given in signature.split(",")):
        raise WebhookVerificationError("signature mismatch")


def event_data(event: CallLifecycleEvent) -> dict[str, Any]:
    """The ``data`` of an event's delivery: the record for ``call.ended``."""
    match event:
        case CallEnded(record=record):
            return record.as_json()
        case CallStarted() | CallAnswered():
            data = plain(event)
            del data["type"]
            data["id"] = data.pop("record_id")
            if "from_uri" in data:
                data["from"], data["to"] = data.pop("from_uri"), data.pop("to_uri")
            return data


def delivery_body(event: CallLifecycleEvent, delivery_id: str, now: float) -> bytes:
    document = {"id": delivery_id, "type": event.type, "created_at": iso_utc(now), "data": event_data(event)}
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


def backoff(attempt: int) -> float:
    """Seconds before retry number `attempt` (from 1): doubling, capped, with jitter."""
    ceiling = min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** (attempt - 1))
    return random.uniform(ceiling / 2, ceiling)


@dataclass(frozen=True, slots=True)
class _Delivery:
    url: str
    event: str
    delivery_id: str
    body: bytes


class WebhookSender:
    """Delivers events to every configured URL from worker tasks of its own; `close()` stops them."""

    def __init__(self, settings: WebhookSettings, count: Counter | None = None) -> None:
        self.settings = settings
        self._count = count
        self._queue: asyncio.Queue[_Delivery] = asyncio.Queue(settings.queue_size)
        self._workers: list[asyncio.Task[None]] = []

    def start(self) -> None:
        if not self._workers:
            self._workers = [
                asyncio.create_task(self._work(), name=f"webhooks-{index}") for index in range(WORKERS)
            ]

    def submit(self, event: CallLifecycleEvent) -> None:
        """Queue `event` for every URL and return at once (never blocks, never raises)."""
        delivery_id = f"evt_{uuid.uuid4().hex}"
        body = delivery_body(event, delivery_id, time.time())
        for url in self.settings.urls:
            try:
                self._queue.put_nowait(_Delivery(url, event.type, delivery_id, body))
            except asyncio.QueueFull:
                log.warning("webhook_dropped", url=url, webhook_event=event.type, cause="queue full")
                self._counted(event.type, "dropped")

    async def close(self, grace: float | None = None) -> None:
        """Let queued deliveries go out for up to `grace` seconds (default: one attempt's
        timeout), then stop; what is left is dropped and counted."""
        if self._workers:
            grace = self.settings.timeout if grace is None else grace
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._queue.join(), grace)
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []
        while not self._queue.empty():
            left = self._queue.get_nowait()
            log.warning("webhook_dropped", url=left.url, webhook_event=left.event, cause="server stopped")
            self._counted(left.event, "dropped")

    async def _work(self) -> None:
        while True:
            delivery = await self._queue.get()
            try:
                outcome = await self._deliver(delivery)
            except asyncio.CancelledError:
                self._counted(delivery.event, "dropped")
                raise
            finally:
                self._queue.task_done()
            self._counted(delivery.event, outcome)

    async def _deliver(self, delivery: _Delivery) -> Outcome:
        settings = self.settings
        cause = ""
        for attempt in range(settings.retries + 1):
            if attempt:
                await asyncio.sleep(backoff(attempt))
            timestamp = str(int(time.time()))
            headers = {
                EVENT_HEADER: delivery.event,
                DELIVERY_HEADER: delivery.delivery_id,
                TIMESTAMP_HEADER: timestamp,
                SIGNATURE_HEADER: sign(settings.secret, timestamp, delivery.body),
            }
            try:
                status = await post(delivery.url, delivery.body, headers, timeout=settings.timeout)
            except (HttpPostError, TimeoutError) as exc:
                cause = str(exc) or f"no answer within {settings.timeout:g} s"
                continue
            if 200 <= status < 300:
                return "delivered"
            cause = f"HTTP {status}"
            if status < 500 and status not in RETRY_STATUSES:
                self._failed(delivery, "rejected", cause, attempt + 1)
                return "rejected"
        self._failed(delivery, "failed", cause, settings.retries + 1)
        return "failed"

    def _failed(self, delivery: _Delivery, outcome: Outcome, cause: str, attempts: int) -> None:
        log.warning(
            "webhook_failed",
            url=delivery.url,
            webhook_event=delivery.event,
            delivery=delivery.delivery_id,
            outcome=outcome,
            cause=cause,
            attempts=attempts,
        )

    def _counted(self, event: str, outcome: Outcome) -> None:
        if self._count is not None:
            self._count(event, outcome)


def webhook_headers(headers: Mapping[str, str]) -> tuple[str, str]:
    """A receiver's helper: the timestamp and signature out of its request's headers (any case);
    `WebhookVerificationError` when one is missing."""
    lowered = {name.lower(): value for name, value in headers.items()}
    for name in (TIMESTAMP_HEADER, SIGNATURE_HEADER):
        if name.lower() not in lowered:
            raise WebhookVerificationError(f"missing header {name}")
    return lowered[TIMESTAMP_HEADER.lower()], lowered[SIGNATURE_HEADER.lower()]
