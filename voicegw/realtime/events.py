"""Session events: what `async for event in session` yields.

One frozen dataclass per event, the `type` tag last, names and fields as in the Agents SDK's
`agents.realtime.events`; `RealtimeSessionEvent` is exactly the SDK's union, so a handler that
ends its ``match`` with ``assert_never`` stays correct. The events voicegw adds (key presses, call
state, transfer results, the caller's transcript as it grows) are `VoicegwSessionEvent`: plain
``async for event in session`` delivers each inside a ``raw_model_event`` (as the ``data`` of a
`RealtimeModelOtherEvent`), ``session.all_events()`` delivers them as they are.
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
from voicegw.realtime.model_events import RealtimeModelEvent as SdkModelEvent
from voicegw.realtime.model_events import RealtimeModelOtherEvent, sdk_model_event
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
class RealtimeToolApprovalRequired:
    """A tool that needs approval was called: answer with `session.approve_tool_call(call_id)` or
    `session.reject_tool_call(call_id)`; it does not run until then."""

    agent: RealtimeAgent[Any]
    tool: FunctionTool
    call_id: str
    arguments: str
    info: RealtimeEventInfo
    type: Literal["tool_approval_required"] = "tool_approval_required"


@dataclass(frozen=True)
class RealtimeInputAudioTimeoutTriggered:
    """The caller said nothing for the turn detection's ``idle_timeout_ms`` after the agent spoke."""

    info: RealtimeEventInfo
    type: Literal["input_audio_timeout_triggered"] = "input_audio_timeout_triggered"


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
class RealtimeAnsweringMachine:
    """Who answered the call the agent was dialled into: ``human``, ``machine`` (the agent is
    leaving a voicemail) or ``unknown``; only for calls placed with answering-machine detection."""

    verdict: Literal["human", "machine", "unknown"]
    decided_ms: int
    """When it was decided, in milliseconds after the answer."""

    cause: str
    info: RealtimeEventInfo
    type: Literal["answering_machine"] = "answering_machine"


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
    """Every model event, as received (for debugging), and voicegw's own events wrapped in a
    `RealtimeModelOtherEvent` for iterators that did not ask for them."""

    data: RealtimeModelEvent | SdkModelEvent
    """voicegw's model event (`session.all_events()`), or its SDK form (plain iteration)."""
    info: RealtimeEventInfo
    type: Literal["raw_model_event"] = "raw_model_event"


RealtimeSessionEvent: TypeAlias = (
    RealtimeAgentStartEvent
    | RealtimeAgentEndEvent
    | RealtimeHandoffEvent
    | RealtimeToolStart
    | RealtimeToolEnd
    | RealtimeToolApprovalRequired
    | RealtimeRawModelEvent
    | RealtimeAudioEnd
    | RealtimeAudio
    | RealtimeAudioInterrupted
    | RealtimeError
    | RealtimeHistoryUpdated
    | RealtimeHistoryAdded
    | RealtimeGuardrailTripped
    | RealtimeInputAudioTimeoutTriggered
)
"""An event of a realtime session: the Agents SDK's union, exactly."""

VoicegwSessionEvent: TypeAlias = (
    RealtimeInputAudioTranscriptionDelta
    | RealtimeInputAudioTranscriptionCompleted
    | RealtimeDtmf
    | RealtimeCallState
    | RealtimeTransferResult
    | RealtimeAnsweringMachine
)
"""The events voicegw adds; see the module docstring for how they reach an application."""

VOICEGW_EVENT_TYPES: tuple[type, ...] = (
    RealtimeInputAudioTranscriptionDelta,
    RealtimeInputAudioTranscriptionCompleted,
    RealtimeDtmf,
    RealtimeCallState,
    RealtimeTransferResult,
    RealtimeAnsweringMachine,
)


def sdk_event(event: RealtimeSessionEvent | VoicegwSessionEvent) -> RealtimeSessionEvent:
    """`event` as SDK code may see it: voicegw's own events inside a ``raw_model_event``, and
    model events in the SDK's types."""
    if isinstance(event, VOICEGW_EVENT_TYPES):
        return RealtimeRawModelEvent(RealtimeModelOtherEvent(event), event.info)
    if isinstance(event, RealtimeRawModelEvent) and not isinstance(event.data, RealtimeModelOtherEvent):
        return RealtimeRawModelEvent(sdk_model_event(event.data), event.info)
    return event  # type: ignore[return-value]  # (the isinstance above narrows only at runtime)
