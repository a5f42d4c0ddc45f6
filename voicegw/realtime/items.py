"""Conversation history: what was said (and heard), and which tools ran.

Items are frozen dataclasses shaped like the Agents SDK's (`UserMessageItem`,
`AssistantMessageItem` with `content`, `RealtimeToolCallItem` with `output`); `History` is the
sans-I/O record the session keeps, keyed by item id, in conversation order.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal, TypeAlias

ItemStatus: TypeAlias = Literal["in_progress", "completed", "incomplete"]


@dataclass(frozen=True, slots=True)
class InputText:
    """Typed (or DTMF-as-text) input from the user."""

    text: str
    type: Literal["input_text"] = "input_text"


@dataclass(frozen=True, slots=True)
class InputAudio:
    """Spoken input from the user, with its transcript when known."""

    transcript: str | None = None
    type: Literal["input_audio"] = "input_audio"


@dataclass(frozen=True, slots=True)
class AssistantText:
    text: str
    type: Literal["text"] = "text"


@dataclass(frozen=True, slots=True)
class AssistantAudio:
    """The agent's speech; after a barge-in `transcript` holds only what the caller heard."""

    transcript: str | None = None
    type: Literal["audio"] = "audio"


@dataclass(frozen=True, slots=True)
class UserMessageItem:
    item_id: str
    content: tuple[InputText | InputAudio, ...]
    status: ItemStatus = "completed"
    role: Literal["user"] = "user"
    type: Literal["message"] = "message"

    @property
    def text(self) -> str:
        """The message as text: typed text or the audio's transcript."""
        return " ".join(_content_text(part) for part in self.content).strip()


@dataclass(frozen=True, slots=True)
class AssistantMessageItem:
    item_id: str
    content: tuple[AssistantText | AssistantAudio, ...]
    status: ItemStatus = "in_progress"
    role: Literal["assistant"] = "assistant"
    type: Literal["message"] = "message"

    @property
    def text(self) -> str:
        """What the agent said (the transcript of its audio, or its text)."""
        return " ".join(_content_text(part) for part in self.content).strip()


@dataclass(frozen=True, slots=True)
class RealtimeToolCallItem:
    """A function call the model made, with the output it got back."""

    item_id: str
    call_id: str
    name: str
    arguments: str
    status: Literal["in_progress", "completed"] = "in_progress"
    output: str | None = None
    type: Literal["function_call"] = "function_call"


RealtimeMessageItem: TypeAlias = UserMessageItem | AssistantMessageItem
RealtimeItem: TypeAlias = UserMessageItem | AssistantMessageItem | RealtimeToolCallItem
"""One entry of the conversation history."""


def _content_text(part: InputText | InputAudio | AssistantText | AssistantAudio) -> str:
    match part:
        case InputText(text=text) | AssistantText(text=text):
            return text
        case InputAudio(transcript=transcript) | AssistantAudio(transcript=transcript):
            return transcript or ""


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
    return UserMessageItem(item_id, (InputAudio(transcript),))


def assistant_audio_item(
    item_id: str, transcript: str, status: ItemStatus = "in_progress"
) -> AssistantMessageItem:
    """The agent's spoken answer, by its transcript."""
    return AssistantMessageItem(item_id, (AssistantAudio(transcript),), status)


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
        self._items[item.item_id] = item
        return is_new

    def tool_output(self, call_id: str, output: str) -> RealtimeToolCallItem | None:
        """Complete the tool call `call_id` with its output."""
        for item in self._items.values():
            if isinstance(item, RealtimeToolCallItem) and item.call_id == call_id:
                done = dataclasses.replace(item, output=output, status="completed")
                self._items[item.item_id] = done
                return done
        return None

    def tool_calls(self) -> list[RealtimeToolCallItem]:
        return [item for item in self._items.values() if isinstance(item, RealtimeToolCallItem)]
