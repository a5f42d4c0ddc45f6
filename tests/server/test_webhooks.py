"""Webhooks against a real local HTTP server: signed, verified, retried, never in the way."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable

import pytest

from tests.server.webhook_receiver import SECRET, Receiver, webhook_receiver
from voicegw.server.cdr import CallStarted
from voicegw.server.http_post import HttpPostError, check_url, parse_status_line
from voicegw.server.webhooks import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    WebhookSender,
    WebhookSettings,
    WebhookVerificationError,
    backoff,
    sign,
    verify,
    webhook_headers,
)
from voicegw.testing.harness import free_tcp_port

STARTED = CallStarted("call_1", "abc@host", "inbound", "<sip:a@x>", "<sip:b@y>", "2026-12-07T10:00:00.000Z")


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with webhook_receiver() as hook:
        yield hook


class Counts:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def __call__(self, event: str, outcome: str) -> None:
        self.seen.append((event, outcome))


def sender_for(url: str, counts: Callable[[str, str], None], **settings: float) -> WebhookSender:
    return WebhookSender(WebhookSettings((url,), SECRET, **settings), counts)  # type: ignore[arg-type]


async def until(condition: Callable[[], bool]) -> None:
    """Wait (10 s at most) for `condition`."""
    async with asyncio.timeout(10):
        while not condition():
            await asyncio.sleep(0.02)


def test_signature_verification() -> None:
    body = b'{"type":"call.started"}'
    now = 1_800_000_000
    signature = sign(SECRET, str(now), body)
    assert signature.startswith("v1=") and len(signature) == 3 + 64
    verify(SECRET, body, str(now), signature, now=now + 299)
    verify(SECRET, body, str(now), f"v1=00, {signature}", now=now)  # a rotated secret beside it
    with pytest.raises(WebhookVerificationError, match="signature mismatch"):
        verify(SECRET, body + b" ", str(now), signature, now=now)
    with pytest.raises(WebhookVerificationError, match="signature mismatch"):
        verify("another secret", body, str(now), signature, now=now)
    with pytest.raises(WebhookVerificationError, match="301 s away from now"):
        verify(SECRET, body, str(now), signature, now=now + 301)  # a replay, later
    with pytest.raises(WebhookVerificationError, match="bad timestamp"):
        verify(SECRET, body, "yesterday", signature, now=now)
    with pytest.raises(WebhookVerificationError, match="missing header X-Voicegw-Signature"):
        webhook_headers({"x-voicegw-timestamp": "1"})


def test_backoff_doubles_with_jitter_and_is_capped() -> None:
    for attempt, ceiling in ((1, 0.5), (2, 1.0), (3, 2.0), (20, 30.0)):
        delays = {backoff(attempt) for _ in range(20)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays) and len(delays) > 1


def test_urls_and_status_lines() -> None:
    check_url("https://hooks.example:8443/calls?x=1")
    for bad, words in (
        ("hooks.example/x", "not an http"),
        ("http:///x", "no host"),
        ("http://h:0x/", "Port"),
    ):
        with pytest.raises(ValueError, match=words):
            check_url(bad)
    assert parse_status_line(b"HTTP/1.1 204 No Content\r\n") == 204
    for garbage in (b"", b"SSH-2.0-OpenSSH\r\n", b"HTTP/1.1 20 OK\r\n"):
        with pytest.raises(HttpPostError):
            parse_status_line(garbage)


async def deliver(url: str, submissions: int = 1, **settings: float) -> list[tuple[str, str]]:
    """Submit `STARTED` `submissions` times, each once the one before has its outcome: the outcomes."""
    counts = Counts()
    sender = sender_for(url, counts, **settings)
    sender.start()
    try:
        for n in range(1, submissions + 1):
            sender.submit(STARTED)
            await until(lambda n=n: len(counts.seen) == n)
    finally:
        await sender.close()
    return counts.seen


async def test_a_delivery_is_signed_and_retried_after_a_500(receiver: Receiver) -> None:
    receiver.statuses = [500]
    assert await deliver(receiver.url) == [("call.started", "delivered")]
    assert receiver.verified == [True, True]
    (first_headers, first), (second_headers, second) = receiver.received
    assert first == second and first_headers[DELIVERY_HEADER] == second_headers[DELIVERY_HEADER]
    assert first_headers[EVENT_HEADER] == "call.started"
    document = json.loads(first)
    assert document["type"] == "call.started" and document["id"] == first_headers[DELIVERY_HEADER]
    assert document["data"] == {
        "id": "call_1",
        "call_id": "abc@host",
        "direction": "inbound",
        "from": "<sip:a@x>",
        "to": "<sip:b@y>",
        "start": "2026-12-07T10:00:00.000Z",
    }


async def test_a_4xx_is_not_retried_and_exhausted_retries_fail(receiver: Receiver) -> None:
    receiver.statuses = [404, 503, 503]
    outcomes = await deliver(receiver.url, 2, retries=1)
    assert outcomes == [("call.started", "rejected"), ("call.started", "failed")]
    assert len(receiver.received) == 3


async def test_an_unreachable_receiver_fails_after_its_retries() -> None:
    outcomes = await deliver(f"http://127.0.0.1:{free_tcp_port()}/hooks", retries=1)
    assert outcomes == [("call.started", "failed")]


async def test_a_hanging_receiver_never_blocks_submit(receiver: Receiver) -> None:
    receiver.hang = True
    counts = Counts()
    sender = sender_for(receiver.url, counts, timeout=0.3, retries=0, queue_size=2)
    sender.start()
    try:
        started = time.monotonic()
        for _ in range(10):  # in one go: 2 fit in the queue, 8 are dropped
            sender.submit(STARTED)
        assert time.monotonic() - started < 0.5
        await until(lambda: len(counts.seen) >= 10)
    finally:
        await sender.close(grace=0)
    outcomes = [outcome for _, outcome in counts.seen]
    assert outcomes.count("dropped") == 8 and outcomes.count("failed") == 2, outcomes
    assert receiver.verified == [True, True]


async def test_close_drops_and_counts_what_is_left() -> None:
    counts = Counts()
    sender = sender_for("http://127.0.0.1:9/never", counts)  # never started: nothing goes out
    sender.submit(STARTED)
    await sender.close(grace=0)
    assert counts.seen == [("call.started", "dropped")]
