"""Client events of the OpenAI Realtime API (GA), checked against the published reference.

Written from the API reference's "Client events" page (developers.openai.com/api/reference/
resources/realtime/client-events) and the matching generated types of the official SDK
(``openai/types/realtime/*_event.py``): required fields, field types, allowed values. Unknown
event types and unknown fields are errors, so that a client drifting from the protocol fails.
`client_event_errors(event)` returns what is wrong (empty when the event is valid).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any

Check = Callable[[Any, str], list[str]]

# --- combinators ---------------------------------------------------------------------------


def is_str(value: Any, path: str) -> list[str]:
    return [] if isinstance(value, str) else [f"{path}: expected a string, got {value!r}"]


def is_bool(value: Any, path: str) -> list[str]:
    return [] if isinstance(value, bool) else [f"{path}: expected a boolean, got {value!r}"]


def is_int(low: int | None = None, high: int | None = None) -> Check:
    def check(value: Any, path: str) -> list[str]:
        if not isinstance(value, int) or isinstance(value, bool):
            return [f"{path}: expected an integer, got {value!r}"]
        if (low is not None and value < low) or (high is not None and value > high):
            return [f"{path}: {value} is outside [{low}, {high}]"]
        return []

    return check


def is_number(low: float, high: float) -> Check:
    def check(value: Any, path: str) -> list[str]:
        if not isinstance(value, int | float) or isinstance(value, bool):
            return [f"{path}: expected a number, got {value!r}"]
        return [] if low <= value <= high else [f"{path}: {value} is outside [{low}, {high}]"]

    return check


def one_of(*allowed: Any) -> Check:
    def check(value: Any, path: str) -> list[str]:
        return [] if value in allowed else [f"{path}: {value!r} is not one of {allowed}"]

    return check


def nullable(inner: Check) -> Check:
    def check(value: Any, path: str) -> list[str]:
        return [] if value is None else inner(value, path)

    return check


def list_of(inner: Check) -> Check:
    def check(value: Any, path: str) -> list[str]:
        if not isinstance(value, list):
            return [f"{path}: expected an array, got {value!r}"]
        return [error for i, v in enumerate(value) for error in inner(v, f"{path}[{i}]")]

    return check


def any_json(value: Any, path: str) -> list[str]:
    return []


def is_json_object(value: Any, path: str) -> list[str]:
    """A free-form object (a JSON schema, metadata)."""
    return [] if isinstance(value, dict) else [f"{path}: expected an object, got {value!r}"]


def is_object(required: dict[str, Check], optional: dict[str, Check] | None = None) -> Check:
    optional = optional or {}

    def check(value: Any, path: str) -> list[str]:
        if not isinstance(value, dict):
            return [f"{path}: expected an object, got {value!r}"]
        errors = [f"{path}.{key}: required" for key in required if key not in value]
        for key, item in value.items():
            checker = required.get(key) or optional.get(key)
            if checker is None:
                errors.append(f"{path}.{key}: unknown field")
            else:
                errors.extend(checker(item, f"{path}.{key}"))
        return errors

    return check


def tagged(tag: str, variants: dict[str, Check]) -> Check:
    """An object whose `tag` field picks its schema."""

    def check(value: Any, path: str) -> list[str]:
        if not isinstance(value, dict):
            return [f"{path}: expected an object, got {value!r}"]
        variant = variants.get(str(value.get(tag)))
        if variant is None:
            return [f"{path}.{tag}: {value.get(tag)!r} is not one of {sorted(variants)}"]
        return variant(value, path)

    return check


def base64_audio(value: Any, path: str) -> list[str]:
    if not isinstance(value, str) or not value:
        return [f"{path}: expected non-empty base64 audio"]
    try:
        base64.b64decode(value, validate=True)
    except binascii.Error as exc:
        return [f"{path}: not base64 ({exc})"]
    return []


# --- shared objects ------------------------------------------------------------------------

AUDIO_FORMAT = tagged(
    "type",
    {
        "audio/pcm": is_object({"type": is_str}, {"rate": one_of(24000)}),
        "audio/pcmu": is_object({"type": is_str}),
        "audio/pcma": is_object({"type": is_str}),
    },
)

TURN_DETECTION = nullable(
    tagged(
        "type",
        {
            "server_vad": is_object(
                {"type": is_str},
                {
                    "threshold": is_number(0.0, 1.0),
                    "prefix_padding_ms": is_int(0),
                    "silence_duration_ms": is_int(0),
                    "create_response": is_bool,
                    "interrupt_response": is_bool,
                    "idle_timeout_ms": nullable(is_int(0)),
                    "model_version": is_str,  # the Agents SDK (v0.22) passes it through
                },
            ),
            "semantic_vad": is_object(
                {"type": is_str},
                {
                    "eagerness": one_of("low", "medium", "high", "auto"),
                    "create_response": is_bool,
                    "interrupt_response": is_bool,
                    "model_version": is_str,
                },
            ),
        },
    )
)

TRANSCRIPTION = nullable(
    is_object(
        {},
        {
            "model": is_str,
            "language": is_str,
            "prompt": is_str,
            "keywords": list_of(is_str),
            "languages": list_of(is_str),
            "delay": one_of("minimal", "low", "medium", "high", "xhigh"),
        },
    )
)

FUNCTION_TOOL = is_object(
    {"type": one_of("function")},
    {"name": is_str, "description": is_str, "parameters": is_json_object},
)

MAX_OUTPUT_TOKENS = nullable(lambda v, p: [] if v == "inf" else is_int(1, 4096)(v, p))
MODALITIES = one_of(["audio"], ["text"])

SESSION = is_object(
    {"type": one_of("realtime")},
    {
        "audio": is_object(
            {},
            {
                "input": is_object(
                    {},
                    {
                        "format": AUDIO_FORMAT,
                        "noise_reduction": nullable(
                            is_object({}, {"type": one_of("near_field", "far_field")})
                        ),
                        "transcription": TRANSCRIPTION,
                        "turn_detection": TURN_DETECTION,
                    },
                ),
                "output": is_object(
                    {},
                    {
                        "format": AUDIO_FORMAT,
                        "speed": is_number(0.25, 1.5),
                        "voice": lambda v, p: [] if isinstance(v, str) else is_object({"id": is_str})(v, p),
                    },
                ),
            },
        ),
        "include": list_of(one_of("item.input_audio_transcription.logprobs")),
        "instructions": is_str,
        "max_output_tokens": MAX_OUTPUT_TOKENS,
        "model": is_str,
        "output_modalities": MODALITIES,
        "parallel_tool_calls": is_bool,
        "prompt": nullable(any_json),
        "reasoning": nullable(any_json),
        "tool_choice": any_json,
        "tools": list_of(FUNCTION_TOOL),
        "tracing": nullable(any_json),
        "truncation": any_json,
    },
)

_ITEM_COMMON = {
    "id": is_str,
    "object": one_of("realtime.item"),
    "status": one_of("completed", "incomplete", "in_progress"),
}


def _message(value: Any, path: str) -> list[str]:
    parts = {
        "user": {"input_text", "input_audio", "input_image"},
        "system": {"input_text"},
        "assistant": {"output_text", "output_audio"},
    }
    role = value.get("role")
    if role not in parts:
        return [f"{path}.role: {role!r} is not user, system or assistant"]
    content = is_object(
        {"type": one_of(*sorted(parts[role]))},
        {"text": is_str, "audio": is_str, "transcript": is_str, "image_url": is_str, "detail": is_str},
    )
    return is_object({"type": is_str, "role": is_str, "content": list_of(content)}, _ITEM_COMMON)(value, path)


ITEM = tagged(
    "type",
    {
        "message": _message,
        "function_call": is_object(
            {"type": is_str, "name": is_str, "arguments": is_str}, {**_ITEM_COMMON, "call_id": is_str}
        ),
        "function_call_output": is_object(
            {"type": is_str, "call_id": is_str, "output": is_str}, _ITEM_COMMON
        ),
    },
)

RESPONSE = is_object(
    {},
    {
        "audio": any_json,
        "conversation": is_str,
        "input": list_of(any_json),
        "instructions": is_str,
        "max_output_tokens": MAX_OUTPUT_TOKENS,
        "metadata": nullable(any_json),
        "output_modalities": MODALITIES,
        "parallel_tool_calls": is_bool,
        "prompt": nullable(any_json),
        "reasoning": nullable(any_json),
        "tool_choice": any_json,
        "tools": list_of(FUNCTION_TOOL),
    },
)

_EVENT_ID = {"event_id": is_str}


def _event(required: dict[str, Check] | None = None, optional: dict[str, Check] | None = None) -> Check:
    return is_object({"type": is_str, **(required or {})}, {**_EVENT_ID, **(optional or {})})


CLIENT_EVENTS: dict[str, Check] = {
    "session.update": _event({"session": SESSION}),
    "input_audio_buffer.append": _event({"audio": base64_audio}),
    "input_audio_buffer.commit": _event(),
    "input_audio_buffer.clear": _event(),
    "output_audio_buffer.clear": _event(),
    "conversation.item.create": _event({"item": ITEM}, {"previous_item_id": is_str}),
    "conversation.item.retrieve": _event({"item_id": is_str}),
    "conversation.item.delete": _event({"item_id": is_str}),
    "conversation.item.truncate": _event(
        {"item_id": is_str, "content_index": is_int(0), "audio_end_ms": is_int(0)}
    ),
    "response.create": _event(optional={"response": RESPONSE}),
    "response.cancel": _event(optional={"response_id": is_str}),
}


def client_event_errors(event: Any) -> list[str]:
    """What is wrong with a client event (empty when it follows the reference)."""
    if not isinstance(event, dict):
        return [f"a client event must be a JSON object, got {event!r}"]
    check = CLIENT_EVENTS.get(str(event.get("type")))
    if check is None:
        return [f"unknown client event type {event.get('type')!r}"]
    return check(event, event["type"])
