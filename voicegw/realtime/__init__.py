"""The realtime agent API: agents, runner, session, tools, handoffs, guardrails, events.

Names and shapes follow the OpenAI Agents SDK's ``agents.realtime``, so code ported from it runs.
"""

from voicegw.contracts.model import TurnDetection, Usage
from voicegw.contracts.transport import (
    AudioFrame,
    AudioTransport,
    CallControl,
    CallEvent,
    CallStateChanged,
    DtmfReceived,
    TransferResult,
    TransportClosed,
)
from voicegw.realtime.agent import RealtimeAgent
from voicegw.realtime.config import (
    RealtimeGuardrailsSettings,
    RealtimeRunConfig,
    RealtimeSessionModelSettings,
    RealtimeTurnDetectionConfig,
)
from voicegw.realtime.context import RunContextWrapper, ToolContext
from voicegw.realtime.events import (
    RealtimeAgentEndEvent,
    RealtimeAgentStartEvent,
    RealtimeAudio,
    RealtimeAudioEnd,
    RealtimeAudioInterrupted,
    RealtimeCallState,
    RealtimeDtmf,
    RealtimeError,
    RealtimeEventInfo,
    RealtimeGuardrailTripped,
    RealtimeHandoffEvent,
    RealtimeHistoryAdded,
    RealtimeHistoryUpdated,
    RealtimeInputAudioTranscriptionCompleted,
    RealtimeInputAudioTranscriptionDelta,
    RealtimeInputTranscription,
    RealtimeRawModelEvent,
    RealtimeSessionEvent,
    RealtimeToolEnd,
    RealtimeToolStart,
    RealtimeTransferResult,
)
from voicegw.realtime.guardrails import (
    GuardrailFunctionOutput,
    OutputGuardrail,
    OutputGuardrailResult,
    output_guardrail,
)
from voicegw.realtime.handoffs import Handoff, handoff, realtime_handoff
from voicegw.realtime.hooks import RealtimeRunHooks
from voicegw.realtime.items import (
    AssistantAudio,
    AssistantMessageItem,
    AssistantText,
    InputAudio,
    InputText,
    RealtimeItem,
    RealtimeMessageItem,
    RealtimeToolCallItem,
    UserMessageItem,
)
from voicegw.realtime.result import EndReason, RealtimeResult, RealtimeTimings
from voicegw.realtime.runner import RealtimeRunner
from voicegw.realtime.session import RealtimeSession
from voicegw.realtime.tools import (
    FunctionTool,
    Tool,
    ToolArgumentsError,
    default_tool_error_function,
    function_tool,
)

__all__ = [
    "AssistantAudio",
    "AssistantMessageItem",
    "AssistantText",
    "AudioFrame",
    "AudioTransport",
    "CallControl",
    "CallEvent",
    "CallStateChanged",
    "DtmfReceived",
    "EndReason",
    "FunctionTool",
    "GuardrailFunctionOutput",
    "Handoff",
    "InputAudio",
    "InputText",
    "OutputGuardrail",
    "OutputGuardrailResult",
    "RealtimeAgent",
    "RealtimeAgentEndEvent",
    "RealtimeAgentStartEvent",
    "RealtimeAudio",
    "RealtimeAudioEnd",
    "RealtimeAudioInterrupted",
    "RealtimeCallState",
    "RealtimeDtmf",
    "RealtimeError",
    "RealtimeEventInfo",
    "RealtimeGuardrailTripped",
    "RealtimeGuardrailsSettings",
    "RealtimeHandoffEvent",
    "RealtimeHistoryAdded",
    "RealtimeHistoryUpdated",
    "RealtimeInputAudioTranscriptionCompleted",
    "RealtimeInputAudioTranscriptionDelta",
    "RealtimeInputTranscription",
    "RealtimeItem",
    "RealtimeMessageItem",
    "RealtimeRawModelEvent",
    "RealtimeResult",
    "RealtimeRunConfig",
    "RealtimeRunHooks",
    "RealtimeRunner",
    "RealtimeSession",
    "RealtimeSessionEvent",
    "RealtimeSessionModelSettings",
    "RealtimeTimings",
    "RealtimeToolCallItem",
    "RealtimeToolEnd",
    "RealtimeToolStart",
    "RealtimeTransferResult",
    "RealtimeTurnDetectionConfig",
    "RunContextWrapper",
    "Tool",
    "ToolArgumentsError",
    "ToolContext",
    "TransferResult",
    "TransportClosed",
    "TurnDetection",
    "Usage",
    "UserMessageItem",
    "default_tool_error_function",
    "function_tool",
    "handoff",
    "output_guardrail",
    "realtime_handoff",
]
