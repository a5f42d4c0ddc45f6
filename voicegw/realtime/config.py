"""Run configuration: TypedDicts as in the Agents SDK, so its ``config={...}`` literals work."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal, NotRequired, TypedDict

from voicegw.contracts.model import RealtimeModel, RealtimeModelConfig, ToolSpec, TurnDetection
from voicegw.realtime.guardrails import DEFAULT_DEBOUNCE_TEXT_LENGTH, OutputGuardrail

DEFAULT_SAMPLE_RATE = 24000
DEFAULT_TOOL_FILLER_DELAY = 1.0

_SDK_PASSTHROUGH_KEYS = frozenset(
    {
        "modalities",
        "output_modalities",
        "input_audio_format",
        "output_audio_format",
        "input_audio_transcription",
        "speed",
        "tool_choice",
    }
)

_SDK_ONLY_TURN_KEYS = frozenset({"idle_timeout_ms", "model_version"})
"""Agents SDK turn-detection keys that voicegw accepts and ignores, so ported configs load."""


class RealtimeTurnDetectionConfig(TypedDict, total=False):
    """Turn detection as a dict (the SDK's form); the keys of `TurnDetection`."""

    type: Literal["server_vad", "semantic_vad"]
    threshold: float
    """Speech sensitivity from 0 (most sensitive) to 1."""

    prefix_padding_ms: int
    """Audio kept from before the detected onset."""

    silence_duration_ms: int
    """Silence that ends a turn."""

    min_speech_ms: int
    """Speech needed before it counts as a barge-in (clicks and echo stay below it)."""

    create_response: bool
    """Answer automatically when a turn ends."""

    interrupt_response: bool
    """Speech over the agent interrupts it."""

    eagerness: Literal["low", "medium", "high", "auto"]
    """For ``semantic_vad`` only."""

    idle_timeout_ms: int
    """Accepted so that Agents SDK configs load; voicegw ignores it."""

    model_version: str
    """Accepted so that Agents SDK configs load; voicegw ignores it."""


class RealtimeSessionModelSettings(TypedDict, total=False):
    """Settings for the model of a session."""

    model_name: str
    """Which model of the provider (``gpt-realtime``...)."""

    instructions: str
    """Used when the agent has none."""

    voice: str
    """Used when the agent names none."""

    temperature: float
    max_output_tokens: int
    turn_detection: RealtimeTurnDetectionConfig | TurnDetection | None
    """Overridden by `RealtimeRunConfig.turn_detection` when that is given."""

    transcribe_input: bool
    """Transcribe the caller's speech (input transcription events); default True."""

    vocabulary: list[str]
    """Words the speech recognizer should expect (names, products)."""

    sample_rate: int
    """PCM rate when the session has no transport (with one, the transport's rate is used)."""

    extra: dict[str, Any]
    """Model-specific settings passed through untouched."""

    # Agents SDK keys: accepted so ported configs load, handed to the model in `extra`.
    modalities: list[Literal["text", "audio"]]
    output_modalities: list[Literal["text", "audio"]]
    input_audio_format: Any
    output_audio_format: Any
    input_audio_transcription: dict[str, Any]
    speed: float
    tool_choice: Any


class RealtimeGuardrailsSettings(TypedDict):
    """Settings for output guardrails."""

    debounce_text_length: NotRequired[int]
    """Characters of transcript between two guardrail runs on the same item. Default 100."""


class RealtimeRunConfig(TypedDict, total=False):
    """Configuration of a run (all keys optional)."""

    model: RealtimeModel | str
    """The model, or its name for `create_model` (``local``, ``openai``); default: `create_model()`."""

    model_settings: RealtimeSessionModelSettings
    """Settings for the model."""

    turn_detection: TurnDetection | RealtimeTurnDetectionConfig | None
    """How turns end and barge-in starts; None: none (commit with ``send_audio(commit=True)``)."""

    output_guardrails: list[OutputGuardrail]
    """Guardrails run in addition to each agent's own."""

    guardrails_settings: RealtimeGuardrailsSettings
    """Settings for guardrail execution."""

    tool_filler_delay: float | None
    """Seconds a tool may run before a soft thinking tone plays until its result; None: never. Default 1."""

    tracing_disabled: bool
    """Whether tracing is disabled for this run (voicegw records no traces; kept for SDK code)."""

    dtmf_as_text: bool
    """Tell the model about each key the caller presses (``"The caller pressed 5"``); default no:
    key presses are only ``dtmf`` session events (keys of the agent's `dtmf_menu` always reach it)."""

    call_tools: bool
    """Offer the agent ``hang_up``, ``transfer`` and ``send_dtmf`` when the transport is a phone
    call (it implements `CallControl`). Default True."""


def resolve_turn_detection(config: RealtimeRunConfig) -> TurnDetection | None:
    """The run's turn detection: `turn_detection`, else the model settings', else the defaults."""
    if "turn_detection" in config:
        value = config["turn_detection"]
    else:
        value = config.get("model_settings", {}).get("turn_detection", TurnDetection())
    if value is None or isinstance(value, TurnDetection):
        return value
    known = {f.name for f in dataclasses.fields(TurnDetection)}
    unknown = set(value) - known - _SDK_ONLY_TURN_KEYS
    if unknown:
        raise ValueError(f"unknown turn_detection setting(s): {', '.join(sorted(unknown))}")
    return TurnDetection(**{k: v for k, v in value.items() if k in known})  # type: ignore[arg-type]


def debounce_text_length(config: RealtimeRunConfig) -> int:
    return config.get("guardrails_settings", {}).get("debounce_text_length", DEFAULT_DEBOUNCE_TEXT_LENGTH)


def build_model_config(
    config: RealtimeRunConfig,
    *,
    sample_rate: int | None,
    instructions: str | None,
    voice: str | None,
    tools: tuple[ToolSpec, ...],
) -> RealtimeModelConfig:
    """The model configuration for the current agent (`sample_rate` None: from the settings)."""
    settings = config.get("model_settings", {})
    return RealtimeModelConfig(
        sample_rate=sample_rate or settings.get("sample_rate", DEFAULT_SAMPLE_RATE),
        instructions=instructions if instructions is not None else settings.get("instructions", ""),
        voice=voice or settings.get("voice"),
        tools=tools,
        turn_detection=resolve_turn_detection(config),
        model_name=settings.get("model_name"),
        temperature=settings.get("temperature"),
        max_output_tokens=settings.get("max_output_tokens"),
        transcribe_input=settings.get("transcribe_input", True),
        vocabulary=tuple(settings.get("vocabulary", ())),
        extra={
            **{k: v for k, v in settings.items() if k in _SDK_PASSTHROUGH_KEYS},
            **settings.get("extra", {}),
        },
    )
