"""The control messages between the server and its workers: round trips and hostile input."""

from __future__ import annotations

import json

import pytest

from voicegw.server.workers import protocol as p

MESSAGES: list[p.Message] = [
    p.Configure("Y29uZmln"),
    p.Prepare(1, "abc@host", "sip:a@b", "sip:echo@c", "127.0.0.1", 5060, {"x-tenant": "7"}, 8000),
    p.StartMedia(2, "PCMU", 0, "127.0.0.1", 4000, "127.0.0.1", 4001, 101, 8000, 20, 30.0),
    p.StartMedia(
        3, "opus", 111, "::1", 4000, "::1", 4001, None, 48000, 20, 5.5, "AES_CM_128_HMAC_SHA1_80", "0f", "f0"
    ),
    p.Answered(4),
    p.MediaMoved(5, "10.0.0.1", 6000, "10.0.0.1", 6001),
    p.Rekey(6, "abcd"),
    p.Hold(7, True),
    p.StateChanged(8, "hold", "held by the far end"),
    p.Dtmf(9, "#", 160),
    p.TransferStatus(10, 200, "OK"),
    p.Ended(11, "caller_hung_up", "caller hung up"),
    p.SnapshotRequest(),
    p.Ping(1),
    p.Stop(),
    p.Started(1234),
    p.StartFailed("no model"),
    p.Ready(12),
    p.Refused(13, 503, "Agent unavailable", True),
    p.HangUp(14, "agent_hung_up", "bye"),
    p.Transfer(15, "sip:operator@pbx"),
    p.Finished(16, {"packets_in": 50.0, "jitter_ms": 0.25}, {"foreign_ssrc": 3}),
    p.Facts(16, {"agent": "Greeter", "transcript": "/var/lib/voicegw/t.jsonl"}),
    p.MetricsSnapshot("# HELP x y\n"),
    p.Pong(1),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: m.type + str(getattr(m, "key", "")))
def test_every_message_round_trips(message: p.Message) -> None:
    assert p.decode(p.encode(message)) == message


def test_every_message_type_is_covered() -> None:
    assert {m.type for m in MESSAGES} == set(p._TYPES)


def test_an_int_is_a_float_where_a_float_is_expected() -> None:
    data = json.dumps({"type": "finished", "key": 1, "stats": {"lost": 3}, "dropped": {}}).encode()
    message = p.decode(data)
    assert isinstance(message, p.Finished) and message.stats == {"lost": 3.0}


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"{", "not JSON"),
        (b"[1, 2]", "a JSON list, not an object"),
        (b'"ready"', "a JSON str, not an object"),
        (b"{}", "unknown message type 'None'"),
        (b'{"type": 7}', "unknown message type '7'"),
        (b'{"type": "launch_missiles"}', "unknown message type 'launch_missiles'"),
        (b'{"type": "ready"}', "Ready: missing field 'key'"),
        (b'{"type": "ready", "key": "1"}', "Ready.key: a JSON str is not int"),
        (b'{"type": "ready", "key": 1.5}', "Ready.key: a JSON float is not int"),
        (b'{"type": "ready", "key": true}', "Ready.key: a JSON bool is not int"),
        (b'{"type": "ready", "key": 0}', "Ready.key: 0 is out of range"),
        (b'{"type": "ready", "key": -4}', "Ready.key: -4 is out of range"),
        (b'{"type": "ready", "key": 1e300}', "a JSON float is not int"),
        (b'{"type": "ready", "key": 9007199254740993}', "out of range"),
        (b'{"type": "ready", "key": 1, "extra": 2}', "Ready: unknown field 'extra'"),
        (b'{"type": "refused", "key": 1, "status": 503, "reason": null, "retry": true}', "Refused.reason"),
        (b'{"type": "finished", "key": 1, "stats": [], "dropped": {}}', "Finished.stats: a JSON list"),
        (b'{"type": "finished", "key": 1, "stats": {"a": "x"}, "dropped": {}}', "Finished.stats['a']"),
        (b'{"type": "finished", "key": 1, "stats": {}, "dropped": {"a": 1.5}}', "Finished.dropped['a']"),
        (b'{"type": "metrics", "text": {"nested": {}}}', "MetricsSnapshot.text"),
        (b'{"type": "start_media", "key": 1}', "StartMedia: missing field 'codec'"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b" " * (p.MAX_MESSAGE + 1), "exceeds"),
    ],
)
def test_garbage_is_a_protocol_error_saying_what_is_wrong(data: bytes, error: str) -> None:
    with pytest.raises(p.ProtocolError, match=error.replace("[", r"\[").replace("(", r"\(")):
        p.decode(data)


def test_a_protocol_error_is_a_value_error() -> None:
    assert issubclass(p.ProtocolError, ValueError)


def test_encoding_a_message_over_the_size_limit_is_our_misuse() -> None:
    with pytest.raises(ValueError, match="exceeds"):
        p.encode(p.MetricsSnapshot("x" * p.MAX_MESSAGE))
