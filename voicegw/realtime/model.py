"""The Agents SDK's `agents.realtime.model`: the model seam, its connection options, playback tracking.

`RealtimeModel` and `RealtimeModelListener` are voicegw's seam (`voicegw.contracts.model`), which
has the SDK's methods (`connect`, `add_listener`, `remove_listener`, `send_event`, `close`) but
is configured with voicegw's `voicegw.contracts.model.RealtimeModelConfig` dataclass. The
`RealtimeModelConfig` of this module is the SDK's TypedDict of connection options, given as
``runner.run(model_config={...})``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import NotRequired, TypedDict

from voicegw.contracts.model import RealtimeModel, RealtimeModelListener
from voicegw.realtime.audio_formats import parse_audio_format
from voicegw.realtime.config import RealtimeAudioFormat, RealtimeSessionModelSettings

__all__ = [
    "RealtimeModel",
    "RealtimeModelConfig",
    "RealtimeModelListener",
    "RealtimePlaybackState",
    "RealtimePlaybackTracker",
]


class RealtimePlaybackState(TypedDict):
    """Where the application's playback of the agent's audio stands."""

    current_item_id: str | None
    """The item being played."""

    current_item_content_index: int | None
    """Its content index."""

    elapsed_ms: float | None
    """Milliseconds of it played so far."""


class RealtimePlaybackTracker:
    """The application's report of what it has played, when it plays the ``audio`` events itself.

    Pass one as ``model_config={"playback_tracker": tracker}`` and call `on_play_bytes` or
    `on_play_ms` as audio really reaches the listener: a barge-in or `interrupt()` then truncates
    the agent's item at that position (``audio_interrupted`` says which). Without a tracker the
    session assumes audio plays as it arrives, at real-time speed. With a transport, the
    transport's own count is used and no tracker is needed.
    """

    def __init__(self) -> None:
        self._format = parse_audio_format(None)
        self._current: tuple[str, int] | None = None
        self._played: dict[str, float] = {}

    def on_play_bytes(self, item_id: str, item_content_index: int, bytes: bytes) -> None:
        """`bytes` of item `item_id` (in the session's output format) have been played."""
        self.on_play_ms(item_id, item_content_index, self._format.duration_ms(len(bytes)))

    def on_play_ms(self, item_id: str, item_content_index: int, ms: float) -> None:
        """`ms` more milliseconds of item `item_id` have been played."""
        if self._current != (item_id, item_content_index):
            self._current = (item_id, item_content_index)
            self._played[item_id] = 0.0
        self._played[item_id] += ms

    def on_interrupted(self) -> None:
        """Called by the session when the agent was cut off: nothing is playing now."""
        self._current = None

    def set_audio_format(self, format: RealtimeAudioFormat) -> None:
        """Called by the session with the format of the ``audio`` events (for `on_play_bytes`)."""
        self._format = parse_audio_format(format)

    def get_state(self) -> RealtimePlaybackState:
        """The item being played and how much of it has been."""
        if self._current is None:
            return {"current_item_id": None, "current_item_content_index": None, "elapsed_ms": None}
        item_id, index = self._current
        return {
            "current_item_id": item_id,
            "current_item_content_index": index,
            "elapsed_ms": self._played[item_id],
        }

    def played_ms(self, item_id: str) -> int:
        """Milliseconds of item `item_id` played (0 for an item not started): the session's truth."""
        return int(self._played.get(item_id, 0.0))


class RealtimeModelConfig(TypedDict):
    """How to connect the model (the SDK's options of `RealtimeModel.connect`, given to `runner.run`).

    With no model chosen, `api_key`, `url`, `headers` or `call_id` select the OpenAI Realtime
    protocol at that endpoint, whatever the environment holds.
    """

    api_key: NotRequired[str | Callable[[], str | Awaitable[str]]]
    """The API key, or a function (sync or async) that returns it; default ``OPENAI_API_KEY``."""

    url: NotRequired[str]
    """The WebSocket URL (default OpenAI's, with ``?model=`` or ``?call_id=``)."""

    headers: NotRequired[Mapping[str, str]]
    """Headers of the WebSocket handshake; they replace the bearer authorization (Azure's ``api-key``)."""

    initial_model_settings: NotRequired[RealtimeSessionModelSettings]
    """Model settings for this session, over the run config's."""

    playback_tracker: NotRequired[RealtimePlaybackTracker]
    """What the application reports as played (see `RealtimePlaybackTracker`)."""

    call_id: NotRequired[str]
    """Attach to an existing OpenAI Realtime call (a SIP call accepted through the Calls API)."""


def model_config_keys() -> frozenset[str]:
    """The keys `RealtimeModelConfig` has (others are refused with their name)."""
    return frozenset(RealtimeModelConfig.__annotations__)
