"""Raw OpenAI client events as voicegw commands, for a model of another protocol."""

from __future__ import annotations

import pytest

from voicegw.contracts.model import CancelResponse, CommitAudio, CreateResponse, SendUserMessage, UserImage
from voicegw.models.raw_messages import commands_for


@pytest.mark.parametrize(
    ("message", "commands"),
    [
        ({"type": "input_audio_buffer.commit"}, (CommitAudio(),)),
        ({"type": "response.cancel"}, (CancelResponse(),)),
        ({"type": "response.create"}, (CreateResponse(),)),
        (
            {"type": "response.create", "other_data": {"response": {"instructions": "Say hi."}}},
            (CreateResponse(instructions="Say hi."),),
        ),
        (
            {
                "type": "conversation.item.create",
                "other_data": {
                    "item": {
                        "type": "message",
                        "role": "user",
                        "content": [
                            {"type": "input_text", "text": "look"},
                            {"type": "input_image", "image_url": "data:image/png;base64,AA=="},
                        ],
                    }
                },
            },
            (SendUserMessage("look", (UserImage("data:image/png;base64,AA=="),)),),
        ),
    ],
)
def test_client_events_with_a_command(message: dict[str, object], commands: tuple[object, ...]) -> None:
    assert commands_for(message) == commands


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ({"type": "session.update"}, "'session.update' has no meaning"),
        ({"type": "conversation.item.create", "other_data": {"item": {"role": "assistant"}}}, "only a user"),
    ],
)
def test_other_client_events_are_refused_by_name(message: dict[str, object], error: str) -> None:
    with pytest.raises(TypeError, match=error):
        commands_for(message)
