"""The Agents SDK's model inputs (`agents.realtime.model_inputs`), under the same names.

`RealtimeModelSendRawMessage` is voicegw's `SendRawMessage` command (and
`RealtimeModelSendSessionUpdate` an `UpdateSettings`), so
``session.model.send_event(RealtimeModelSendRawMessage(message={...}))`` reaches every model:
OpenAI's sends the client event as is; the embedded model runs those that have a voicegw command
(``response.create``, ``response.cancel``, ``input_audio_buffer.commit``, a user
``conversation.item.create``) and raises `TypeError` naming any other. The other inputs are the
SDK's shapes of what a session sends; in voicegw the session's own methods (`send_audio`,
`send_message`, `interrupt`, `update_agent`) send them, and `lower_input` translates one into
voicegw's commands for code that drives a model directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NotRequired, TypeAlias, TypedDict

from voicegw.contracts.model import (
    CancelResponse,
    CommitAudio,
    RealtimeModelCommand,
    SendAudio,
    SendRawMessage,
    SendToolOutput,
    UpdateSettings,
)
from voicegw.realtime.config import (
    RealtimeSessionModelSettings,
    RealtimeUserInputImage,
    RealtimeUserInputMessage,
    RealtimeUserInputText,
    settings_changes,
    user_message,
)
from voicegw.realtime.model_events import RealtimeModelToolCallEvent
from voicegw.realtime.settings import check_run_config


class RealtimeModelRawClientMessage(TypedDict):
    """A raw client event: its ``type`` and the rest of its body in ``other_data``."""

    type: str
    other_data: NotRequired[dict[str, Any]]


# The SDK declares the same shapes twice (config's user input, model_inputs' content): one here.
RealtimeModelInputTextContent = RealtimeUserInputText
RealtimeModelInputImageContent = RealtimeUserInputImage
RealtimeModelUserInputMessage = RealtimeUserInputMessage

RealtimeModelUserInput: TypeAlias = str | RealtimeModelUserInputMessage

RealtimeModelSendRawMessage = SendRawMessage


@dataclass(frozen=True)
class RealtimeModelSendUserInput:
    """Send a user message (text, images)."""

    user_input: RealtimeModelUserInput


@dataclass(frozen=True)
class RealtimeModelSendAudio:
    """Send audio; `commit` ends the user's turn."""

    audio: bytes
    commit: bool = False


@dataclass(frozen=True)
class RealtimeModelSendToolOutput:
    """Send the output of a tool call."""

    tool_call: RealtimeModelToolCallEvent
    output: str
    start_response: bool


@dataclass(frozen=True)
class RealtimeModelSendInterrupt:
    """Interrupt the model's response."""

    force_response_cancel: bool = False
    response_id: str | None = None
    cancel_response_only: bool = False
    playback_only: bool = False


@dataclass(frozen=True, init=False, kw_only=True)
class RealtimeModelSendSessionUpdate(UpdateSettings):
    """Update the model's session settings mid-session, as the SDK does; every model takes it.

    It *is* voicegw's `UpdateSettings` command: the settings given change the model's configuration,
    the others stay (OpenAI's ``session.update`` keeps what it is not sent). Settings are checked
    when it is made: an unknown key, ``handoffs``, or an audio format or rate (fixed when the session
    starts: the session converts at its edge) raise `UnsupportedSetting` naming them; a model that
    cannot honour a setting (the embedded model: a stored prompt, a voice it does not have) raises
    naming it from ``send_event``. Function ``tools`` are announced to the model; as in the SDK,
    the session runs calls of the current agent's tools.
    """

    session_settings: RealtimeSessionModelSettings

    def __init__(self, session_settings: RealtimeSessionModelSettings) -> None:
        check_run_config({"model_settings": session_settings})
        tools = tuple(tool.spec() for tool in session_settings.get("tools", ()))
        object.__setattr__(self, "session_settings", session_settings)
        object.__setattr__(self, "changes", settings_changes(session_settings, tools))
        object.__setattr__(self, "type", "update_settings")


RealtimeModelSendEvent: TypeAlias = (
    RealtimeModelSendRawMessage
    | RealtimeModelSendUserInput
    | RealtimeModelSendAudio
    | RealtimeModelSendToolOutput
    | RealtimeModelSendInterrupt
    | RealtimeModelSendSessionUpdate
)


def lower_input(event: RealtimeModelSendEvent) -> tuple[RealtimeModelCommand, ...]:
    """voicegw's commands for an SDK model input."""
    match event:
        case SendRawMessage() | RealtimeModelSendSessionUpdate():
            return (event,)
        case RealtimeModelSendUserInput(user_input=user_input):
            return (user_message(user_input),)
        case RealtimeModelSendAudio(audio=audio, commit=commit):
            return (SendAudio(audio), CommitAudio()) if commit else (SendAudio(audio),)
        case RealtimeModelSendToolOutput(tool_call=call, output=output, start_response=start):
            return (SendToolOutput(call.call_id, output, start),)
        case RealtimeModelSendInterrupt():
            return (CancelResponse(),)
