"""Every field of every JSON message in the fuzz corpora swapped for every JSON type
(voicegw/testing/fuzz/json_fields.py): the decoders raise only their documented errors.

The coverage-guided fuzzer (test_parsers.py) finds such inputs only by luck; this sweep is
deterministic and covers each field of each message the corpora hold.
"""

from __future__ import annotations

import contextlib
import json

import pytest

from voicegw.models.openai_webhooks import WebhookError, incoming_call_id, signed_headers, verify_webhook
from voicegw.testing.fuzz.json_fields import swapped_texts
from voicegw.testing.fuzz.parser_targets import CORPUS, TARGETS, OpenAIReader

WEBHOOK_SECRET = "whsec_" + "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0"


def _messages(target: str) -> list[tuple[str, list[str]]]:
    """Each corpus file of `target` with its lines that are JSON objects (crash inputs included:
    their valid lines are messages too)."""
    found = []
    for path in sorted((CORPUS / target).iterdir()):
        lines = []
        for line in path.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                if isinstance(json.loads(line), dict):
                    lines.append(line)
        if lines:
            found.append((path.name, lines))
    return found


OPENAI = _messages("openai")
TWILIO = _messages("twilio")


def test_the_corpora_hold_messages() -> None:
    assert len(OPENAI) >= 8 and len(TWILIO) >= 5


@pytest.mark.parametrize(("name", "lines"), OPENAI, ids=[name for name, _ in OPENAI])
def test_openai_server_events_with_any_field_of_any_type(name: str, lines: list[str]) -> None:
    # One connection reads the whole conversation; before each real event, every variant of it:
    # the decoder's state (pending calls, partials) is then what a hostile server could make it.
    reader = OpenAIReader()
    variants = 0
    for line in lines:
        for text in swapped_texts(line):
            reader.read(text)
            variants += 1
        reader.read(line)
    reader.replay()
    assert variants > len(lines)


@pytest.mark.parametrize(("name", "lines"), TWILIO, ids=[name for name, _ in TWILIO])
def test_twilio_messages_with_any_field_of_any_type(name: str, lines: list[str]) -> None:
    target = TARGETS["twilio"]
    for line in lines:
        for text in swapped_texts(line):
            target.check(text.encode())


def test_openai_webhooks_with_any_field_of_any_type() -> None:
    event = {
        "object": "event",
        "id": "evt_1",
        "type": "realtime.call.incoming",
        "created_at": 1_700_000_000,
        "data": {"call_id": "rtc_1", "sip_headers": [{"name": "From", "value": "<sip:a@b>"}]},
    }
    for text in swapped_texts(json.dumps(event)):
        body = text.encode()
        headers = signed_headers(WEBHOOK_SECRET, "wh_1", 1_700_000_000, body)
        with contextlib.suppress(WebhookError):
            incoming_call_id(verify_webhook(WEBHOOK_SECRET, headers, body, now=1_700_000_000))


@pytest.mark.parametrize(
    "header",
    [{"webhook-timestamp": "9" * 400}, {"webhook-timestamp": "-" + "9" * 400}, {"webhook-timestamp": "1e9"},
     {"webhook-timestamp": ""}, {"webhook-signature": ""}, {"webhook-signature": "v1,\udcff"},
     {"webhook-id": "\x00" * 10_000}],
)  # fmt: skip
def test_a_webhook_with_hostile_headers_is_refused_with_its_error(header: dict[str, str]) -> None:
    body = b'{"type": "realtime.call.incoming", "data": {"call_id": "rtc_1"}}'
    headers = signed_headers(WEBHOOK_SECRET, "wh_1", 1_700_000_000, body) | header
    with pytest.raises(WebhookError):
        verify_webhook(WEBHOOK_SECRET, headers, body, now=1_700_000_000)
