"""The Agents SDK's model events (`agents.realtime.model_events`), under the same names.

voicegw's models speak the events of `voicegw.contracts.model` (the seam every model implements);
where an SDK event is the same thing with the same fields, its name here *is* voicegw's class
(`RealtimeModelAudioEvent` is `ModelAudio`: ``data``, ``item_id``, ``response_id``,
``content_index``, type ``"audio"``). The others are defined here with the SDK's fields, so that
code naming them imports, constructs and matches them. `sdk_model_event` gives the SDK's form of
a voicegw model event: what ``raw_model_event`` carries for ``async for event in session``.
`RealtimeModelOtherEvent` wraps what the SDK has no event for, and voicegw's own session events.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from voicegw.contracts.model import (
    CachedTokensByModality,
    InputTokensByModality,
    ModelAudio,
    ModelAudioDone,
    ModelConnectionStatus,
    ModelError,
    ModelInputTranscript,
    ModelRawEvent,
    ModelResponseDone,
    ModelResponseStarted,
    ModelToolCall,
    ModelTranscriptDelta,
    ModelUsage,
    OutputTokensByModality,
)
from voicegw.contracts.model import RealtimeModelEvent as ModelEvent
from voicegw.realtime.items import RealtimeItem

RealtimeConnectionStatus: TypeAlias = Literal["connecting", "connected", "disconnected"]

RealtimeModelAudioEvent = ModelAudio
RealtimeModelAudioDoneEvent = ModelAudioDone
RealtimeModelTranscriptDeltaEvent = ModelTranscriptDelta
RealtimeModelConnectionStatusEvent = ModelConnectionStatus
RealtimeModelUsageEvent = ModelUsage
RealtimeModelCachedTokensDetails = CachedTokensByModality
RealtimeModelInputTokensDetails = InputTokensByModality
RealtimeModelOutputTokensDetails = OutputTokensByModality


@dataclass(frozen=True)
class RealtimeModelErrorEvent:
    """An error the model reported."""

    error: Any
    type: Literal["error"] = "error"


@dataclass(frozen=True)
class RealtimeModelToolCallEvent:
    """The model called a function."""

    name: str
    call_id: str
    arguments: str
    id: str | None = None
    previous_item_id: str | None = None
    type: Literal["function_call"] = "function_call"


@dataclass(frozen=True)
class RealtimeModelAudioInterruptedEvent:
    """The model's audio was interrupted."""

    item_id: str
    content_index: int
    type: Literal["audio_interrupted"] = "audio_interrupted"


@dataclass(frozen=True)
class RealtimeModelInputAudioTranscriptionCompletedEvent:
    """The final transcript of the user's audio."""

    item_id: str
    transcript: str
    type: Literal["input_audio_transcription_completed"] = "input_audio_transcription_completed"


@dataclass(frozen=True)
class RealtimeModelInputAudioTimeoutTriggeredEvent:
    """The user was silent for the turn detection's idle timeout."""

    item_id: str
    audio_start_ms: int
    audio_end_ms: int
    type: Literal["input_audio_timeout_triggered"] = "input_audio_timeout_triggered"


@dataclass(frozen=True)
class RealtimeModelOutputTextDeltaEvent:
    """Text output of the model, as it is produced."""

    item_id: str
    delta: str
    response_id: str
    type: Literal["output_text_delta"] = "output_text_delta"


@dataclass(frozen=True)
class RealtimeModelItemUpdatedEvent:
    """An item of the conversation was added or changed."""

    item: RealtimeItem
    type: Literal["item_updated"] = "item_updated"


@dataclass(frozen=True)
class RealtimeModelItemDeletedEvent:
    """An item was deleted from the conversation."""

    item_id: str
    type: Literal["item_deleted"] = "item_deleted"


@dataclass(frozen=True)
class RealtimeModelEndOfStreamEvent:
    """The model's stream ended."""

    type: Literal["end_of_stream"] = "end_of_stream"


@dataclass(frozen=True)
class RealtimeModelTurnStartedEvent:
    """The model started a response."""

    type: Literal["turn_started"] = "turn_started"
    response_id: str | None = None


@dataclass(frozen=True)
class RealtimeModelTurnEndedEvent:
    """The model finished a response."""

    type: Literal["turn_ended"] = "turn_ended"
    response_id: str | None = None


@dataclass(frozen=True)
class RealtimeModelOtherEvent:
    """Anything else: in voicegw, also a voicegw event for an iterator that did not ask for them."""

    data: Any
    type: Literal["other"] = "other"


@dataclass(frozen=True)
class RealtimeModelExceptionEvent:
    """An exception in the model's transport."""

    exception: Exception
    context: str | None = None
    type: Literal["exception"] = "exception"


@dataclass(frozen=True)
class RealtimeModelRawServerEvent:
    """The provider's event as it came off the wire."""

    data: Any
    type: Literal["raw_server_event"] = "raw_server_event"


RealtimeModelEvent: TypeAlias = (
    RealtimeModelErrorEvent
    | RealtimeModelToolCallEvent
    | RealtimeModelAudioEvent
    | RealtimeModelAudioInterruptedEvent
    | RealtimeModelAudioDoneEvent
    | RealtimeModelInputAudioTimeoutTriggeredEvent
    | RealtimeModelInputAudioTranscriptionCompletedEvent
    | RealtimeModelTranscriptDeltaEvent
    | RealtimeModelOutputTextDeltaEvent
    | RealtimeModelItemUpdatedEvent
    | RealtimeModelItemDeletedEvent
    | RealtimeModelConnectionStatusEvent
    | RealtimeModelEndOfStreamEvent
    | RealtimeModelTurnStartedEvent
    | RealtimeModelUsageEvent
    | RealtimeModelTurnEndedEvent
    | RealtimeModelOtherEvent
    | RealtimeModelExceptionEvent
    | RealtimeModelRawServerEvent
)
"""The SDK's union of model events."""

_SDK_TYPES: tuple[type, ...] = typing.get_args(RealtimeModelEvent)


def sdk_model_event(event: ModelEvent | RealtimeModelEvent) -> RealtimeModelEvent:
    """voicegw's model event as the SDK's: the same class where they share one, the SDK's
    equivalent where there is one, else `RealtimeModelOtherEvent` around it."""
    match event:
        case ModelConnectionStatus(status="reconnecting"):
            return RealtimeModelOtherEvent(event)  # the SDK's statuses have no reconnection
        case _ if isinstance(event, _SDK_TYPES):
            return event  # type: ignore[return-value]  # (narrowed by the isinstance at runtime)
        case ModelToolCall(call_id=call_id, name=name, arguments=arguments, item_id=item_id):
            return RealtimeModelToolCallEvent(name, call_id, arguments, id=item_id or None)
        case ModelInputTranscript(item_id=item_id, transcript=transcript, is_final=True):
            return RealtimeModelInputAudioTranscriptionCompletedEvent(item_id, transcript)
        case ModelResponseStarted(response_id=response_id):
            return RealtimeModelTurnStartedEvent(response_id=response_id)
        case ModelResponseDone(response_id=response_id):
            return RealtimeModelTurnEndedEvent(response_id=response_id)
        case ModelError():
            return RealtimeModelErrorEvent(event)
        case ModelRawEvent(data=data):
            return RealtimeModelRawServerEvent(data)
        case _:  # speech started/stopped, partial transcripts, truncations: voicegw's own
            return RealtimeModelOtherEvent(event)
