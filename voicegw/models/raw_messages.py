"""OpenAI Realtime client events, as voicegw commands, for models that do not speak that protocol.

Agents SDK programs send some client events raw (`RealtimeModelSendRawMessage`): the twilio_sip
example greets with ``response.create``, the app example commits a turn with
``input_audio_buffer.commit``. A model of another protocol (the embedded one) runs the events that
have a voicegw command through `commands_for`; any other raises `TypeError` naming its type.
Sans-I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from voicegw.contracts.model import (
    CancelResponse,
    CommitAudio,
    CreateResponse,
    RealtimeModelCommand,
    SendUserMessage,
)


def commands_for(message: Mapping[str, Any]) -> tuple[RealtimeModelCommand, ...]:
    """The commands a raw client event (``{"type": ..., "other_data": {...}}``) stands for."""
    kind = message.get("type")
    body = message.get("other_data") or {}
    match kind:
        case "input_audio_buffer.commit":
            return (CommitAudio(),)
        case "response.cancel":
            return (CancelResponse(),)
        case "response.create":
            response = body.get("response") or {}
            instructions = response.get("instructions")
            return (CreateResponse(instructions=instructions if isinstance(instructions, str) else None),)
        case "conversation.item.create":
            return (_user_message(body.get("item") or {}),)
    raise TypeError(f"raw client event {kind!r} has no meaning for this model (it is not OpenAI's)")


def _user_message(item: Mapping[str, Any]) -> SendUserMessage:
    if item.get("type") != "message" or item.get("role") != "user":
        raise TypeError("raw conversation.item.create: only a user message has a meaning for this model")
    return SendUserMessage.from_content(item.get("content") or [])
