"""Twilio Media Streams, sans-I/O: the JSON messages of a bidirectional stream and mark bookkeeping.

Messages from Twilio (``connected``, ``start``, ``media``, ``mark``, ``dtmf``, ``stop``) are
parsed by `parse_message` into frozen dataclasses; messages to Twilio (``media``, ``mark``,
``clear``) are built by `media_message`, `mark_message` and `clear_message`. Shapes follow
https://www.twilio.com/docs/voice/media-streams/websocket-messages. Garbage from the peer raises
`TwilioProtocolError` (a `ValueError`); the transport logs it and goes on.

`PlaybackMarks` turns Twilio's mark echoes into exact playback positions: a mark is sent after
each chunk of agent audio and Twilio echoes it once the audio before it has been played, so the
last echoed mark of an item says how much of it the caller heard. After a ``clear`` Twilio also
echoes the marks of the audio it dropped: those are recorded as cleared and never count.
"""

from __future__ import annotations

import base64
import json
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

SAMPLE_RATE = 8000
"""Media Streams audio is always 8 kHz mono G.711 μ-law."""

ENCODING = "audio/x-mulaw"
MAX_REMEMBERED_ITEMS = 64
"""Items whose played ms stay known; a long call does not grow memory without bound."""

DTMF_DIGITS = frozenset("0123456789*#ABCD")


class TwilioProtocolError(ValueError):
    """A message from Twilio that is not JSON, not an object, or lacks what its event needs."""


@dataclass(frozen=True, slots=True)
class MediaFormat:
    """The stream's audio format (``start.mediaFormat``)."""

    encoding: str = ENCODING
    sample_rate: int = SAMPLE_RATE
    channels: int = 1


@dataclass(frozen=True, slots=True)
class Connected:
    """The first message of a stream: the protocol to expect."""

    protocol: str
    version: str
    type: Literal["connected"] = "connected"


@dataclass(frozen=True, slots=True)
class Start:
    """The stream's metadata, sent once after ``connected``."""

    stream_sid: str
    call_sid: str
    account_sid: str = ""
    tracks: tuple[str, ...] = ("inbound",)
    custom_parameters: Mapping[str, str] = field(default_factory=dict)
    """The ``<Parameter>`` elements of the TwiML ``<Stream>``."""

    media_format: MediaFormat = field(default_factory=MediaFormat)
    type: Literal["start"] = "start"


@dataclass(frozen=True, slots=True)
class Media:
    """A chunk of the caller's audio (20 ms in practice)."""

    payload: bytes
    """μ-law bytes, base64-decoded."""

    track: str = "inbound"
    chunk: int = 0
    """Chunk number, from 1."""

    timestamp_ms: int = 0
    """Position of the chunk in the stream, in ms since it started."""

    type: Literal["media"] = "media"


@dataclass(frozen=True, slots=True)
class Mark:
    """The echo of a mark we sent: the audio before it has been played (or cleared)."""

    name: str
    type: Literal["mark"] = "mark"


@dataclass(frozen=True, slots=True)
class Dtmf:
    """The caller pressed a key."""

    digit: str
    track: str = "inbound_track"
    type: Literal["dtmf"] = "dtmf"


@dataclass(frozen=True, slots=True)
class Stop:
    """The stream has ended (the call hung up, or the stream was stopped)."""

    call_sid: str = ""
    account_sid: str = ""
    type: Literal["stop"] = "stop"


TwilioMessage: TypeAlias = Connected | Start | Media | Mark | Dtmf | Stop
"""A message from Twilio."""


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TwilioProtocolError(f"{where} is not a JSON object")
    return value


