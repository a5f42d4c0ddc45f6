"""The `RealtimeModel` seam: one interface for every speech-to-speech model.

Shaped like the OpenAI Agents SDK's `agents.realtime.model` so that its users recognise it:
`connect(config)`, `add_listener`/`remove_listener`, `send_event(command)` with typed commands,
`close()`. Listeners receive typed model events. Audio crosses this seam as mono s16le PCM at
`RealtimeModelConfig.sample_rate` in both directions: a model converts to and from its own
wire format (μ-law for OpenAI at 8 kHz, 16 kHz for Whisper, Piper's 22.05 kHz) itself.

This module imports nothing above `voicegw.audio`, so that every model and the session can depend on it.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol, TypeAlias

# --- configuration ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TurnDetection:
    """How the end of the caller's turn is detected.

    A model whose `supports_turn_detection` is true applies these settings itself (OpenAI's
    server VAD, the embedded model's webrtcvad); otherwise the session runs webrtcvad with them.
    """

    type: Literal["server_vad", "semantic_vad"] = "server_vad"
    threshold: float = 0.5
    """Speech sensitivity from 0 (most sensitive) to 1; mapped to webrtcvad's aggressiveness."""

    prefix_padding_ms: int = 300
    """Audio kept from before the detected onset, so the first syllable is not clipped."""

    silence_duration_ms: int = 500
    """Silence that ends a turn."""

    min_speech_ms: int = 80
    """Speech needed before it counts as a barge-in: clicks and line echo stay below it."""

    create_response: bool = True
    """Answer automatically when a turn ends."""

    interrupt_response: bool = True
    """Speech over the agent interrupts it (barge-in)."""

    eagerness: Literal["low", "medium", "high", "auto"] = "auto"
    """For ``semantic_vad`` only."""

    idle_timeout_ms: int | None = None
    """Silence of the caller, after the agent finished speaking, that triggers
    ``input_audio_timeout_triggered`` (and a response when `create_response`); None: never.
    The session keeps this timer itself, the same for every model."""

    model_version: str | None = None
    """A provider's VAD model (OpenAI's ``model_version``); models without one refuse it."""


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A function the model may call, as the model sees it."""

    name: str
    description: str
    parameters: dict[str, Any]
    """JSON schema of the arguments object."""


@dataclass(frozen=True, slots=True)
class RealtimeModelConfig:
    """What a model is configured with: on `connect`, and again on `UpdateSession`."""

    sample_rate: int = 24000
    """Rate of the PCM audio the session sends and expects back."""

    instructions: str = ""
    voice: str | None = None
    tools: tuple[ToolSpec, ...] = ()
    turn_detection: TurnDetection | None = field(default_factory=TurnDetection)
    """None: the session commits turns itself (push-to-talk, tests)."""

    model_name: str | None = None
    temperature: float | None = None
    max_output_tokens: int | None = None
    transcribe_input: bool = True
    """Emit input transcriptions of the caller's speech."""

    vocabulary: tuple[str, ...] = ()
    """Words the speech recognizer should expect (names, products)."""

    prompt: Mapping[str, Any] | None = None
    """A stored prompt (``{"id": ..., "version": ..., "variables": ...}``) for a model that has them."""

    extra: dict[str, Any] = field(default_factory=dict)
    """Model-specific settings passed through untouched."""

    def updated(self, changes: Mapping[str, Any]) -> RealtimeModelConfig:
        """This configuration with `changes` (fields by name) made; `extra` is merged, not replaced.

        Raises `ValueError` for ``sample_rate``: a model's audio rate is fixed when it connects."""
        if "sample_rate" in changes:
            raise ValueError("sample_rate: the audio rate is fixed when the model connects")
        return dataclasses.replace(self, **{**changes, "extra": {**self.extra, **changes.get("extra", {})}})


@dataclass(frozen=True, slots=True)
class InputTokensDetails:
    """The Agents SDK's (OpenAI's) details of `Usage.input_tokens`."""

    cached_tokens: int = 0


@dataclass(frozen=True, slots=True)
class OutputTokensDetails:
    """The Agents SDK's (OpenAI's) details of `Usage.output_tokens`."""

    reasoning_tokens: int = 0


@dataclass(frozen=True, slots=True)
class Usage:
    """What responses consumed: the Agents SDK's `Usage` fields (``dataclasses.asdict`` gives its
    JSON), plus the audio voicegw measures. Immutable: ``a + b`` sums, where the SDK has ``add``."""

    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    input_audio_ms: int = 0
    output_audio_ms: int = 0
    requests: int = 0
    """Model responses counted (one per ``response.done`` with usage, one per embedded LLM step)."""

    input_tokens_details: InputTokensDetails = field(default_factory=InputTokensDetails)
    output_tokens_details: OutputTokensDetails = field(default_factory=OutputTokensDetails)

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.total_tokens + other.total_tokens,
            self.input_audio_ms + other.input_audio_ms,
            self.output_audio_ms + other.output_audio_ms,
            self.requests + other.requests,
            InputTokensDetails(
                self.input_tokens_details.cached_tokens + other.input_tokens_details.cached_tokens
            ),
            OutputTokensDetails(
                self.output_tokens_details.reasoning_tokens + other.output_tokens_details.reasoning_tokens
            ),
        )


