"""What an OpenAI Realtime session must carry into the next one, sans I/O.

A server session has a fixed lifetime (`SESSION_LIMIT_S`), and a dropped connection opens a new
one: either way the new session starts with an empty conversation. `ConversationMirror` keeps the
conversation as the model's events and our commands told it (caller transcripts, the agent's
transcripts cut where a barge-in truncated them, function calls and their outputs) and gives it
back as ``conversation.item.create`` events, the same item ids where the server gave them. A long
conversation is sent whole up to `REPLAY_CHARS`; what is older goes first, condensed into one
system message of short lines (a mechanical digest, not a model-written summary).

`TurnQuiet` says when a session may be swapped for another without the caller noticing: no
response in progress, no caller speech in progress, no tool call waiting for its output, and the
agent audio already handed out played to its end (by the clock: audio arrives faster than it plays).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Literal

from voicegw.audio.format import BYTES_PER_SAMPLE
from voicegw.contracts.model import (
    ModelAudio,
    ModelInputTranscript,
    ModelItemTruncated,
    ModelResponseDone,
    ModelResponseStarted,
    ModelSpeechStarted,
    ModelSpeechStopped,
    ModelToolCall,
    ModelTranscriptDelta,
    RealtimeModelCommand,
    RealtimeModelEvent,
    SendToolOutput,
    SendUserMessage,
    TruncateItem,
)

SESSION_LIMIT_S = 3600.0
"""The OpenAI Realtime API ends a session after 60 minutes (30 before the GA release of August
2025; "Realtime sessions can now last up to 60 minutes", OpenAI's developer notes on the GA API,
quoted at community.openai.com/t/realtime-api-session-timeout-post-ga/1357331). The server then
sends an ``error`` event with code ``session_expired`` ("Your session hit the maximum duration
of 60 minutes.") and closes the socket."""

SESSION_EXPIRED = "session_expired"
REPLAY_CHARS = 24_000
"""Conversation text re-sent verbatim (about 6,000 tokens, within gpt-realtime's 28,672 input)."""

DIGEST_CHARS = 4_000
DIGEST_LINE_CHARS = 200

ItemKind = Literal["user", "assistant", "function_call", "function_call_output"]


@dataclass(slots=True)
class _Item:
    item_id: str
    kind: ItemKind
    text: str = ""
    """Message text, a call's arguments, or a tool's output."""

    name: str = ""
    call_id: str = ""
    audio_ms: float = 0.0
    """Agent audio of the item so far, for cutting its text where a truncation cut the audio."""

    def size(self) -> int:
        return len(self.text) + len(self.name)


class ConversationMirror:
    """The conversation of one `OpenAIRealtimeModel`, across its server sessions."""

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self._items: dict[str, _Item] = {}
        self._local = itertools.count(1)

    def __len__(self) -> int:
        return sum(1 for item in self._items.values() if item.text or item.name)

    def _item(self, item_id: str, kind: ItemKind) -> _Item:
        item = self._items.get(item_id)
        if item is None:
            item = self._items[item_id] = _Item(item_id, kind)
        return item

    def _new(self, kind: ItemKind) -> _Item:
        return self._item(f"item_vg{next(self._local)}", kind)

    def on_event(self, event: RealtimeModelEvent) -> None:
        """An event the model delivers to its listeners."""
        match event:
            case ModelSpeechStarted(item_id=item_id) if item_id:
                self._item(item_id, "user")  # its place in the conversation: when the caller spoke
            case ModelInputTranscript(item_id=item_id, transcript=text, is_final=True):
                self._item(item_id, "user").text = text
            case ModelTranscriptDelta(item_id=item_id, delta=delta):
                self._item(item_id, "assistant").text += delta
            case ModelAudio(item_id=item_id, data=pcm):
                self._item(item_id, "assistant").audio_ms += (
                    len(pcm) * 1000 / (BYTES_PER_SAMPLE * self.sample_rate)
                )
            case ModelItemTruncated(item_id=item_id, transcript=text) if (
                text is not None and item_id in self._items
            ):
                self._items[item_id].text = text
            case ModelToolCall(call_id=call_id, name=name, arguments=arguments, item_id=item_id):
                call = self._item(item_id or f"item_call_{call_id}", "function_call")
                call.name, call.call_id, call.text = name, call_id, arguments

    def on_command(self, command: RealtimeModelCommand) -> None:
        """A command sent to the model."""
        match command:
            case SendUserMessage(text=text) if text:
                self._new("user").text = text
            case SendToolOutput(call_id=call_id, output=output):
                output_item = self._new("function_call_output")
                output_item.call_id, output_item.text = call_id, output
            case TruncateItem(item_id=item_id, audio_end_ms=end_ms):
                cut = self._items.get(item_id)
                if cut is not None and cut.audio_ms > end_ms:
                    # What the caller heard of it, by the share of its audio that played.
                    cut.text = cut.text[: round(len(cut.text) * end_ms / cut.audio_ms)]
                    cut.audio_ms = end_ms

    def replay(self, *, max_chars: int = REPLAY_CHARS) -> list[dict[str, Any]]:
        """The conversation as client events for a new, empty server session, oldest first."""
        items = [item for item in self._items.values() if item.text or item.name]
        kept: list[_Item] = []
        size = 0
        for item in reversed(items):
            if size + item.size() > max_chars and kept:
                break
            kept.append(item)
            size += item.size()
        kept.reverse()
        # An output whose call is left out would refer to nothing: it goes to the digest too.
        calls = {item.call_id for item in kept if item.kind == "function_call"}
        while kept and kept[0].kind == "function_call_output" and kept[0].call_id not in calls:
            kept.pop(0)
        older = items[: len(items) - len(kept)]
        events = [_create(_digest(older))] if older else []
        return events + [_create(_wire_item(item)) for item in kept]


def _create(item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "conversation.item.create", "item": item}


def _wire_item(item: _Item) -> dict[str, Any]:
    match item.kind:
        case "user":
            content = [{"type": "input_text", "text": item.text}]
            return {"id": item.item_id, "type": "message", "role": "user", "content": content}
        case "assistant":
            content = [{"type": "output_text", "text": item.text}]
            return {"id": item.item_id, "type": "message", "role": "assistant", "content": content}
        case "function_call":
            return {
                "id": item.item_id,
                "type": "function_call",
                "call_id": item.call_id,
                "name": item.name,
                "arguments": item.text,
            }
        case "function_call_output":
            return {
                "id": item.item_id,
                "type": "function_call_output",
                "call_id": item.call_id,
                "output": item.text,
            }


_SPEAKERS = {
    "user": "Caller",
    "assistant": "Agent",
    "function_call": "Tool call",
    "function_call_output": "Tool result",
}


def _digest(items: list[_Item]) -> dict[str, Any]:
    lines = []
    for item in items:
        text = f"{item.name}({item.text})" if item.kind == "function_call" else item.text
        line = " ".join(text.split())
        if len(line) > DIGEST_LINE_CHARS:
            line = line[: DIGEST_LINE_CHARS - 1] + "…"
        lines.append(f"{_SPEAKERS[item.kind]}: {line}")
    body = "\n".join(lines)[-DIGEST_CHARS:]
    text = f"Earlier in this call (condensed, oldest first):\n{body}"
    return {"type": "message", "role": "system", "content": [{"type": "input_text", "text": text}]}


class TurnQuiet:
    """Whether the conversation is between turns, by the model's events and our commands."""

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self._responding = False
        self._caller_speaking = False
        self._audio_until = 0.0
        self._open_calls: set[str] = set()

    def on_event(self, event: RealtimeModelEvent, now: float) -> None:
        match event:
            case ModelResponseStarted():
                self._responding = True
            case ModelResponseDone():
                self._responding = False
            case ModelSpeechStarted():
                self._caller_speaking = True
            case ModelSpeechStopped():
                self._caller_speaking = False
            case ModelAudio(data=pcm):
                ms = len(pcm) * 1000 / (BYTES_PER_SAMPLE * self.sample_rate)
                self._audio_until = max(self._audio_until, now) + ms / 1000
            case ModelToolCall(call_id=call_id):
                self._open_calls.add(call_id)

    def on_command(self, command: RealtimeModelCommand) -> None:
        match command:
            case SendToolOutput(call_id=call_id):
                self._open_calls.discard(call_id)
            case TruncateItem():
                self._audio_until = 0.0  # a barge-in flushed what was queued

    def session_replaced(self) -> None:
        """A reconnection: the old session's response and speech detection ended with it."""
        self._responding = self._caller_speaking = False

    def quiet(self, now: float) -> bool:
        return (
            not (self._responding or self._caller_speaking or self._open_calls) and now >= self._audio_until
        )
