"""The OpenAI Realtime (GA) wire protocol, sans I/O: client events out, typed model events in.

Nothing here touches a socket or a clock. `session_object` and the ``*_event`` builders turn
our commands into the JSON client events of the published API reference; `ServerEventDecoder`
turns the server's JSON events into the typed events of `voicegw.contracts.model`; `WireAudio`
converts PCM at the session rate to and from the wire format (μ-law at 8 kHz, else 24 kHz PCM).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from voicegw.audio.codecs import PCMU
from voicegw.audio.format import BYTES_PER_SAMPLE
from voicegw.audio.resample import Resampler
from voicegw.contracts.model import (
    CachedTokensByModality,
    InputTokensByModality,
    InputTokensDetails,
    ModelAudio,
    ModelAudioDone,
    ModelError,
    ModelInputTranscript,
    ModelItemTruncated,
    ModelRawEvent,
    ModelResponseDone,
    ModelResponseStarted,
    ModelSpeechStarted,
    ModelSpeechStopped,
    ModelToolCall,
    ModelTranscriptDelta,
    ModelUsage,
    OutputTokensByModality,
    RealtimeModelConfig,
    RealtimeModelEvent,
    TurnDetection,
    Usage,
    UserImage,
)

PCM_RATE = 24000
"""The only PCM rate the Realtime API takes and gives."""

PCMU_RATE = 8000
"""At this session rate the wire carries G.711 μ-law, so telephony audio is never resampled."""


DEFAULT_TRANSCRIPTION_MODEL = "gpt-4o-mini-transcribe"

FATAL_ERROR_CODES = frozenset(
    {"invalid_api_key", "insufficient_quota", "model_not_found", "unauthorized", "forbidden"}
)
"""Errors that no retry can fix: the session ends."""

FATAL_ERROR_TYPES = frozenset({"authentication_error", "permission_error"})

BENIGN_ERROR_CODES = frozenset({"response_cancel_not_active"})
"""Errors that only mean a race was lost: a cancel arriving just after the server's VAD cancelled
the response itself (``interrupt_response``). Kept as raw events, not reported as errors."""

RESPONSE_STATUSES = ("completed", "cancelled", "failed", "incomplete")
"""A tuple, not a set: a status that is a list or an object is compared, never hashed."""

_SESSION_TOP_LEVEL_EXTRAS = frozenset(
    {
        "include",
        "max_output_tokens",
        "output_modalities",
        "parallel_tool_calls",
        "prompt",
        "reasoning",
        "tool_choice",
        "tracing",
        "truncation",
    }
)
"""Keys of `RealtimeModelConfig.extra` that are GA session fields, passed through as they are."""

_IGNORED_EXTRAS = frozenset({"input_audio_format", "output_audio_format"})
"""Agents SDK keys we do not pass: the wire format follows the session's sample rate."""


class OpenAIProtocolError(ValueError):
    """A server event that does not follow the published protocol."""


# --- client events ---------------------------------------------------------------------------
# One builder per client event of the reference, named after it; each returns the event's JSON.


def audio_format(sample_rate: int) -> dict[str, Any]:
    """The wire format for PCM at `sample_rate`: μ-law at 8 kHz, else 24 kHz PCM."""
    if sample_rate == PCMU_RATE:
        return {"type": "audio/pcmu"}
    return {"type": "audio/pcm", "rate": PCM_RATE}


def turn_detection_object(turn: TurnDetection | None) -> dict[str, Any] | None:
    """`TurnDetection` as the ``audio.input.turn_detection`` object (None: the client commits)."""
    if turn is None:
        return None
    if turn.type == "semantic_vad":
        detection: dict[str, Any] = {
            "type": "semantic_vad",
            "eagerness": turn.eagerness,
            "create_response": turn.create_response,
            "interrupt_response": turn.interrupt_response,
        }
    else:
        detection = {
            "type": "server_vad",
            "threshold": turn.threshold,
            "prefix_padding_ms": turn.prefix_padding_ms,
            "silence_duration_ms": turn.silence_duration_ms,
            "create_response": turn.create_response,
            "interrupt_response": turn.interrupt_response,
        }
    if turn.model_version is not None:
        detection["model_version"] = turn.model_version
    return detection


def _transcription_object(config: RealtimeModelConfig, model: str) -> dict[str, Any] | None:
    if not config.transcribe_input:
        return None
    transcription: dict[str, Any] = {"model": model}
    if config.vocabulary:
        transcription["prompt"] = "Expect these words: " + ", ".join(config.vocabulary) + "."
    return transcription


