"""The Agents SDK's `agents.realtime.openai_realtime`: the OpenAI models under the SDK's names.

`OpenAIRealtimeWebSocketModel` is voicegw's `OpenAIRealtimeModel`; `OpenAIRealtimeSIPModel`
attaches to a call OpenAI's SIP connector answered. Either can be given as ``RealtimeRunner(agent,
model=...)``; ``model_config`` (``api_key``, ``url``, ``headers``, ``call_id``) sets where it connects.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Awaitable, Callable

from voicegw.models.openai import DEFAULT_MODEL as DEFAULT_REALTIME_MODEL
from voicegw.models.openai import OpenAIRealtimeModel
from voicegw.models.openai_sip import OpenAIRealtimeSIPModel
from voicegw.realtime.config import RealtimeSessionModelSettings

OpenAIRealtimeWebSocketModel = OpenAIRealtimeModel

DEFAULT_MODEL_SETTINGS: RealtimeSessionModelSettings = {
    "modalities": ["audio"],
    "input_audio_format": "pcm16",
    "output_audio_format": "pcm16",
    "turn_detection": {"type": "server_vad", "interrupt_response": True},
}
"""What a session uses for the settings it is not given (voicegw's model defaults otherwise)."""

__all__ = [
    "DEFAULT_MODEL_SETTINGS",
    "DEFAULT_REALTIME_MODEL",
    "OpenAIRealtimeModel",
    "OpenAIRealtimeSIPModel",
    "OpenAIRealtimeWebSocketModel",
    "get_api_key",
]


async def get_api_key(key: str | Callable[[], str | Awaitable[str]] | None) -> str | None:
    """The key: `key` itself, what the function `key` returns (awaited if need be), else
    ``OPENAI_API_KEY``."""
    if isinstance(key, str):
        return key
    if callable(key):
        result = key()
        return await result if inspect.isawaitable(result) else result
    return os.environ.get("OPENAI_API_KEY")
