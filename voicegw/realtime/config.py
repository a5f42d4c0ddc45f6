"""Run configuration: TypedDicts as in the Agents SDK, so its ``config={...}`` literals work.

Every key of the SDK's `RealtimeRunConfig` and `RealtimeSessionModelSettings` is declared here;
`voicegw.realtime.settings` checks a configuration when a session starts, so a key voicegw
cannot honour fails with an error naming it instead of being dropped.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, Literal, NotRequired, TypeAlias, TypedDict

from voicegw.contracts.model import (
    RealtimeModel,
    RealtimeModelConfig,
    SendUserMessage,
    ToolSpec,
    TurnDetection,
)
from voicegw.realtime.guardrails import DEFAULT_DEBOUNCE_TEXT_LENGTH, OutputGuardrail

DEFAULT_SAMPLE_RATE = 24000
DEFAULT_TOOL_FILLER_DELAY = 1.0

_SDK_PASSTHROUGH_KEYS = frozenset(
    {
        "modalities",
        "output_modalities",
        "input_audio_transcription",
        "input_audio_noise_reduction",
        "speed",
        "tool_choice",
        "parallel_tool_calls",
        "reasoning",
        "tracing",
    }
)
"""Settings handed to the model untouched (OpenAI's session takes them as they are)."""

_EXTRA_NAMES = {"input_audio_noise_reduction": "noise_reduction"}
"""Settings whose name in `RealtimeModelConfig.extra` differs (the GA session's field name)."""

RealtimeModelName: TypeAlias = str
"""The name of a realtime model (``gpt-realtime``, ``gpt-realtime-mini``, ...)."""

RealtimeAudioFormat: TypeAlias = Literal["pcm16", "g711_ulaw", "g711_alaw"] | str | Mapping[str, Any]
"""An audio format: the SDK's names, or a GA format object (``{"type": "audio/pcmu"}``)."""


class RealtimeCustomVoice(TypedDict):
    """A custom voice of the provider, by id."""

    id: str


RealtimeVoice: TypeAlias = str | RealtimeCustomVoice | Mapping[str, Any]
"""A voice: its name, or a custom voice object (OpenAI only)."""

RealtimeReasoningEffort: TypeAlias = Literal["minimal", "low", "medium", "high", "xhigh"] | str
"""How hard the model reasons before answering."""


class RealtimeClientMessage(TypedDict):
    """A raw message to send to the model."""

    type: str
    """The client event's type."""

    other_data: NotRequired[dict[str, Any]]
    """Merged into the message body."""


class RealtimeInputAudioTranscriptionConfig(TypedDict, total=False):
    """How the caller's audio is transcribed."""

    language: str
    """The language code (``en``)."""

    model: str
    """The transcription model (OpenAI's; the embedded model always uses its Whisper)."""

    prompt: str
    """Text that guides the transcription."""

    keywords: list[str]
    """Literal terms that may appear in the audio."""

    languages: list[str]
    """Expected input languages."""

    delay: Literal["minimal", "low", "medium", "high", "xhigh"]
    """Latency against accuracy for streaming transcription."""


class RealtimeInputAudioNoiseReductionConfig(TypedDict, total=False):
    """Noise reduction of the input audio."""

    type: Literal["near_field", "far_field"]
    """The kind of microphone."""


class RealtimeAudioInputConfig(TypedDict, total=False):
    """The GA ``audio.input`` block."""

    format: RealtimeAudioFormat
    """The format of the audio the application sends (`send_audio`)."""

    noise_reduction: RealtimeInputAudioNoiseReductionConfig | None
    transcription: RealtimeInputAudioTranscriptionConfig
    turn_detection: RealtimeTurnDetectionConfig | None


class RealtimeAudioOutputConfig(TypedDict, total=False):
    """The GA ``audio.output`` block."""

    format: RealtimeAudioFormat
    """The format of the ``audio`` events' data."""

    voice: str
    speed: float


class RealtimeAudioConfig(TypedDict, total=False):
    """The GA ``audio`` block of the model settings."""

    input: RealtimeAudioInputConfig
    output: RealtimeAudioOutputConfig


class RealtimeReasoningConfig(TypedDict, total=False):
    """Reasoning of the model."""

    effort: RealtimeReasoningEffort


class RealtimeModelTracingConfig(TypedDict, total=False):
    """Tracing of the model session (sent to OpenAI; the embedded model records none)."""

    workflow_name: str
    group_id: str
    metadata: dict[str, Any]


class RealtimeToolExecutionConfig(TypedDict, total=False):
    """How local tool calls run."""

    pre_approval_tool_input_guardrails: bool
    """Run tool input guardrails before asking for approval (voicegw has none: True is refused)."""


class RealtimeUserInputText(TypedDict):
    """Text from the user."""

    type: Literal["input_text"]
    text: str


class RealtimeUserInputImage(TypedDict, total=False):
    """An image from the user: ``image_url`` is a ``data:`` URL or a remote one."""

    type: Literal["input_image"]
    image_url: str
    detail: NotRequired[str]


class RealtimeUserInputMessage(TypedDict):
    """A structured user message (text and images)."""

    type: Literal["message"]
    role: Literal["user"]
    content: list[RealtimeUserInputText | RealtimeUserInputImage]


RealtimeUserInput: TypeAlias = str | RealtimeUserInputMessage
"""What `session.send_message` takes."""


def user_message(user_input: str | Mapping[str, Any]) -> SendUserMessage:
    """The command for a user input (a string or a message dict)."""
    if isinstance(user_input, str):
        return SendUserMessage(user_input)
    return SendUserMessage.from_content(user_input.get("content", []))


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
    """Caller silence after the agent finished speaking that triggers ``input_audio_timeout_triggered``."""

    model_version: str
    """A provider's VAD model (sent to OpenAI; the embedded model refuses it)."""


class RealtimeSessionModelSettings(TypedDict, total=False):
    """Settings for the model of a session."""

    model_name: str
    """Which model of the provider (``gpt-realtime``...)."""

    instructions: str
    """Used when the agent has none."""

    voice: str
    """Used when the agent names none."""

    temperature: float
    max_output_tokens: int | Literal["inf"]
    """Tokens one response may take; ``"inf"`` (the SDK's default): the model's own limit."""
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

    prompt: Mapping[str, Any]
    """A stored prompt (``{"id": ..., "version": ..., "variables": {...}}``): OpenAI only."""

    audio: RealtimeAudioConfig
    """The GA form of the audio settings; its keys mean the same as the flat ones below."""

    input_audio_format: RealtimeAudioFormat
    """Format of the audio the application sends without a transport (default ``pcm16``)."""

    output_audio_format: RealtimeAudioFormat
    """Format of the ``audio`` events' data without a transport (default ``pcm16``)."""

    # Handed to the model untouched (OpenAI's session fields).
    modalities: list[Literal["text", "audio"]]
    output_modalities: list[Literal["text", "audio"]]
    input_audio_transcription: RealtimeInputAudioTranscriptionConfig
    input_audio_noise_reduction: RealtimeInputAudioNoiseReductionConfig | None
    speed: float
    tool_choice: Any
    parallel_tool_calls: bool
    reasoning: RealtimeReasoningConfig
    tracing: RealtimeModelTracingConfig | None

    tools: list[Any]
    """Tools offered besides the agent's (function tools)."""

    handoffs: list[Any]
    """Not supported: handoffs belong to agents (an error names the key)."""


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

    async_tool_calls: bool
    """Run tool calls as tasks while audio goes on (the default, True); False: the session handles
    nothing else of the model until a tool call has finished."""

    tool_execution: RealtimeToolExecutionConfig
    """How tool calls run."""

    tool_error_formatter: Callable[[Any], Any]
    """Makes the message the model gets when a tool fails (given a `ToolErrorFormatterArgs`;
    None keeps the default message)."""


_AUDIO_KEYS: dict[str, dict[str, str]] = {
    "input": {
        "format": "input_audio_format",
        "transcription": "input_audio_transcription",
        "turn_detection": "turn_detection",
        "noise_reduction": "input_audio_noise_reduction",
    },
    "output": {"format": "output_audio_format", "voice": "voice", "speed": "speed"},
}
"""GA ``audio`` block key -> flat model-settings key."""


class UnsupportedSetting(ValueError):
    """A configuration key voicegw does not know, or a value of it voicegw cannot honour."""


def flat_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """`settings` with its ``audio`` block moved onto the flat keys (both given: they must agree)."""
    flat = {key: value for key, value in settings.items() if key != "audio"}
    for direction, block in (settings.get("audio") or {}).items():
        if direction not in _AUDIO_KEYS:
            raise UnsupportedSetting(f"model_settings.audio.{direction}: expected 'input' or 'output'")
        for key, value in block.items():
            if key not in _AUDIO_KEYS[direction]:
                raise UnsupportedSetting(f"unknown model setting audio.{direction}.{key}")
            target = _AUDIO_KEYS[direction][key]
            if target in flat and flat[target] != value:
                raise UnsupportedSetting(
                    f"model_settings {target}={flat[target]!r} and audio.{direction}.{key}={value!r} disagree"
                )
            flat[target] = value
    return flat


def resolve_turn_detection(config: RealtimeRunConfig) -> TurnDetection | None:
    """The run's turn detection: `turn_detection`, else the model settings', else the defaults."""
    if "turn_detection" in config:
        value = config["turn_detection"]
    else:
        value = flat_settings(config.get("model_settings", {})).get("turn_detection", TurnDetection())
    if value is None or isinstance(value, TurnDetection):
        return value
    known = {f.name for f in dataclasses.fields(TurnDetection)}
    unknown = set(value) - known
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
    prompt: Mapping[str, Any] | None = None,
) -> RealtimeModelConfig:
    """The model configuration for the current agent (`sample_rate` None: from the settings)."""
    settings = flat_settings(config.get("model_settings", {}))
    max_tokens = settings.get("max_output_tokens")
    return RealtimeModelConfig(
        sample_rate=sample_rate or settings.get("sample_rate", DEFAULT_SAMPLE_RATE),
        instructions=instructions if instructions is not None else settings.get("instructions", ""),
        voice=voice or settings.get("voice"),
        tools=tools,
        turn_detection=resolve_turn_detection(config),
        model_name=settings.get("model_name"),
        temperature=settings.get("temperature"),
        max_output_tokens=None if max_tokens == "inf" else max_tokens,  # "inf": the model's own limit
        transcribe_input=settings.get("transcribe_input", True),
        vocabulary=tuple(settings.get("vocabulary", ())),
        prompt=prompt if prompt is not None else settings.get("prompt"),
        extra={
            **{_EXTRA_NAMES.get(k, k): v for k, v in settings.items() if k in _SDK_PASSTHROUGH_KEYS},
            **settings.get("extra", {}),
        },
    )


