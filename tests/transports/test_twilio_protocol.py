"""Twilio Media Streams messages and mark bookkeeping, sans-I/O (no socket, no task)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from voicegw.transports.twilio_protocol import (
    Connected,
    Dtmf,
    Mark,
    Media,
    MediaFormat,
    PlaybackMarks,
    Start,
    Stop,
    TwilioProtocolError,
    clear_message,
    mark_message,
    media_message,
    parse_message,
)

DOCUMENTED: dict[str, Any] = json.loads((Path(__file__).parent / "data" / "twilio_messages.json").read_text())
STREAM = "MZXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
CALL = "CAXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"


def documented(event: str) -> str:
    return json.dumps(DOCUMENTED[event])


def test_documented_messages_parse() -> None:
    assert parse_message(documented("connected")) == Connected("Call", "1.0.0")
    start = parse_message(documented("start"))
    assert start == Start(
        stream_sid=STREAM,
        call_sid=CALL,
        account_sid="ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
        tracks=("inbound",),
        custom_parameters={"FirstName": "Jane", "LastName": "Doe", "RemoteParty": "Bob"},
        media_format=MediaFormat("audio/x-mulaw", 8000, 1),
    )
    assert parse_message(documented("media")) == Media(b"\xff" * 160, "inbound", 1, 5)
    assert parse_message(documented("dtmf")) == Dtmf("1", "inbound_track")
    assert parse_message(documented("mark")) == Mark("my label")
    assert parse_message(documented("stop")) == Stop(CALL, "ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX")
    assert parse_message(documented("stop").encode()) == parse_message(documented("stop"))  # bytes too


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("{not json", "not JSON"),
        ('["event", "media"]', "not a JSON object"),
        ('{"event": "transcription"}', "unknown event 'transcription'"),
        ("{}", "unknown event None"),
        ('{"event": "media"}', "media.media is not a JSON object"),
        ('{"event": "media", "media": {"payload": "@@@"}}', "not base64"),
        ('{"event": "media", "media": {"payload": 5}}', "no 'payload' string"),
        ('{"event": "mark", "mark": {}}', "no 'name' string"),
        ('{"event": "dtmf", "dtmf": {"digit": "x"}}', "dtmf digit 'x'"),
        ('{"event": "start", "start": {"callSid": "CA1"}}', "no 'streamSid' string"),
        (
            '{"event": "start", "start": {"streamSid": "MZ1", "mediaFormat": {"encoding": "audio/l16"}}}',
            "media format audio/l16",
        ),
    ],
)
def test_garbage_raises_a_protocol_error_naming_it(text: str, error: str) -> None:
    with pytest.raises(TwilioProtocolError, match=error):
        parse_message(text)
    assert issubclass(TwilioProtocolError, ValueError)


def test_outbound_messages_have_the_documented_shapes() -> None:
    assert json.loads(media_message(STREAM, b"\x01\x02\xff")) == {
        "event": "media",
        "streamSid": STREAM,
        "media": {"payload": base64.b64encode(b"\x01\x02\xff").decode()},
    }
    assert json.loads(mark_message(STREAM, "m1")) == {
        "event": "mark",
        "streamSid": STREAM,
        "mark": {"name": "m1"},
    }
    assert json.loads(clear_message(STREAM)) == {"event": "clear", "streamSid": STREAM}


def test_played_ms_only_moves_with_echoed_marks() -> None:
    marks = PlaybackMarks(8000)
    names = [marks.audio_sent("a", 160) for _ in range(5)]  # 5 x 20 ms
    assert marks.played_ms("a") == 0 and marks.pending == 5  # sent is not heard
    assert marks.echoed(names[0])
    assert marks.played_ms("a") == 20
    assert marks.echoed(names[2])  # echoes are in order: the one before has played too
    assert marks.played_ms("a") == 60 and marks.pending == 2
    assert not marks.echoed("someone else's")
    assert marks.played_ms("a") == 60


def test_clear_returns_what_was_heard_and_ignores_the_echoes_of_dropped_audio() -> None:
    marks = PlaybackMarks(8000)
    first = [marks.audio_sent("a", 160) for _ in range(3)]
    second = [marks.audio_sent("b", 80) for _ in range(4)]  # 10 ms chunks
    assert marks.echoed(first[-1]) and marks.echoed(second[1])
    assert marks.current == "b"
    assert marks.clear() == 20  # of b, the item being played
    # Twilio echoes the marks of the audio the clear dropped: they are not playback.
    assert all(marks.echoed(name) for name in second[2:])
    assert marks.played_ms("b") == 20 and marks.played_ms("a") == 60 and marks.pending == 0
    # A new answer after the barge-in is tracked from its own start.
    name = marks.audio_sent("c", 160)
    assert marks.echoed(name) and marks.played_ms("c") == 20


def test_clear_with_nothing_echoed_says_nothing_was_heard() -> None:
    marks = PlaybackMarks(8000)
    for _ in range(10):
        marks.audio_sent("a", 160)
    assert marks.clear() == 0
    assert PlaybackMarks(8000).clear() == 0  # nothing ever played
