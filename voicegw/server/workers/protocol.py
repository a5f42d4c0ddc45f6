"""The control messages between the server (which owns pjsua2) and its call workers, sans-I/O.

One message per SOCK_SEQPACKET datagram: a JSON object whose ``type`` names the message, the
other keys its fields. `encode` writes one, `decode` reads one and checks every field against
the message's annotations, raising `ProtocolError` on anything else: the server decodes what a
worker sends with the same care as what the network sends, so that a broken worker can never
take the server down. The RTP/RTCP sockets of a call travel beside `StartMedia` as file
descriptors (SCM_RIGHTS), not in the message.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias, Union

MAX_MESSAGE = 256 * 1024
"""Bytes of one message at most (a metrics snapshot is the largest, a few tens of KiB)."""

MAX_KEY = 2**53
"""Call keys are positive integers below this (JSON numbers stay exact)."""
EXIT_MODEL_STUCK = 4
"""A worker's exit status when it retired itself: its embedded model is held by an inference step
stuck for good (a thread stuck in a C library cannot be stopped, only its process), and its last
call has ended. The server starts another without calling it a failure."""


class ProtocolError(ValueError):
    """A control message that is not one: bad JSON, an unknown type, a missing or mistyped field."""


# --- server → worker ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Configure:
    """The first message a worker gets: the server's configuration (pickled, base64)."""

    config: str
    type: Literal["configure"] = "configure"


@dataclass(frozen=True, slots=True)
class Prepare:
    """A call rings: resolve its agent and connect its model; answer `Ready` or `Refused`."""

    key: int
    call_id: str
    from_uri: str
    to_uri: str
    source_host: str
    source_port: int
    headers: dict[str, str]
    sample_rate: int
    type: Literal["prepare"] = "prepare"


@dataclass(frozen=True, slots=True)
class StartMedia:
    """Media was negotiated: the call's RTP and RTCP sockets come with this message."""

    key: int
    codec: str
    payload_type: int
    remote_host: str
    remote_port: int
    rtcp_host: str
    rtcp_port: int
    telephone_event_pt: int | None
    sample_rate: int
    ptime_ms: int
    media_timeout: float
    srtp_suite: str | None = None
    srtp_local_key: str = ""
    """Hex, as is `srtp_remote_key`."""
    srtp_remote_key: str = ""
    type: Literal["start_media"] = "start_media"


@dataclass(frozen=True, slots=True)
class Answered:
    """The 200 OK went out: run the call's handler."""

    key: int
    type: Literal["answered"] = "answered"


@dataclass(frozen=True, slots=True)
class MediaMoved:
    """A re-INVITE moved the far end's media (and perhaps its SRTP key)."""

    key: int
    remote_host: str
    remote_port: int
    rtcp_host: str
    rtcp_port: int
    type: Literal["media_moved"] = "media_moved"


@dataclass(frozen=True, slots=True)
class Rekey:
    """The far end's new SDES key (hex), from a re-INVITE."""

    key: int
    remote_key: str
    type: Literal["rekey"] = "rekey"


@dataclass(frozen=True, slots=True)
class Hold:
    """Stop sending (held) or send again."""

    key: int
    held: bool
    type: Literal["hold"] = "hold"


@dataclass(frozen=True, slots=True)
class StateChanged:
    """The call was held or resumed by the far end (a `CallTrigger` value)."""

    key: int
    trigger: str
    reason: str
    type: Literal["state_changed"] = "state_changed"


@dataclass(frozen=True, slots=True)
class Dtmf:
    """A digit the caller sent by SIP INFO (RFC 4733 digits are the worker's own)."""

    key: int
    digit: str
    duration_ms: int
    type: Literal["dtmf"] = "dtmf"


@dataclass(frozen=True, slots=True)
class TransferStatus:
    """The final answer to a worker's `Transfer`."""

    key: int
    status: int
    reason: str
    type: Literal["transfer_status"] = "transfer_status"


@dataclass(frozen=True, slots=True)
class Ended:
    """The call is over (either side): close its media and answer `Finished`."""

    key: int
    end_reason: str
    detail: str
    type: Literal["ended"] = "ended"


@dataclass(frozen=True, slots=True)
class SnapshotRequest:
    """Send a `MetricsSnapshot` now (someone scrapes the metrics)."""

    type: Literal["snapshot_request"] = "snapshot_request"


@dataclass(frozen=True, slots=True)
class Ping:
    """Are you there? Answer `Pong` with the same `seq` (the heartbeat: `heartbeat.py`)."""

    seq: int
    type: Literal["ping"] = "ping"


@dataclass(frozen=True, slots=True)
class Stop:
    """No calls are left: close down and exit."""

    type: Literal["stop"] = "stop"


# --- worker → server ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Started:
    """The worker is configured and its agents are loaded: it takes calls."""

    pid: int
    type: Literal["started"] = "started"


@dataclass(frozen=True, slots=True)
class StartFailed:
    """The worker cannot take calls (a missing model, an agent that does not import); it exits."""

    error: str
    type: Literal["start_failed"] = "start_failed"


@dataclass(frozen=True, slots=True)
class Ready:
    """The call's agent and model are ready: answer it."""

    key: int
    type: Literal["ready"] = "ready"


@dataclass(frozen=True, slots=True)
class Refused:
    """Refuse the call with this final response."""

    key: int
    status: int
    reason: str
    retry: bool
    type: Literal["refused"] = "refused"