_CONFIG_FIELDS = frozenset(
    {
        "instructions",
        "voice",
        "tools",
        "turn_detection",
        "model_name",
        "temperature",
        "max_output_tokens",
        "transcribe_input",
        "vocabulary",
        "prompt",
    }
)
"""Model settings that are a `RealtimeModelConfig` field of the same name."""

_FIXED_AT_START = ("sample_rate", "input_audio_format", "output_audio_format")
"""Settings of the session's audio edge, which converts for every model: a session keeps them."""


def settings_changes(settings: RealtimeSessionModelSettings, tools: tuple[ToolSpec, ...]) -> dict[str, Any]:
    """The `RealtimeModelConfig` fields that model `settings` given mid-session change (the
    others stay); raises `UnsupportedSetting` for the audio settings a session keeps."""
    flat = flat_settings(settings)
    if fixed := [key for key in _FIXED_AT_START if key in flat]:
        raise UnsupportedSetting(
            f"{', '.join(fixed)}: fixed when the session starts (the session converts the audio at "
            "its edge); start a new session for another format"
        )
    config = build_model_config(
        {"model_settings": settings}, sample_rate=None, instructions=None, voice=None, tools=tools
    )
    changes: dict[str, Any] = {name: getattr(config, name) for name in _CONFIG_FIELDS & flat.keys()}
    if config.extra:
        changes["extra"] = config.extra
    return changes