def session_object(
    config: RealtimeModelConfig, *, transcription_model: str, include_voice: bool = True
) -> dict[str, Any]:
    """The ``session`` of a ``session.update`` (a GA ``realtime`` session) for `config`.

    `include_voice` is False once the model has spoken: the API refuses a voice change then,
    and would reject the whole update (a handoff's instructions and tools with it).
    """
    extra = dict(config.extra)
    transcription = _transcription_object(config, transcription_model)
    if "input_audio_transcription" in extra:
        transcription = extra.pop("input_audio_transcription")
    audio_input: dict[str, Any] = {
        "format": audio_format(config.sample_rate),
        "transcription": transcription,
        "turn_detection": turn_detection_object(config.turn_detection),
    }
    if "noise_reduction" in extra:
        audio_input["noise_reduction"] = extra.pop("noise_reduction")
    audio_output: dict[str, Any] = {"format": audio_format(config.sample_rate)}
    if config.voice is not None and include_voice:
        audio_output["voice"] = config.voice
    if "speed" in extra:
        audio_output["speed"] = extra.pop("speed")
    session: dict[str, Any] = {
        "type": "realtime",
        "instructions": config.instructions,
        "audio": {"input": audio_input, "output": audio_output},
        "tools": [
            {"type": "function", "name": t.name, "description": t.description, "parameters": t.parameters}
            for t in config.tools
        ],
    }
    if config.max_output_tokens is not None:
        session["max_output_tokens"] = config.max_output_tokens
    if config.prompt is not None:
        session["prompt"] = dict(config.prompt)
    if "modalities" in extra:
        session["output_modalities"] = extra.pop("modalities")
    for key, value in extra.items():
        if key not in _IGNORED_EXTRAS:
            session[key] = value  # GA session fields and anything newer, untouched
    return session


def session_update_event(session: dict[str, Any]) -> dict[str, Any]:
    return {"type": "session.update", "session": session}


def append_audio_event(wire_audio: bytes) -> dict[str, Any]:
    return {"type": "input_audio_buffer.append", "audio": base64.b64encode(wire_audio).decode("ascii")}


def commit_audio_event() -> dict[str, Any]:
    return {"type": "input_audio_buffer.commit"}


def user_message_event(text: str, images: Sequence[UserImage] = ()) -> dict[str, Any]:
    """A user message of `text` (left out when empty and there are images) and `images`."""
    content: list[dict[str, Any]] = [
        {"type": "input_image", "image_url": image.url, **({"detail": image.detail} if image.detail else {})}
        for image in images
    ]
    if text or not images:
        content.insert(0, {"type": "input_text", "text": text})
    item = {"type": "message", "role": "user", "content": content}
    return {"type": "conversation.item.create", "item": item}


def tool_output_event(call_id: str, output: str) -> dict[str, Any]:
    return {
        "type": "conversation.item.create",
        "item": {"type": "function_call_output", "call_id": call_id, "output": output},
    }


def response_create_event(instructions: str | None = None, say: str | None = None) -> dict[str, Any]:
    """``response.create``; `say` asks for exactly that text (the API has no verbatim speech)."""
    if say is not None:
        instructions = f"Say exactly the following words and nothing else: {say}"
    if instructions is None:
        return {"type": "response.create"}
    return {"type": "response.create", "response": {"instructions": instructions}}


def response_cancel_event(response_id: str | None = None) -> dict[str, Any]:
    event: dict[str, Any] = {"type": "response.cancel"}
    if response_id:
        event["response_id"] = response_id
    return event


def truncate_event(item_id: str, content_index: int, audio_end_ms: int) -> dict[str, Any]:
    return {
        "type": "conversation.item.truncate",
        "item_id": item_id,
        "content_index": content_index,
        "audio_end_ms": audio_end_ms,
    }


# --- audio -----------------------------------------------------------------------------------


class WireAudio:
    """PCM at the session rate to and from the wire format; one per connection (stateful)."""

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self._pcmu = PCMU() if sample_rate == PCMU_RATE else None
        self._to_wire = Resampler(sample_rate, PCM_RATE)
        self._from_wire = Resampler(PCM_RATE, sample_rate)
        self._odd = b""  # a PCM delta may split a sample; keep its first byte for the next one

    def encode(self, pcm: bytes) -> bytes:
        """Caller PCM at the session rate -> wire audio."""
        if self._pcmu is not None:
            return self._pcmu.encode(pcm)
        return self._to_wire.process(pcm)

    def decode(self, wire: bytes) -> bytes:
        """Wire audio (any chunking) -> PCM at the session rate."""
        if self._pcmu is not None:
            return self._pcmu.decode(wire)
        data = self._odd + wire
        cut = len(data) - len(data) % BYTES_PER_SAMPLE
        self._odd = data[cut:]
        return self._from_wire.process(data[:cut])

    def wire_ms(self, wire: bytes) -> float:
        """Duration of wire audio, in milliseconds."""
        if self._pcmu is not None:
            return len(wire) * 1000 / PCMU_RATE
        return len(wire) * 1000 / (PCM_RATE * BYTES_PER_SAMPLE)