@dataclass(frozen=True, slots=True)
class HangUp:
    """The call's handler ends the call (an `EndReason` value and the words)."""

    key: int
    end_reason: str
    detail: str
    type: Literal["hang_up"] = "hang_up"


@dataclass(frozen=True, slots=True)
class Transfer:
    """Blind-transfer the call (REFER) to `target`."""

    key: int
    target: str
    type: Literal["transfer"] = "transfer"


@dataclass(frozen=True, slots=True)
class Facts:
    """Facts about the call for its record, which the server keeps (`CallRecords.note`)."""

    key: int
    facts: dict[str, str]
    type: Literal["facts"] = "facts"


@dataclass(frozen=True, slots=True)
class Finished:
    """The call's media is closed: its final counters (`RtpEndpoint.stats`'s numbers)."""

    key: int
    stats: dict[str, float] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)
    """Inbound datagrams dropped, by reason."""
    type: Literal["finished"] = "finished"


@dataclass(frozen=True, slots=True)
class Pong:
    """The answer to `Ping` `seq`: this worker's loop turns."""

    seq: int
    type: Literal["pong"] = "pong"


@dataclass(frozen=True, slots=True)
class MetricsSnapshot:
    """The worker's whole metrics registry, in Prometheus text format."""

    text: str
    type: Literal["metrics"] = "metrics"


ToWorker: TypeAlias = (
    Configure
    | Prepare
    | StartMedia
    | Answered
    | MediaMoved
    | Rekey
    | Hold
    | StateChanged
    | Dtmf
    | TransferStatus
    | Ended
    | SnapshotRequest
    | Ping
    | Stop
)
ToServer: TypeAlias = (
    Started | StartFailed | Ready | Refused | HangUp | Transfer | Facts | Finished | MetricsSnapshot | Pong
)
Message: TypeAlias = ToWorker | ToServer

_TYPES: dict[str, type[Any]] = {
    cls.__dataclass_fields__["type"].default: cls
    for cls in (*typing.get_args(ToWorker), *typing.get_args(ToServer))
}


def encode(message: Message) -> bytes:
    """One message as the bytes of one datagram."""
    data = json.dumps(dataclasses.asdict(message), separators=(",", ":")).encode()
    if len(data) > MAX_MESSAGE:
        raise ValueError(f"{message.type} message of {len(data)} bytes exceeds {MAX_MESSAGE}")
    return data


def decode(data: bytes) -> Message:
    """The message in one datagram; `ProtocolError` saying what is wrong with anything else."""
    if len(data) > MAX_MESSAGE:
        raise ProtocolError(f"message of {len(data)} bytes exceeds {MAX_MESSAGE}")
    try:
        obj = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"message is not JSON: {exc}") from None
    except RecursionError:  # nesting deeper than the interpreter's stack
        raise ProtocolError("message is not JSON that can be read: nested too deeply") from None
    if not isinstance(obj, dict):
        raise ProtocolError(f"message is a JSON {type(obj).__name__}, not an object")
    tag = obj.get("type")
    cls = _TYPES.get(tag) if isinstance(tag, str) else None
    if cls is None:
        raise ProtocolError(f"unknown message type {str(tag)[:40]!r}")
    hints = _hints(cls)
    unknown = set(obj) - set(hints)
    if unknown:
        raise ProtocolError(f"{cls.__name__}: unknown field {sorted(unknown)[0][:40]!r}")
    values: dict[str, Any] = {}
    for item in dataclasses.fields(cls):
        if item.name == "type":
            continue
        if item.name not in obj:
            if item.default is dataclasses.MISSING and item.default_factory is dataclasses.MISSING:
                raise ProtocolError(f"{cls.__name__}: missing field {item.name!r}")
            continue
        values[item.name] = _checked(obj[item.name], hints[item.name], f"{cls.__name__}.{item.name}")
    if "key" in values and not 0 < values["key"] < MAX_KEY:
        raise ProtocolError(f"{cls.__name__}.key: {values['key']} is out of range")
    return typing.cast(Message, cls(**values))


_HINTS: dict[type[Any], dict[str, Any]] = {}


def _hints(cls: type[Any]) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _checked(value: Any, hint: Any, where: str) -> Any:
    """`value` if it has the annotated type (JSON's view of it: an int is also a float)."""
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        for option in typing.get_args(hint):
            if option is type(None) and value is None:
                return None
            if option is not type(None) and _is(value, option):
                return _checked(value, option, where)
        raise ProtocolError(f"{where}: {_kind(value)} is not {hint}")
    if origin is dict:
        key_type, value_type = typing.get_args(hint)
        if not isinstance(value, dict):
            raise ProtocolError(f"{where}: {_kind(value)} is not an object")
        return {
            _checked(k, key_type, where): _checked(v, value_type, f"{where}[{str(k)[:40]!r}]")
            for k, v in value.items()
        }
    if not _is(value, hint):
        raise ProtocolError(f"{where}: {_kind(value)} is not {getattr(hint, '__name__', hint)}")
    return float(value) if hint is float else value


def _is(value: Any, kind: Any) -> bool:
    if typing.get_origin(kind) is dict:
        return isinstance(value, dict)
    if kind is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


def _kind(value: Any) -> str:
    return f"a JSON {type(value).__name__}"
