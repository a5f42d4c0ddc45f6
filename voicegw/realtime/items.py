"""Conversation history: what was said (and heard), and which tools ran.

Items are the Agents SDK's, field for field: frozen pydantic models (`model_dump()` gives the
SDK's JSON), `UserMessageItem` and `AssistantMessageItem` with `content` parts,
`RealtimeToolCallItem` with its `output`. `History` is the sans-I/O record the session keeps,
keyed by item id, in conversation order; it links each new item to the one before it
(`previous_item_id`).
"""

from __future__ import annotations

from typing import Annotated, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Field

ItemStatus: TypeAlias = Literal["in_progress", "completed", "incomplete"]


class _Part(BaseModel):
    # Extra keys are kept, as the SDK's items keep what a newer API version adds.
    model_config = ConfigDict(extra="allow", frozen=True)


class InputText(_Part):
    """Typed (or DTMF-as-text) input from the user."""

    type: Literal["input_text"] = "input_text"
    text: str | None = None


class InputAudio(_Part):
    """Spoken input from the user, with its transcript when known."""

    type: Literal["input_audio"] = "input_audio"
    audio: str | None = None
    """Base64 audio, when the model returns it (voicegw's models do not)."""

    transcript: str | None = None


class InputImage(_Part):
    """An image the user sent (``input_image`` content of `send_message`)."""

    type: Literal["input_image"] = "input_image"
    image_url: str | None = None
    detail: str | None = None


class AssistantText(_Part):
    type: Literal["text"] = "text"
    text: str | None = None


class AssistantAudio(_Part):
    """The agent's speech; after a barge-in `transcript` holds only what the caller heard."""

    type: Literal["audio"] = "audio"
    audio: str | None = None
    transcript: str | None = None


class SystemMessageItem(_Part):
    item_id: str
    previous_item_id: str | None = None
    type: Literal["message"] = "message"
    role: Literal["system"] = "system"
    content: list[InputText]


class UserMessageItem(_Part):
    item_id: str
    previous_item_id: str | None = None
    type: Literal["message"] = "message"
    role: Literal["user"] = "user"
    content: list[Annotated[InputText | InputAudio | InputImage, Field(discriminator="type")]]

    @property
    def text(self) -> str:
        """The message as text: typed text or the audio's transcript."""
        return " ".join(_content_text(part) for part in self.content).strip()


class AssistantMessageItem(_Part):
    item_id: str
    previous_item_id: str | None = None
    type: Literal["message"] = "message"
    role: Literal["assistant"] = "assistant"
    status: ItemStatus | None = "in_progress"
    content: list[Annotated[AssistantText | AssistantAudio, Field(discriminator="type")]]

    @property
    def text(self) -> str:
        """What the agent said (the transcript of its audio, or its text)."""
        return " ".join(_content_text(part) for part in self.content).strip()


class RealtimeToolCallItem(_Part):
    """A function call the model made, with the output it got back."""

    item_id: str
    previous_item_id: str | None = None
    call_id: str | None
    type: Literal["function_call"] = "function_call"
    status: Literal["in_progress", "completed"] = "in_progress"
    arguments: str
    name: str
    output: str | None = None


RealtimeMessageItem: TypeAlias = Annotated[
    SystemMessageItem | UserMessageItem | AssistantMessageItem, Field(discriminator="role")
]
RealtimeItem: TypeAlias = SystemMessageItem | UserMessageItem | AssistantMessageItem | RealtimeToolCallItem
"""One entry of the conversation history."""


class RealtimeResponse(_Part):
    """A model response and the message items it produced."""

    id: str
    output: list[RealtimeMessageItem]


def _content_text(part: InputText | InputAudio | InputImage | AssistantText | AssistantAudio) -> str:
    match part:
        case InputText(text=text) | AssistantText(text=text):
            return text or ""
        case InputAudio(transcript=transcript) | AssistantAudio(transcript=transcript):
            return transcript or ""
        case InputImage():
            return ""


def heard_part(transcript: str, played_ms: int, total_ms: int) -> str:
    """The part of `transcript` the caller heard when `played_ms` of `total_ms` audio was played.

    Used when the model cannot say where it was cut: the text is cut in proportion to the audio,
    back to the last whole word, so the history never claims a word the caller did not hear.
    """
    if total_ms <= 0 or played_ms <= 0:
        return ""
    if played_ms >= total_ms:
        return transcript
    cut = len(transcript) * played_ms // total_ms
    if cut < len(transcript) and not transcript[cut].isspace():
        cut = transcript.rfind(" ", 0, cut) + 1  # back to the start of the word being spoken
    return transcript[:cut].rstrip()


def user_audio_item(item_id: str, transcript: str) -> UserMessageItem:
    """The caller's turn, by its (final) transcript."""
    return UserMessageItem(item_id=item_id, content=[InputAudio(transcript=transcript)])


def assistant_audio_item(
    item_id: str, transcript: str, status: ItemStatus = "in_progress"
) -> AssistantMessageItem:
    """The agent's spoken answer, by its transcript."""
    content: list[AssistantText | AssistantAudio] = [AssistantAudio(transcript=transcript)]
    return AssistantMessageItem(item_id=item_id, content=content, status=status)


class History:
    """The conversation so far, in order; replaced items keep their position."""

    def __init__(self) -> None:
        self._items: dict[str, RealtimeItem] = {}

    @property
    def items(self) -> list[RealtimeItem]:
        return list(self._items.values())

    def get(self, item_id: str) -> RealtimeItem | None:
        return self._items.get(item_id)

    def put(self, item: RealtimeItem) -> bool:
        """Add or replace `item`; True when it is new."""
        is_new = item.item_id not in self._items
        if is_new and item.previous_item_id is None and self._items:
            item = item.model_copy(update={"previous_item_id": next(reversed(self._items))})
        elif not is_new:
            item = item.model_copy(update={"previous_item_id": self._items[item.item_id].previous_item_id})
        self._items[item.item_id] = item
        return is_new

    def tool_output(self, call_id: str, output: str) -> RealtimeToolCallItem | None:
        """Complete the tool call `call_id` with its output."""
        for item in self._items.values():
            if isinstance(item, RealtimeToolCallItem) and item.call_id == call_id:
                done = item.model_copy(update={"output": output, "status": "completed"})
                self._items[item.item_id] = done
                return done
        return None

    def tool_calls(self) -> list[RealtimeToolCallItem]:
        return [item for item in self._items.values() if isinstance(item, RealtimeToolCallItem)]