# --- events: model -> session --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ModelConnectionStatus:
    status: Literal["connecting", "connected", "reconnecting", "disconnected"]
    type: Literal["connection_status"] = "connection_status"


@dataclass(frozen=True, slots=True)
class ModelSpeechStarted:
    """The caller started speaking (the model's own turn detection)."""

    audio_start_ms: int
    """Position in the input audio stream where speech began."""

    item_id: str = ""
    """The user item this speech will become."""

    type: Literal["speech_started"] = "speech_started"


@dataclass(frozen=True, slots=True)
class ModelSpeechStopped:
    """The caller stopped speaking; a turn has ended."""

    audio_end_ms: int
    item_id: str = ""
    type: Literal["speech_stopped"] = "speech_stopped"


@dataclass(frozen=True, slots=True)
class ModelInputTranscript:
    """Transcription of the caller's speech: partials while speaking, then one final."""

    item_id: str
    transcript: str
    """The whole transcript so far (not a delta)."""

    is_final: bool
    type: Literal["input_transcript"] = "input_transcript"


@dataclass(frozen=True, slots=True)
class ModelResponseStarted:
    response_id: str
    type: Literal["response_started"] = "response_started"


@dataclass(frozen=True, slots=True)
class ModelAudio:
    """A chunk of the agent's speech."""

    item_id: str
    response_id: str
    data: bytes
    """Mono s16le PCM at the configured sample rate."""

    content_index: int = 0
    type: Literal["audio"] = "audio"


@dataclass(frozen=True, slots=True)
class ModelAudioDone:
    """No more audio will come for this item."""

    item_id: str
    content_index: int = 0
    type: Literal["audio_done"] = "audio_done"


@dataclass(frozen=True, slots=True)
class ModelTranscriptDelta:
    """Text of the agent's speech, as it is produced."""

    item_id: str
    response_id: str
    delta: str
    type: Literal["transcript_delta"] = "transcript_delta"


@dataclass(frozen=True, slots=True)
class ModelToolCall:
    """The model asks for a function to be run."""

    call_id: str
    name: str
    arguments: str
    """JSON text, exactly as the model produced it (it may be invalid)."""

    item_id: str = ""
    response_id: str = ""
    type: Literal["function_call"] = "function_call"


@dataclass(frozen=True, slots=True)
class ModelItemTruncated:
    """The model cut an assistant item at `audio_end_ms` after a truncate command."""

    item_id: str
    audio_end_ms: int
    transcript: str | None = None
    """The text actually spoken up to the cut, when the model knows it."""

    type: Literal["item_truncated"] = "item_truncated"


