"""The Agents SDK's public names exist in voicegw under the same module paths.

The SDK is not installed here: its names are data, taken from openai-agents-python v0.22
(``agents.realtime.__all__`` and what its submodules define), so that a program written for it
runs after renaming ``agents`` to ``voicegw``.
"""

from __future__ import annotations

import importlib
import typing

import pytest

SDK_REALTIME_ALL = [
    "RealtimeAgent",
    "RealtimeAgentHooks",
    "RealtimeRunHooks",
    "RealtimeRunner",
    "realtime_handoff",
    "RealtimeAudioFormat",
    "RealtimeClientMessage",
    "RealtimeGuardrailsSettings",
    "RealtimeInputAudioNoiseReductionConfig",
    "RealtimeInputAudioTranscriptionConfig",
    "RealtimeModelName",
    "RealtimeModelTracingConfig",
    "RealtimeReasoningConfig",
    "RealtimeReasoningEffort",
    "RealtimeRunConfig",
    "RealtimeSessionModelSettings",
    "RealtimeToolExecutionConfig",
    "RealtimeTurnDetectionConfig",
    "RealtimeUserInput",
    "RealtimeUserInputMessage",
    "RealtimeUserInputText",
    "RealtimeAgentEndEvent",
    "RealtimeAgentStartEvent",
    "RealtimeAudio",
    "RealtimeAudioEnd",
    "RealtimeAudioInterrupted",
    "RealtimeError",
    "RealtimeEventInfo",
    "RealtimeGuardrailTripped",
    "RealtimeHandoffEvent",
    "RealtimeHistoryAdded",
    "RealtimeHistoryUpdated",
    "RealtimeRawModelEvent",
    "RealtimeSessionEvent",
    "RealtimeToolApprovalRequired",
    "RealtimeToolEnd",
    "RealtimeToolStart",
    "AssistantMessageItem",
    "AssistantText",
    "InputAudio",
    "InputText",
    "RealtimeItem",
    "RealtimeMessageItem",
    "RealtimeResponse",
    "RealtimeToolCallItem",
    "SystemMessageItem",
    "UserMessageItem",
    "RealtimeModel",
    "RealtimeModelConfig",
    "RealtimeModelListener",
    "RealtimePlaybackTracker",
    "RealtimePlaybackState",
    "RealtimeConnectionStatus",
    "RealtimeModelAudioDoneEvent",
    "RealtimeModelAudioEvent",
    "RealtimeModelAudioInterruptedEvent",
    "RealtimeModelCachedTokensDetails",
    "RealtimeModelConnectionStatusEvent",
    "RealtimeModelEndOfStreamEvent",
    "RealtimeModelErrorEvent",
    "RealtimeModelEvent",
    "RealtimeModelExceptionEvent",
    "RealtimeModelInputAudioTranscriptionCompletedEvent",
    "RealtimeModelInputTokensDetails",
    "RealtimeModelItemDeletedEvent",
    "RealtimeModelItemUpdatedEvent",
    "RealtimeModelOtherEvent",
    "RealtimeModelOutputTextDeltaEvent",
    "RealtimeModelOutputTokensDetails",
    "RealtimeModelToolCallEvent",
    "RealtimeModelTranscriptDeltaEvent",
    "RealtimeModelTurnEndedEvent",
    "RealtimeModelTurnStartedEvent",
    "RealtimeModelUsageEvent",
    "RealtimeModelInputTextContent",
    "RealtimeModelRawClientMessage",
    "RealtimeModelSendAudio",
    "RealtimeModelSendEvent",
    "RealtimeModelSendInterrupt",
    "RealtimeModelSendRawMessage",
    "RealtimeModelSendSessionUpdate",
    "RealtimeModelSendToolOutput",
    "RealtimeModelSendUserInput",
    "RealtimeModelUserInput",
    "RealtimeModelUserInputMessage",
    "DEFAULT_MODEL_SETTINGS",
    "OpenAIRealtimeSIPModel",
    "OpenAIRealtimeWebSocketModel",
    "get_api_key",
    "RealtimeSession",
]

