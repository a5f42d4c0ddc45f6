"""`RealtimeResult`: what a finished session leaves behind."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from voicegw.contracts.model import Usage
from voicegw.contracts.transport import EndReason
from voicegw.realtime.agent import RealtimeAgent
from voicegw.realtime.items import RealtimeItem, RealtimeToolCallItem


@dataclass(frozen=True)
class RealtimeTimings:
    """How fast the agent answered, and how long the conversation lasted."""

    turn_latencies_ms: tuple[float, ...] = ()
    """Per answered turn: from the end of the caller's turn to the agent's first audio."""

    duration_s: float = 0.0
    """From the start of the session to its end."""

    model_timings_ms: tuple[dict[str, float], ...] = ()
    """Per response, the stage latencies the model measured itself (STT, first token, TTS)."""


@dataclass(frozen=True)
class RealtimeResult:
    """The outcome of a session; `end_reason` is None while it still runs."""

    final_agent: RealtimeAgent[Any]
    history: tuple[RealtimeItem, ...]
    tool_calls: tuple[RealtimeToolCallItem, ...]
    """Every function call (handoffs included) with the output the model got."""

    usage: Usage = field(default_factory=Usage)
    """The sum of the usage of every model response."""

    timings: RealtimeTimings = field(default_factory=RealtimeTimings)
    end_reason: EndReason | None = None
    error: str | None = None
    """What went wrong, when `end_reason` is `EndReason.ERROR`."""
