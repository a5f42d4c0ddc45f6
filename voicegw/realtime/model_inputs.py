"""The Agents SDK's model inputs (`agents.realtime.model_inputs`), under the same names.

`RealtimeModelSendRawMessage` is voicegw's `SendRawMessage` command, so
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
    SendUserMessage,
)
from voicegw.realtime.config import (
    RealtimeSessionModelSettings,
    RealtimeUserInputImage,
    RealtimeUserInputMessage,
    RealtimeUserInputText,
    user_input_parts,
)
from voicegw.realtime.model_events import RealtimeModelToolCallEvent


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


@dataclass(frozen=True)
class RealtimeModelSendSessionUpdate:
    """Update the model's session settings (in voicegw: `session.update_agent`, or a new run)."""

    session_settings: RealtimeSessionModelSettings


RealtimeModelSendEvent: TypeAlias = (
    RealtimeModelSendRawMessage
    | RealtimeModelSendUserInput
    | RealtimeModelSendAudio
    | RealtimeModelSendToolOutput
    | RealtimeModelSendInterrupt
    | RealtimeModelSendSessionUpdate
)


def lower_input(event: RealtimeModelSendEvent) -> tuple[RealtimeModelCommand, ...]:
    """voicegw's commands for an SDK model input.

    Raises `TypeError` for `RealtimeModelSendSessionUpdate`: a voicegw model is reconfigured with
    a whole configuration (`UpdateSession`), which the session builds from the agent and run config.
    """
    match event:
        case SendRawMessage():
            return (event,)
        case RealtimeModelSendUserInput(user_input=user_input):
            text, images = user_input_parts(user_input)
            return (SendUserMessage(text, images),)
        case RealtimeModelSendAudio(audio=audio, commit=commit):
            return (SendAudio(audio), CommitAudio()) if commit else (SendAudio(audio),)
        case RealtimeModelSendToolOutput(tool_call=call, output=output, start_response=start):
            return (SendToolOutput(call.call_id, output, start),)
        case RealtimeModelSendInterrupt():
            return (CancelResponse(),)
        case RealtimeModelSendSessionUpdate():
            raise TypeError(
                "RealtimeModelSendSessionUpdate: voicegw reconfigures a model from the agent and run "
                "config; use session.update_agent(agent) or start a run with the new model_settings"
            )
