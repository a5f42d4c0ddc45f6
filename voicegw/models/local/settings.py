"""Which of OpenAI's session settings the embedded model can honour (sans-I/O).

A setting passed to the model in `RealtimeModelConfig.extra` that the embedded cascade cannot
honour is refused with its name, rather than ignored: an Agents SDK program that asks for text
output or a speaking speed learns at once that this model does not do it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from voicegw.contracts.model import TurnDetection

HONOURED_VALUES: dict[str, tuple[Any, ...]] = {
    "modalities": (["audio"], ["text", "audio"], ["audio", "text"]),
    "output_modalities": (["audio"], ["text", "audio"], ["audio", "text"]),
    "tool_choice": ("auto",),
}
"""Settings honoured with these values only: the embedded model always speaks (its transcript is
the text) and chooses its tools itself."""

ACCEPTED = frozenset({"input_audio_transcription"})
"""Honoured in substance: the caller's speech is transcribed by the embedded Whisper, whichever
transcription model is named."""


def unhonoured_settings(extra: Mapping[str, Any], turn_detection: TurnDetection | None = None) -> list[str]:
    """The settings of `extra` (and `turn_detection`) the embedded model cannot honour, as ``key=value``."""
    refused = []
    if turn_detection is not None and turn_detection.model_version is not None:
        refused.append(f"turn_detection.model_version={turn_detection.model_version!r}")  # webrtcvad only
    for key, value in extra.items():
        if key in ACCEPTED or value in HONOURED_VALUES.get(key, ()):
            continue
        refused.append(f"{key}={value!r}")
    return refused