@dataclass(frozen=True, slots=True)
class CachedTokensByModality:
    """Tokens by modality, as a provider reports them (None: not reported)."""

    text_tokens: int | None = None
    audio_tokens: int | None = None
    image_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class InputTokensByModality(CachedTokensByModality):
    """A response's input tokens by modality, and the cached ones."""

    cached_tokens: int | None = None
    cached_tokens_details: CachedTokensByModality | None = None


@dataclass(frozen=True, slots=True)
class OutputTokensByModality:
    """A response's output tokens by modality."""

    text_tokens: int | None = None
    audio_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class ModelUsage:
    """What one response consumed, just before its `ModelResponseDone` (the Agents SDK's
    `RealtimeModelUsageEvent`); a model that counts nothing sends none."""

    usage: Usage
    input_tokens_details: InputTokensByModality | None = None
    output_tokens_details: OutputTokensByModality | None = None
    type: Literal["usage"] = "usage"


@dataclass(frozen=True, slots=True)
class ModelResponseDone:
    """A response ended: completed, cancelled (barge-in) or failed."""

    response_id: str
    status: Literal["completed", "cancelled", "failed", "incomplete"]
    timings_ms: dict[str, float] = field(default_factory=dict)
    """Stage latencies the model measured (e.g. ``stt``, ``llm_first_token``, ``tts_first_audio``)."""

    type: Literal["response_done"] = "response_done"


@dataclass(frozen=True, slots=True)
class ModelError:
    """Something went wrong in the model; the session goes on unless `fatal`."""

    message: str
    code: str = ""
    fatal: bool = False
    type: Literal["error"] = "error"


@dataclass(frozen=True, slots=True)
class ModelRawEvent:
    """The provider's event as received, for debugging."""

    data: Any
    type: Literal["raw"] = "raw"


RealtimeModelEvent: TypeAlias = (
    ModelConnectionStatus
    | ModelSpeechStarted
    | ModelSpeechStopped
    | ModelInputTranscript
    | ModelResponseStarted
    | ModelAudio
    | ModelAudioDone
    | ModelTranscriptDelta
    | ModelToolCall
    | ModelItemTruncated
    | ModelUsage
    | ModelResponseDone
    | ModelError
    | ModelRawEvent
)


# --- commands: session -> model -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SendAudio:
    """Caller audio: mono s16le PCM at the configured sample rate."""

    pcm: bytes
    commit: bool = False
    """End the caller's turn after this audio, as `CommitAudio` does (the Agents SDK's form)."""

    type: Literal["send_audio"] = "send_audio"


@dataclass(frozen=True, slots=True)
class CommitAudio:
    """The caller's turn ended (session-side turn detection): treat the buffered audio as one."""

    type: Literal["commit_audio"] = "commit_audio"


@dataclass(frozen=True, slots=True)
class UserImage:
    """An image the user sent: a ``data:`` or remote URL, and its ``detail`` (``low``, ``high``,
    ``auto``: OpenAI's) when one was asked for."""

    url: str
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class SendUserMessage:
    """A text message from the user (typed input, DTMF as text); the model answers it."""

    text: str
    images: tuple[UserImage, ...] = ()
    """Images sent with the text; a model that cannot see refuses them."""

    type: Literal["send_user_message"] = "send_user_message"

    @classmethod
    def from_content(cls, parts: Sequence[Mapping[str, Any]]) -> SendUserMessage:
        """The message of OpenAI-style content parts (``input_text``, ``input_image``)."""
        text = " ".join(part.get("text", "") for part in parts if part.get("type") == "input_text")
        images = tuple(
            UserImage(part["image_url"], part.get("detail"))
            for part in parts
            if part.get("type") == "input_image" and "image_url" in part
        )
        return cls(text, images)


@dataclass(frozen=True, slots=True)
class SendToolOutput:
    call_id: str
    output: str
    start_response: bool = True
    """Have the model continue (speak about the result) once the output is in."""

    type: Literal["send_tool_output"] = "send_tool_output"


@dataclass(frozen=True, slots=True)
class CreateResponse:
    """Ask the model to speak now (a greeting, a reprompt); `instructions` override for this one."""

    instructions: str | None = None
    say: str | None = None
    """Speak exactly this text (a fixed greeting) instead of composing an answer."""

    type: Literal["create_response"] = "create_response"


