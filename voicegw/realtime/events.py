"""Session events: what `async for event in session` yields.

One frozen dataclass per event, the `type` tag last, names and fields as in the Agents SDK's
`agents.realtime.events` where it has the event; `RealtimeSessionEvent` is their union.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from voicegw.contracts.model import ModelAudio, RealtimeModelEvent
from voicegw.contracts.transport import CallState, EndReason
from voicegw.realtime.agent import RealtimeAgent
from voicegw.realtime.context import RunContextWrapper
from voicegw.realtime.guardrails import OutputGuardrailResult
from voicegw.realtime.items import RealtimeItem
from voicegw.realtime.tools import FunctionTool


@dataclass(frozen=True)
class RealtimeEventInfo:
    context: RunContextWrapper[Any]
    """The run context."""


@dataclass(frozen=True)
class RealtimeAgentStartEvent:
    """An agent became active (at start, after a handoff)."""

    agent: RealtimeAgent[Any]
    info: RealtimeEventInfo
    type: Literal["agent_start"] = "agent_start"


@dataclass(frozen=True)
class RealtimeAgentEndEvent:
    """An agent stopped being active (a handoff, the end of the session)."""

    agent: RealtimeAgent[Any]
    info: RealtimeEventInfo
    type: Literal["agent_end"] = "agent_end"


@dataclass(frozen=True)
class RealtimeHandoffEvent:
    from_agent: RealtimeAgent[Any]
    to_agent: RealtimeAgent[Any]
    info: RealtimeEventInfo
    type: Literal["handoff"] = "handoff"


@dataclass(frozen=True)
class RealtimeToolStart:
    agent: RealtimeAgent[Any]
    tool: FunctionTool
    arguments: str
    """The arguments as the model sent them (JSON text)."""

    call_id: str
    info: RealtimeEventInfo
    type: Literal["tool_start"] = "tool_start"


@dataclass(frozen=True)
class RealtimeToolEnd:
    agent: RealtimeAgent[Any]
    tool: FunctionTool
    arguments: str
    output: str
    """The output the model got (an error message when the tool failed)."""

    call_id: str
    info: RealtimeEventInfo
    type: Literal["tool_end"] = "tool_end"


@dataclass(frozen=True)
class RealtimeAudio:
    """A chunk of the agent's speech (already handed to the transport, when there is one)."""

    audio: ModelAudio
    item_id: str
    content_index: int
    info: RealtimeEventInfo
    type: Literal["audio"] = "audio"


@dataclass(frozen=True)
class RealtimeAudioEnd:
    """The model finished producing audio for an item."""

    item_id: str
    content_index: int
    info: RealtimeEventInfo
    type: Literal["audio_end"] = "audio_end"


@dataclass(frozen=True)
class RealtimeAudioInterrupted:
    """The agent was cut off (barge-in, a guardrail, `interrupt()`); the rest was discarded."""

    item_id: str
    content_index: int
    played_ms: int
    """How much of the item's audio the caller actually heard."""

    info: RealtimeEventInfo
    type: Literal["audio_interrupted"] = "audio_interrupted"


@dataclass(frozen=True)
class RealtimeInputAudioTranscriptionDelta:
    """A partial transcript of what the caller is saying (the whole text so far)."""

    item_id: str
    transcript: str
    info: RealtimeEventInfo
    type: Literal["input_audio_transcription_delta"] = "input_audio_transcription_delta"


@dataclass(frozen=True)
class RealtimeInputAudioTranscriptionCompleted:
    """The final transcript of one caller turn."""

    item_id: str
    transcript: str
    info: RealtimeEventInfo
    type: Literal["input_audio_transcription_completed"] = "input_audio_transcription_completed"


RealtimeInputTranscription: TypeAlias = (
    RealtimeInputAudioTranscriptionDelta | RealtimeInputAudioTranscriptionCompleted
)


@dataclass(frozen=True)
class RealtimeHistoryAdded:
    item: RealtimeItem
    info: RealtimeEventInfo
    type: Literal["history_added"] = "history_added"


@dataclass(frozen=True)
class RealtimeHistoryUpdated:
    history: list[RealtimeItem]
    """The whole history after the change."""

    info: RealtimeEventInfo
    type: Literal["history_updated"] = "history_updated"


@dataclass(frozen=True)
class RealtimeGuardrailTripped:
    """An output guardrail tripped; the agent's answer was interrupted."""

    guardrail_results: list[OutputGuardrailResult]
    message: str
    """The transcript text that was checked."""

    info: RealtimeEventInfo
    type: Literal["guardrail_tripped"] = "guardrail_tripped"


@dataclass(frozen=True)
class RealtimeDtmf:
    """The caller pressed a key."""

    digit: str
    duration_ms: int
    info: RealtimeEventInfo
    type: Literal["dtmf"] = "dtmf"


@dataclass(frozen=True)
class RealtimeCallState:
    """The call changed state (ringing, answered, held, resumed, transferred, ended)."""

    state: CallState
    reason: str
    info: RealtimeEventInfo
    end_reason: EndReason | None = None
    """Why the call ended, when `state` is ``"ended"``."""

    type: Literal["call_state"] = "call_state"


@dataclass(frozen=True)
class RealtimeTransferResult:
    """The outcome of a transfer the agent asked for."""

    target: str
    accepted: bool
    status_code: int
    info: RealtimeEventInfo
    type: Literal["transfer_result"] = "transfer_result"


@dataclass(frozen=True)
class RealtimeError:
    """Something went wrong; the session goes on unless it ends right after."""

    error: Any
    """The model's `ModelError`, the exception, or a description."""

    message: str
    info: RealtimeEventInfo
    type: Literal["error"] = "error"


@dataclass(frozen=True)
class RealtimeRawModelEvent:
    """Every model event, as received (for debugging)."""

    data: RealtimeModelEvent
    info: RealtimeEventInfo
    type: Literal["raw_model_event"] = "raw_model_event"


RealtimeSessionEvent: TypeAlias = (
    RealtimeAgentStartEvent
    | RealtimeAgentEndEvent
    | RealtimeHandoffEvent
    | RealtimeToolStart
    | RealtimeToolEnd
    | RealtimeAudio
    | RealtimeAudioEnd
    | RealtimeAudioInterrupted
    | RealtimeInputAudioTranscriptionDelta
    | RealtimeInputAudioTranscriptionCompleted
    | RealtimeHistoryAdded
    | RealtimeHistoryUpdated
    | RealtimeGuardrailTripped
    | RealtimeDtmf
    | RealtimeCallState
    | RealtimeTransferResult
    | RealtimeError
    | RealtimeRawModelEvent
)
"""An event of a realtime session."""