SDK_SUBMODULES: dict[str, str] = {
    "agent": "RealtimeAgent RealtimeAgentHooks RealtimeRunHooks",
    "config": "RealtimeModelName RealtimeAudioFormat RealtimeCustomVoice RealtimeVoice "
    "RealtimeReasoningEffort RealtimeClientMessage RealtimeInputAudioTranscriptionConfig "
    "RealtimeInputAudioNoiseReductionConfig RealtimeTurnDetectionConfig RealtimeAudioInputConfig "
    "RealtimeAudioOutputConfig RealtimeAudioConfig RealtimeReasoningConfig RealtimeSessionModelSettings "
    "RealtimeGuardrailsSettings RealtimeToolExecutionConfig RealtimeModelTracingConfig RealtimeRunConfig "
    "RealtimeUserInputText RealtimeUserInputImage RealtimeUserInputMessage RealtimeUserInput",
    "events": "RealtimeEventInfo RealtimeAgentStartEvent RealtimeAgentEndEvent RealtimeHandoffEvent "
    "RealtimeToolStart RealtimeToolEnd RealtimeToolApprovalRequired RealtimeRawModelEvent RealtimeAudioEnd "
    "RealtimeAudio RealtimeAudioInterrupted RealtimeError RealtimeHistoryUpdated RealtimeHistoryAdded "
    "RealtimeGuardrailTripped RealtimeInputAudioTimeoutTriggered RealtimeSessionEvent",
    "items": "InputText InputAudio InputImage AssistantText AssistantAudio SystemMessageItem "
    "UserMessageItem AssistantMessageItem RealtimeMessageItem RealtimeToolCallItem RealtimeItem "
    "RealtimeResponse",
    "model": "RealtimePlaybackState RealtimePlaybackTracker RealtimeModelListener RealtimeModelConfig "
    "RealtimeModel",
    "model_events": "RealtimeConnectionStatus RealtimeModelErrorEvent RealtimeModelToolCallEvent "
    "RealtimeModelAudioEvent RealtimeModelAudioInterruptedEvent RealtimeModelAudioDoneEvent "
    "RealtimeModelInputAudioTranscriptionCompletedEvent RealtimeModelInputAudioTimeoutTriggeredEvent "
    "RealtimeModelTranscriptDeltaEvent RealtimeModelOutputTextDeltaEvent RealtimeModelItemUpdatedEvent "
    "RealtimeModelItemDeletedEvent RealtimeModelConnectionStatusEvent RealtimeModelEndOfStreamEvent "
    "RealtimeModelTurnStartedEvent RealtimeModelCachedTokensDetails RealtimeModelInputTokensDetails "
    "RealtimeModelOutputTokensDetails RealtimeModelUsageEvent RealtimeModelTurnEndedEvent "
    "RealtimeModelOtherEvent RealtimeModelExceptionEvent RealtimeModelRawServerEvent RealtimeModelEvent",
    "model_inputs": "RealtimeModelRawClientMessage RealtimeModelInputTextContent "
    "RealtimeModelInputImageContent RealtimeModelUserInputMessage RealtimeModelUserInput "
    "RealtimeModelSendRawMessage RealtimeModelSendUserInput RealtimeModelSendAudio "
    "RealtimeModelSendToolOutput RealtimeModelSendInterrupt RealtimeModelSendSessionUpdate "
    "RealtimeModelSendEvent",
    "openai_realtime": "DEFAULT_MODEL_SETTINGS DEFAULT_REALTIME_MODEL get_api_key "
    "OpenAIRealtimeWebSocketModel OpenAIRealtimeSIPModel",
    "runner": "RealtimeRunner",
    "session": "REJECTION_MESSAGE RealtimeSession",
    "handoffs": "realtime_handoff",
}

# What the SDK's realtime examples (v0.22 and late 2025) import from outside `agents.realtime`.
SDK_TOP_LEVEL: dict[str, str] = {
    "voicegw": "function_tool RunContextWrapper",
    "voicegw.decorators": "tool function_tool",
    "voicegw.extensions.handoff_prompt": "RECOMMENDED_PROMPT_PREFIX prompt_with_handoff_instructions",
}

SESSION_EVENT_TYPES = {
    "agent_start", "agent_end", "handoff", "tool_start", "tool_end", "tool_approval_required",
    "raw_model_event", "audio_end", "audio", "audio_interrupted", "error", "history_updated",
    "history_added", "guardrail_tripped", "input_audio_timeout_triggered",
}  # fmt: skip


def test_every_name_of_the_sdks_realtime_all_is_in_voicegw_realtime() -> None:
    realtime = importlib.import_module("voicegw.realtime")
    assert len(SDK_REALTIME_ALL) == 90
    missing = [name for name in SDK_REALTIME_ALL if not hasattr(realtime, name)]
    assert missing == []
    assert set(SDK_REALTIME_ALL) <= set(realtime.__all__)


@pytest.mark.parametrize("module", sorted(SDK_SUBMODULES))
def test_the_sdks_submodules_have_their_names(module: str) -> None:
    found = importlib.import_module(f"voicegw.realtime.{module}")
    missing = [name for name in SDK_SUBMODULES[module].split() if not hasattr(found, name)]
    assert missing == []


@pytest.mark.parametrize("module", sorted(SDK_TOP_LEVEL))
def test_the_top_level_names_the_examples_use(module: str) -> None:
    found = importlib.import_module(module)
    assert [name for name in SDK_TOP_LEVEL[module].split() if not hasattr(found, name)] == []


def test_submodule_names_are_the_packages_objects() -> None:
    realtime = importlib.import_module("voicegw.realtime")
    for module, names in SDK_SUBMODULES.items():
        found = importlib.import_module(f"voicegw.realtime.{module}")
        for name in names.split():
            if name in realtime.__all__:
                assert getattr(found, name) is getattr(realtime, name), f"{module}.{name}"


def test_the_session_event_union_is_exactly_the_sdks() -> None:
    from voicegw.realtime.events import RealtimeSessionEvent

    tags = {member.__dataclass_fields__["type"].default for member in typing.get_args(RealtimeSessionEvent)}
    assert tags == SESSION_EVENT_TYPES


def test_items_dump_as_the_sdks_json() -> None:
    from voicegw.realtime.items import (
        AssistantAudio,
        AssistantMessageItem,
        InputText,
        RealtimeToolCallItem,
        UserMessageItem,
    )

    user = UserMessageItem(item_id="u1", content=[InputText(text="hi")])
    assert user.model_dump() == {
        "item_id": "u1",
        "previous_item_id": None,
        "type": "message",
        "role": "user",
        "content": [{"type": "input_text", "text": "hi"}],
    }
    agent = AssistantMessageItem(
        item_id="a1", content=[AssistantAudio(transcript="hello")], status="completed"
    )
    assert agent.model_dump()["content"] == [{"type": "audio", "audio": None, "transcript": "hello"}]
    call = RealtimeToolCallItem(
        item_id="f1", call_id="c1", name="weather", arguments="{}", status="completed"
    )
    assert call.model_dump(exclude_none=True) == {
        "item_id": "f1",
        "call_id": "c1",
        "type": "function_call",
        "status": "completed",
        "arguments": "{}",
        "name": "weather",
    }
    assert UserMessageItem.model_validate(user.model_dump()) == user
