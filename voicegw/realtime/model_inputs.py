"""The Agents SDK's model inputs (`agents.realtime.model_inputs`), under the same names.

Each *is* a voicegw command, so ``session.model.send_event(...)`` takes any of them, on every
model: `RealtimeModelSendRawMessage` is `SendRawMessage` (OpenAI's model sends the client event as
is; the embedded model runs those that have a voicegw command, ``response.create``,
``response.cancel``, ``input_audio_buffer.commit`` and a user ``conversation.item.create``, and
raises `TypeError` naming any other), `RealtimeModelSendUserInput` a `SendUserMessage`,
`RealtimeModelSendAudio` a `SendAudio`, `RealtimeModelSendToolOutput` a `SendToolOutput`,
`RealtimeModelSendInterrupt` a `CancelResponse`, `RealtimeModelSendSessionUpdate` an
`UpdateSettings`: built from the SDK's arguments, they carry them too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NotRequired, TypeAlias, TypedDict

from voicegw.contracts.model import (
    CancelResponse,
    SendAudio,
    SendRawMessage,
    SendToolOutput,
    SendUserMessage,
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


def _set(command: object, **fields: object) -> None:
    """Fill a frozen command's fields (the SDK's constructor arguments computed into voicegw's)."""
    for name, value in fields.items():
        object.__setattr__(command, name, value)


@dataclass(frozen=True, init=False, kw_only=True)
class RealtimeModelSendUserInput(SendUserMessage):
    """Send a user message (text, images): voicegw's `SendUserMessage` of it."""

    user_input: RealtimeModelUserInput

    def __init__(self, user_input: RealtimeModelUserInput) -> None:
        message = user_message(user_input)
        _set(self, text=message.text, images=message.images, type=message.type, user_input=user_input)


@dataclass(frozen=True, init=False, kw_only=True)
class RealtimeModelSendAudio(SendAudio):
    """Send audio (PCM at the session's rate: what crosses voicegw's model seam); `commit` ends
    the user's turn."""

    audio: bytes

    def __init__(self, audio: bytes, commit: bool = False) -> None:
        _set(self, pcm=audio, commit=commit, type="send_audio", audio=audio)


@dataclass(frozen=True, init=False, kw_only=True)
class RealtimeModelSendToolOutput(SendToolOutput):
    """Send the output of a tool call."""

    tool_call: RealtimeModelToolCallEvent

    def __init__(self, tool_call: RealtimeModelToolCallEvent, output: str, start_response: bool) -> None:
        _set(
            self,
            call_id=tool_call.call_id,
            output=output,
            start_response=start_response,
            type="send_tool_output",
            tool_call=tool_call,
        )


@dataclass(frozen=True, kw_only=True)
class RealtimeModelSendInterrupt(CancelResponse):
    """Interrupt the model's response: every model cancels the response in progress (the session's
    `interrupt()` also stops playback and truncates what was not heard)."""

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
        _set(
            self,
            changes=settings_changes(session_settings, tools),
            type="update_settings",
            session_settings=session_settings,
        )


RealtimeModelSendEvent: TypeAlias = (
    RealtimeModelSendRawMessage
    | RealtimeModelSendUserInput
    | RealtimeModelSendAudio
    | RealtimeModelSendToolOutput
    | RealtimeModelSendInterrupt
    | RealtimeModelSendSessionUpdate
)
