"""`ScriptedModel`: a deterministic in-process `RealtimeModel` for tests and examples.

A script is a list of `ScriptStep`s, consumed in order: when the session sends a command that
matches the next step's `on`, the model emits that step's events to its listeners, at once and
in order. Every command is recorded (`commands`, `sent(kind)`) for assertions. Like a real
model, it answers `CancelResponse` with a cancelled `ModelResponseDone` for the response in
progress and `TruncateItem` with `ModelItemTruncated`, unless a step says otherwise.
`speech(...)` and `tool_call(...)` build the usual event sequences.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from voicegw.contracts.model import (
    CancelResponse,
    ModelAudio,
    ModelAudioDone,
    ModelItemTruncated,
    ModelResponseDone,
    ModelResponseStarted,
    ModelToolCall,
    ModelTranscriptDelta,
    ModelUsage,
    RealtimeModel,
    RealtimeModelCommand,
    RealtimeModelConfig,
    RealtimeModelEvent,
    TruncateItem,
    UpdateSession,
    UpdateSettings,
    Usage,
)

TONE_HZ = 220.0
TONE_LEVEL = 0.3

C = TypeVar("C")

Matcher = type[RealtimeModelCommand] | Callable[[RealtimeModelCommand], bool]


@dataclass(frozen=True)
class ScriptStep:
    """When a command matching `on` arrives (a command class, or a predicate), emit `emit`."""

    on: Matcher
    emit: Sequence[RealtimeModelEvent] = field(default_factory=tuple)

    def matches(self, command: RealtimeModelCommand) -> bool:
        if isinstance(self.on, type):
            return isinstance(command, self.on)
        return self.on(command)


class ScriptedModel(RealtimeModel):
    """A model that plays a script; `supports_turn_detection` as configured."""

    def __init__(
        self,
        steps: Iterable[ScriptStep] = (),
        *,
        supports_turn_detection: bool = False,
        connect_events: Sequence[RealtimeModelEvent] = (),
    ) -> None:
        super().__init__()
        # An instance attribute shadows the ClassVar: one class covers both kinds of model.
        vars(self)["supports_turn_detection"] = supports_turn_detection
        self._steps = list(steps)
        self._connect_events = tuple(connect_events)
        self._active: dict[str, ModelResponseStarted] = {}
        self.commands: list[RealtimeModelCommand] = []
        self.configs: list[RealtimeModelConfig] = []
        """The configuration of `connect`, then of every `UpdateSession`."""
        self.connected = False
        self.closed = False

    @property
    def remaining_steps(self) -> int:
        return len(self._steps)

    def assert_complete(self) -> None:
        """Raise `AssertionError` when steps of the script were never reached."""
        if self._steps:
            raise AssertionError(
                f"{len(self._steps)} scripted step(s) not reached; next waits for {self._steps[0].on!r}"
            )

    def sent(self, kind: type[C]) -> list[C]:
        """The commands of one kind received so far."""
        return [c for c in self.commands if isinstance(c, kind)]

    async def connect(self, config: RealtimeModelConfig) -> None:
        self.connected = True
        self.configs.append(config)
        await self.emit(*self._connect_events)

    async def send_event(self, command: RealtimeModelCommand) -> None:
        if not self.connected or self.closed:
            raise RuntimeError(f"ScriptedModel got {command.type} while not connected")
        self.commands.append(command)
        if isinstance(command, UpdateSession):
            self.configs.append(command.config)
        elif isinstance(command, UpdateSettings):
            self.configs.append(self.configs[-1].updated(command.changes))
        if self._steps and self._steps[0].matches(command):
            await self.emit(*self._steps.pop(0).emit)
        elif isinstance(command, CancelResponse):
            await self.emit(
                *(ModelResponseDone(r.response_id, "cancelled") for r in list(self._active.values()))
            )
        elif isinstance(command, TruncateItem):
            await self.emit(ModelItemTruncated(command.item_id, command.audio_end_ms))

    async def emit(self, *events: RealtimeModelEvent) -> None:
        """Deliver events to every listener, in order (tests call this to inject events)."""
        for event in events:
            if isinstance(event, ModelResponseStarted):
                self._active[event.response_id] = event
            elif isinstance(event, ModelResponseDone):
                self._active.pop(event.response_id, None)
            await self._emit(event)

    async def close(self) -> None:
        self.closed = True
        self._listeners.clear()


def tone(sample_rate: int, duration_ms: int) -> bytes:
    """A plain sine tone (the scripted agent's "voice"), mono s16le."""
    t = np.arange(sample_rate * duration_ms // 1000) / sample_rate
    return (np.sin(2 * np.pi * TONE_HZ * t) * TONE_LEVEL * 32767).astype("<i2").tobytes()


def speech(
    text: str,
    *,
    sample_rate: int,
    duration_ms: int,
    item_id: str = "item_1",
    response_id: str = "resp_1",
    chunk_ms: int = 100,
    text_first: bool = False,
    usage: Usage | None = None,
) -> list[RealtimeModelEvent]:
    """A whole spoken response: audio in `chunk_ms` chunks with the transcript spread over them.

    `text_first` puts each piece of text before its audio (as the embedded cascade does: its
    TTS speaks text it already has); otherwise after (as OpenAI's transcript lags its audio).
    """
    chunks = max(1, math.ceil(duration_ms / chunk_ms))
    words = text.split(" ")
    events: list[RealtimeModelEvent] = [ModelResponseStarted(response_id)]
    pcm = tone(sample_rate, duration_ms)
    step = len(pcm) // chunks // 2 * 2
    for index in range(chunks):
        piece = words[len(words) * index // chunks : len(words) * (index + 1) // chunks]
        delta = [ModelTranscriptDelta(item_id, response_id, " ".join(piece) + " ")] if piece else []
        data = pcm[index * step : (index + 1) * step if index < chunks - 1 else len(pcm)]
        audio = [ModelAudio(item_id, response_id, data)]
        events += [*delta, *audio] if text_first else [*audio, *delta]
    events += [ModelAudioDone(item_id), *_usage(usage), ModelResponseDone(response_id, "completed")]
    return events


def tool_call(
    name: str,
    arguments: Any,
    *,
    call_id: str = "call_1",
    response_id: str = "resp_tool",
    usage: Usage | None = None,
) -> list[RealtimeModelEvent]:
    """A response that only calls a function; `arguments` is JSON text, or a dict to encode."""
    args = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return [
        ModelResponseStarted(response_id),
        ModelToolCall(call_id, name, args, item_id=f"fc_{call_id}", response_id=response_id),
        *_usage(usage),
        ModelResponseDone(response_id, "completed"),
    ]


def _usage(usage: Usage | None) -> list[RealtimeModelEvent]:
    return [] if usage is None else [ModelUsage(usage)]