def _string(body: dict[str, Any], key: str, where: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise TwilioProtocolError(f"{where} has no {key!r} string")
    return value


def _int(value: Any, default: int = 0) -> int:
    """Twilio sends counters as strings ("1"); tolerate numbers, fall back on garbage."""
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: Infinity
        return default


def parse_message(text: str | bytes) -> TwilioMessage:
    """One WebSocket message from Twilio; `TwilioProtocolError` for malformed or unknown ones."""
    try:
        message = _object(json.loads(text), "the message")
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # nested past the parser's depth
        if isinstance(exc, TwilioProtocolError):
            raise
        raise TwilioProtocolError(f"the message is not JSON: {str(text)[:60]!r}") from None
    event = message.get("event")
    match event:
        case "connected":
            return Connected(str(message.get("protocol", "")), str(message.get("version", "")))
        case "start":
            return _parse_start(message)
        case "media":
            return _parse_media(_object(message.get("media"), "media.media"))
        case "mark":
            return Mark(_string(_object(message.get("mark"), "mark.mark"), "name", "mark.mark"))
        case "dtmf":
            body = _object(message.get("dtmf"), "dtmf.dtmf")
            digit = _string(body, "digit", "dtmf.dtmf")
            if digit not in DTMF_DIGITS:
                raise TwilioProtocolError(f"dtmf digit {digit!r} is not one of 0-9 * # A-D")
            return Dtmf(digit, str(body.get("track", "inbound_track")))
        case "stop":
            stop = message.get("stop")
            stop = stop if isinstance(stop, dict) else {}
            return Stop(str(stop.get("callSid", "")), str(stop.get("accountSid", "")))
        case _:
            raise TwilioProtocolError(f"unknown event {event!r}")


def _parse_start(message: dict[str, Any]) -> Start:
    body = _object(message.get("start"), "start.start")
    fmt = body.get("mediaFormat")
    fmt = fmt if isinstance(fmt, dict) else {}
    media_format = MediaFormat(
        str(fmt.get("encoding", ENCODING)),
        _int(fmt.get("sampleRate"), SAMPLE_RATE),
        _int(fmt.get("channels"), 1),
    )
    if media_format.encoding != ENCODING or media_format.sample_rate != SAMPLE_RATE:
        raise TwilioProtocolError(
            f"media format {media_format.encoding} at {media_format.sample_rate} Hz; "
            f"Media Streams send {ENCODING} at {SAMPLE_RATE} Hz"
        )
    params = body.get("customParameters")
    params = params if isinstance(params, dict) else {}
    tracks = body.get("tracks")
    return Start(
        stream_sid=_string(body, "streamSid", "start.start"),
        call_sid=str(body.get("callSid", "")),
        account_sid=str(body.get("accountSid", "")),
        tracks=tuple(str(t) for t in tracks) if isinstance(tracks, list) else ("inbound",),
        custom_parameters={str(k): str(v) for k, v in params.items()},
        media_format=media_format,
    )


def _parse_media(body: dict[str, Any]) -> Media:
    payload = body.get("payload")
    if not isinstance(payload, str):
        raise TwilioProtocolError("media.media has no 'payload' string")
    try:
        audio = base64.b64decode(payload, validate=True)
    except ValueError:  # binascii.Error, or a str with non-ASCII characters (plain ValueError)
        raise TwilioProtocolError("media payload is not base64") from None
    return Media(
        audio,
        str(body.get("track", "inbound")),
        _int(body.get("chunk")),
        _int(body.get("timestamp")),
    )


def media_message(stream_sid: str, payload: bytes) -> str:
    """Agent audio for the caller: μ-law bytes (20 ms chunks keep a ``clear`` prompt)."""
    return json.dumps(
        {"event": "media", "streamSid": stream_sid, "media": {"payload": base64.b64encode(payload).decode()}}
    )


def mark_message(stream_sid: str, name: str) -> str:
    """A mark after the audio sent so far; Twilio echoes it once that audio has played."""
    return json.dumps({"event": "mark", "streamSid": stream_sid, "mark": {"name": name}})


def clear_message(stream_sid: str) -> str:
    """Drop every bit of agent audio Twilio has buffered (barge-in)."""
    return json.dumps({"event": "clear", "streamSid": stream_sid})


@dataclass(frozen=True, slots=True)
class _Pending:
    item_id: str
    played_samples: int
    """Samples of the item that have played once this mark comes back."""


class PlaybackMarks:
    """Which marks are out, and how much of each item the echoed ones say was played."""

    def __init__(self, sample_rate: int = SAMPLE_RATE) -> None:
        self.sample_rate = sample_rate
        self._count = 0
        self._sent: dict[str, int] = {}
        """Samples handed to Twilio per item (played or not)."""
        self._pending: OrderedDict[str, _Pending] = OrderedDict()
        self._cleared: set[str] = set()
        self._played: OrderedDict[str, int] = OrderedDict()
        self.current: str | None = None
        """The item of the last audio sent: the one a barge-in cuts."""

    @property
    def pending(self) -> int:
        """Marks sent and not yet echoed (nor cleared)."""
        return len(self._pending)

    def audio_sent(self, item_id: str, samples: int) -> str:
        """Record `samples` of `item_id` sent; the name of the mark to send right after them."""
        self._count += 1
        name = f"m{self._count}"
        self._sent[item_id] = self._sent.get(item_id, 0) + samples
        while len(self._sent) > MAX_REMEMBERED_ITEMS:
            self._sent.pop(next(iter(self._sent)))
        self._pending[name] = _Pending(item_id, self._sent[item_id])
        self.current = item_id
        return name

    def echoed(self, name: str) -> bool:
        """Twilio echoed mark `name`; False when it is not one of ours (nor a cleared one)."""
        if name in self._cleared:
            self._cleared.discard(name)
            return True
        if name not in self._pending:
            return False
        # Echoes come in order: a later one means the earlier audio has played too.
        self._cleared.clear()
        while self._pending:
            older, pending = self._pending.popitem(last=False)
            self._record(pending)
            if older == name:
                break
        return True

    def clear(self) -> int:
        """Audio not yet echoed is dropped (a ``clear``); ms of the current item actually played."""
        self._cleared.update(self._pending)
        self._pending.clear()
        for item_id in list(self._sent):
            self._sent[item_id] = self._played.get(item_id, 0)
        return self.played_ms(self.current) if self.current is not None else 0

    def played_ms(self, item_id: str) -> int:
        """Milliseconds of `item_id` whose marks Twilio has echoed."""
        return self._played.get(item_id, 0) * 1000 // self.sample_rate

    def _record(self, pending: _Pending) -> None:
        played = max(self._played.get(pending.item_id, 0), pending.played_samples)
        self._played[pending.item_id] = played
        self._played.move_to_end(pending.item_id)
        while len(self._played) > MAX_REMEMBERED_ITEMS:
            self._played.popitem(last=False)
