"""What of the agent's audio the caller has heard: the bookkeeping behind barge-in and truncation.

Sans-I/O: the session reports the model's audio and responses, and asks `played_ms` (the
transport's truth, or the application's `RealtimePlaybackTracker`) through a callable; with
neither, as in the Agents SDK, audio is assumed to play from its arrival at real-time speed
(read from an injected clock). `cut()` says which items to truncate, and where.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _ItemAudio:
    item_id: str
    content_index: int
    response_id: str
    received_ms: float = 0.0
    arrived_at: float = 0.0
    """Clock time of its first audio."""


@dataclass(frozen=True, slots=True)
class Cut:
    """An assistant item to truncate: the caller heard `played_ms` of its `received_ms`."""

    item_id: str
    content_index: int
    played_ms: int
    received_ms: int


class AgentPlayback:
    """The agent's audio items and responses, and how much of each the caller heard."""

    def __init__(
        self,
        sample_rate: int,
        played_ms: Callable[[str], int] | None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        """`played_ms` None: audio plays from its arrival at real-time speed by `clock` (seconds);
        with no clock either, all that arrived counts as heard."""
        self._rate = sample_rate
        self._played = played_ms
        self._clock = clock
        self._items: dict[str, _ItemAudio] = {}
        self._interrupted: set[str] = set()
        self._cancelled: set[str] = set()
        self.active_response: str | None = None

    def accepts(self, item_id: str, response_id: str) -> bool:
        """False for output of an interrupted item or a cancelled response: it must be dropped."""
        return item_id not in self._interrupted and response_id not in self._cancelled

    def interrupted(self, item_id: str) -> bool:
        return item_id in self._interrupted

    def response_started(self, response_id: str) -> None:
        self.active_response = response_id

    def response_done(self, response_id: str) -> None:
        if self.active_response == response_id:
            self.active_response = None

    def audio(self, item_id: str, content_index: int, response_id: str, nbytes: int) -> bool:
        """Record a chunk of agent audio; True when it is the item's first."""
        if self.active_response is None:
            self.active_response = response_id
        item = self._items.get(item_id)
        is_new = item is None
        if item is None:
            arrived = self._clock() if self._clock is not None else 0.0
            item = self._items[item_id] = _ItemAudio(item_id, content_index, response_id, arrived_at=arrived)
        item.received_ms += nbytes * 1000 / (2 * self._rate)
        return is_new

    def response_of(self, item_id: str) -> str:
        item = self._items.get(item_id)
        return item.response_id if item is not None else ""

    def spoke(self, response_id: str) -> bool:
        """Whether response `response_id` had any audio for the caller."""
        return any(item.response_id == response_id for item in self._items.values())

    def pending_ms(self) -> float:
        """Agent audio handed to the transport that the caller has not heard yet."""
        return max((item.received_ms - self._played_ms(item) for item in self._unheard()), default=0.0)

    def speaking(self) -> bool:
        """The agent is talking: a response is being generated, or its audio is still playing."""
        return self.active_response is not None or self.pending_ms() > 1

    def cancel_active(self) -> str | None:
        """Mark the response in progress cancelled (its late output is dropped); its id, if any."""
        response_id, self.active_response = self.active_response, None
        if response_id is not None:
            self._cancelled.add(response_id)
        return response_id

    def cut(self, item_id: str | None = None) -> list[Cut]:
        """The items to truncate now (not fully heard, plus `item_id` even when it has no audio yet)."""
        targets = self._unheard()
        if item_id is not None and item_id not in self._items and item_id not in self._interrupted:
            targets.append(_ItemAudio(item_id, 0, ""))  # text only so far: nothing of it was heard
        cuts = []
        for item in targets:
            played = min(self._played_ms(item), int(item.received_ms))
            if played >= item.received_ms - 1 and item.item_id != item_id:
                continue  # heard in full already
            self._interrupted.add(item.item_id)
            cuts.append(Cut(item.item_id, item.content_index, played, int(item.received_ms)))
        return cuts

    def _unheard(self) -> list[_ItemAudio]:
        return [item for item in self._items.values() if item.item_id not in self._interrupted]

    def _played_ms(self, item: _ItemAudio) -> int:
        if self._played is not None:
            return self._played(item.item_id)
        if self._clock is None:
            return int(item.received_ms)
        return int(min(item.received_ms, (self._clock() - item.arrived_at) * 1000))