@dataclass(frozen=True, slots=True)
class CancelResponse:
    """Stop the response in progress (barge-in)."""

    type: Literal["cancel_response"] = "cancel_response"


@dataclass(frozen=True, slots=True)
class TruncateItem:
    """The caller heard only `audio_end_ms` of this assistant item: forget the rest."""

    item_id: str
    audio_end_ms: int
    content_index: int = 0
    type: Literal["truncate_item"] = "truncate_item"


@dataclass(frozen=True, slots=True)
class UpdateSession:
    """Reconfigure the model (a handoff changes instructions, voice and tools)."""

    config: RealtimeModelConfig
    type: Literal["update_session"] = "update_session"


@dataclass(frozen=True, slots=True)
class UpdateSettings:
    """Change some settings mid-session (the Agents SDK's `RealtimeModelSendSessionUpdate`):
    `changes` are `RealtimeModelConfig` fields by name, applied with `RealtimeModelConfig.updated`;
    the others stay. A model refuses, naming it, a setting it cannot honour (as on `connect`)."""

    changes: Mapping[str, Any]
    type: Literal["update_settings"] = "update_settings"


@dataclass(frozen=True, slots=True)
class SendRawMessage:
    """A client event of the provider's own protocol, sent as is (the Agents SDK's
    `RealtimeModelSendRawMessage`): ``{"type": ..., "other_data": {...}}``, ``other_data`` merged
    into the event. A model without such a protocol raises `TypeError`."""

    message: Mapping[str, Any]
    type: Literal["send_raw_message"] = "send_raw_message"


RealtimeModelCommand: TypeAlias = (
    SendAudio
    | CommitAudio
    | SendUserMessage
    | SendToolOutput
    | CreateResponse
    | CancelResponse
    | TruncateItem
    | UpdateSession
    | UpdateSettings
    | SendRawMessage
)


# --- the interface -------------------------------------------------------------------------


class RealtimeModelListener(Protocol):
    async def on_event(self, event: RealtimeModelEvent) -> None: ...


class ModelUnavailable(Exception):
    """The model cannot be used here (a missing extra, no key, an unreachable endpoint)."""


class RealtimeModel(abc.ABC):
    """A speech-to-speech model the session talks to."""

    supports_turn_detection: ClassVar[bool] = False
    """True when the model detects turns and barge-in itself from `TurnDetection` settings."""
    watches_steps: ClassVar[bool] = False
    """True when the model infers in this process and judges its own steps (`stuck_step`); a remote
    model is judged by its events alone."""

    def __init__(self) -> None:
        self._listeners: list[RealtimeModelListener] = []

    @property
    def saturated(self) -> bool:
        """True when the model cannot serve another conversation well now (its inference is
        queueing): a server refuses new calls with 503 meanwhile. A remote model never is."""
        return False

    def stuck_step(self, now: float) -> str | None:
        """For a model that infers in this process (`watches_steps`): once one of its running
        inference steps is stuck (blocked, or without progress past what a slow one takes), what
        is stuck, in words; None while none is. Asked up to `now` (`time.monotonic()`)."""
        return None

    async def prepare(self) -> None:
        """Load what every conversation needs, ahead of the first one (a server calls this at
        start, so that its first caller is not kept waiting). Nothing, by default."""
        return None

    @abc.abstractmethod
    async def connect(self, config: RealtimeModelConfig) -> None:
        """Open the model with its first configuration."""

    def add_listener(self, listener: RealtimeModelListener) -> None:
        if listener not in self._listeners:
            self._listeners.append(listener)

    def remove_listener(self, listener: RealtimeModelListener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    async def _emit(self, event: RealtimeModelEvent) -> None:
        """Deliver one event to every listener, in the order they were added."""
        for listener in list(self._listeners):
            await listener.on_event(event)

    @abc.abstractmethod
    async def send_event(self, command: RealtimeModelCommand) -> None:
        """Send a command; raises `TypeError` for a command the model does not know."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release the model; safe to call twice."""