# --- server events ---------------------------------------------------------------------------


def _field(event: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    value = event.get(name)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise OpenAIProtocolError(f"{event.get('type')!r} event has no valid {name!r}: {value!r}")
    return value


def _text(body: dict[str, Any], name: str) -> str:
    """An optional string field: anything else (a list or object, which cannot even key a dict)
    counts as absent."""
    value = body.get(name)
    return value if isinstance(value, str) else ""


def _usage(response: dict[str, Any], output_audio_ms: float) -> list[RealtimeModelEvent]:
    """The `ModelUsage` of a ``response.done`` (as the SDK converts it), when it reports usage or
    audio was played out of it."""
    usage = response.get("usage")
    if not isinstance(usage, dict):
        return [ModelUsage(Usage(output_audio_ms=round(output_audio_ms)))] if output_audio_ms else []
    inputs = _mapping(usage.get("input_token_details"))
    outputs = _mapping(usage.get("output_token_details"))
    input_tokens, output_tokens = _count(usage, "input_tokens"), _count(usage, "output_tokens")
    total = usage.get("total_tokens")
    return [
        ModelUsage(
            Usage(
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                total_tokens=total if isinstance(total, int) else input_tokens + output_tokens,
                output_audio_ms=round(output_audio_ms),
                requests=1,
                input_tokens_details=InputTokensDetails(_count(inputs, "cached_tokens")),
            ),
            _input_details(inputs) if "input_token_details" in usage else None,
            OutputTokensByModality(**_counts(outputs, ("text_tokens", "audio_tokens")))
            if "output_token_details" in usage
            else None,
        )
    ]


_MODALITIES = ("text_tokens", "audio_tokens", "image_tokens")


def _input_details(details: dict[str, Any]) -> InputTokensByModality:
    cached = details.get("cached_tokens_details")
    return InputTokensByModality(
        **_counts(details, (*_MODALITIES, "cached_tokens")),
        cached_tokens_details=CachedTokensByModality(**_counts(cached, _MODALITIES))
        if isinstance(cached, dict)
        else None,
    )


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _count(values: dict[str, Any], name: str) -> int:
    return _counts(values, (name,))[name] or 0


def _counts(values: dict[str, Any], names: tuple[str, ...]) -> dict[str, int | None]:
    """The counts of `names` that are numbers; None for the others (as the API's optional fields)."""
    return {name: value if isinstance(value := values.get(name), int) else None for name in names}


def error_from(error: dict[str, Any]) -> ModelError:
    """The ``error`` object of an error event (or a failed response) as a `ModelError`."""
    code = _text(error, "code") or _text(error, "type")
    message = _text(error, "message") or f"the model reported an error ({code or 'no details'})"
    fatal = code in FATAL_ERROR_CODES or _text(error, "type") in FATAL_ERROR_TYPES
    return ModelError(message, code=code, fatal=fatal)


@dataclass
class _PendingCall:
    call_id: str
    name: str
    arguments: str
    item_id: str
    response_id: str


@dataclass
class ServerEventDecoder:
    """Server events in, model events out; keeps what spans events (partials, calls, audio)."""

    audio: WireAudio
    active_response: str | None = None
    """The response in progress (``response.created`` seen, ``response.done`` not yet)."""

    spoke: bool = False
    """The model has produced audio in this session (its voice is fixed from then on)."""

    session_id: str | None = None
    """Set by ``session.created``: the server accepted the connection."""

    _partials: dict[str, str] = field(default_factory=dict)
    _calls: dict[str, _PendingCall] = field(default_factory=dict)
    _emitted_calls: set[str] = field(default_factory=set)
    _audio_ms: dict[str, float] = field(default_factory=dict)

    def decode_text(self, text: str | bytes) -> list[RealtimeModelEvent]:
        """One WebSocket message; raises `OpenAIProtocolError` for one that is not a JSON event."""
        try:
            event = json.loads(text)
        except (ValueError, RecursionError) as exc:  # RecursionError: nested past the parser's depth
            raise OpenAIProtocolError(f"server message is not JSON: {exc}") from None
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            raise OpenAIProtocolError(f"server message is not an event: {str(text)[:80]!r}")
        return self.decode(event)

    def decode(self, event: dict[str, Any]) -> list[RealtimeModelEvent]:
        """The model events for one server event, the raw event first."""
        return [ModelRawEvent(event), *self._map(event)]

    def _map(self, event: dict[str, Any]) -> list[RealtimeModelEvent]:
        match event["type"]:
            case "input_audio_buffer.speech_started":
                return [
                    ModelSpeechStarted(_field(event, "audio_start_ms", int), _field(event, "item_id", str))
                ]
            case "input_audio_buffer.speech_stopped":
                return [ModelSpeechStopped(_field(event, "audio_end_ms", int), _field(event, "item_id", str))]
            case "conversation.item.input_audio_transcription.delta":
                item_id = _field(event, "item_id", str)
                text = self._partials.get(item_id, "") + (_field(event, "delta", (str, type(None))) or "")
                self._partials[item_id] = text
                return [ModelInputTranscript(item_id, text, is_final=False)]
            case "conversation.item.input_audio_transcription.completed":
                item_id = _field(event, "item_id", str)
                self._partials.pop(item_id, None)
                return [ModelInputTranscript(item_id, _field(event, "transcript", str), is_final=True)]
            case "response.created":
                response_id = _text(_field(event, "response", dict), "id")
                self.active_response = response_id
                self._audio_ms[response_id] = 0.0
                return [ModelResponseStarted(response_id)]
            case "response.output_audio.delta":
                return [self._audio_delta(event)]
            case "response.output_audio.done":
                return [ModelAudioDone(_field(event, "item_id", str), _field(event, "content_index", int))]
            case "response.output_audio_transcript.delta" | "response.output_text.delta":
                return [
                    ModelTranscriptDelta(
                        _field(event, "item_id", str),
                        _field(event, "response_id", str),
                        _field(event, "delta", str),
                    )
                ]
            case "response.function_call_arguments.done":
                call = _PendingCall(
                    _field(event, "call_id", str),
                    _field(event, "name", str),
                    _field(event, "arguments", str),
                    _field(event, "item_id", str),
                    _field(event, "response_id", str),
                )
                self._calls[call.call_id] = call
                return []
            case "response.output_item.done":
                return self._output_item_done(event)
            case "response.done":
                return self._response_done(_field(event, "response", dict))
            case "conversation.item.truncated":
                return [ModelItemTruncated(_field(event, "item_id", str), _field(event, "audio_end_ms", int))]
            case "session.created":
                self.session_id = _text(_field(event, "session", dict), "id")
                return []
            case "error":
                error = _field(event, "error", dict)
                return [] if _text(error, "code") in BENIGN_ERROR_CODES else [error_from(error)]
            case _:
                return []

    def _audio_delta(self, event: dict[str, Any]) -> ModelAudio:
        try:
            wire = base64.b64decode(_field(event, "delta", str), validate=True)
        except ValueError as exc:  # binascii.Error, or a str with non-ASCII characters
            raise OpenAIProtocolError(f"audio delta is not base64: {exc}") from None
        response_id = _field(event, "response_id", str)
        self._audio_ms[response_id] = self._audio_ms.get(response_id, 0.0) + self.audio.wire_ms(wire)
        self.spoke = True
        return ModelAudio(
            _field(event, "item_id", str),
            response_id,
            self.audio.decode(wire),
            _field(event, "content_index", int),
        )

    def _output_item_done(self, event: dict[str, Any]) -> list[RealtimeModelEvent]:
        item = _field(event, "item", dict)
        if item.get("type") != "function_call":
            return []
        call_id = _text(item, "call_id")
        pending = self._calls.pop(call_id, None)
        if item.get("status") not in (None, "completed"):
            return []  # cut off (a barge-in, max tokens): its arguments are partial
        arguments = item.get("arguments")
        call = _PendingCall(
            call_id,
            _text(item, "name") or (pending.name if pending else ""),
            arguments if isinstance(arguments, str) else (pending.arguments if pending else ""),
            _text(item, "id") or (pending.item_id if pending else ""),
            _text(event, "response_id") or (pending.response_id if pending else ""),
        )
        return self._tool_call(call)

    def _tool_call(self, call: _PendingCall) -> list[RealtimeModelEvent]:
        if not call.call_id or call.call_id in self._emitted_calls:
            return []
        self._emitted_calls.add(call.call_id)
        return [ModelToolCall(call.call_id, call.name, call.arguments, call.item_id, call.response_id)]

    def _response_done(self, response: dict[str, Any]) -> list[RealtimeModelEvent]:
        response_id = _text(response, "id")
        status = response.get("status")
        if status not in RESPONSE_STATUSES:
            raise OpenAIProtocolError(f"response.done with status {status!r}")
        if self.active_response == response_id:
            self.active_response = None
        events: list[RealtimeModelEvent] = []
        # Calls whose output_item.done never came: run them only if the response completed.
        for call in [c for c in self._calls.values() if c.response_id == response_id]:
            del self._calls[call.call_id]
            if status == "completed":
                events.extend(self._tool_call(call))
        details = _mapping(response.get("status_details"))
        if status == "failed" and isinstance(details.get("error"), dict):
            events.append(error_from(details["error"]))
        events += _usage(response, self._audio_ms.pop(response_id, 0.0))
        events.append(ModelResponseDone(response_id, status))
        return events
