"""The outbound playout buffer: agent audio in, exact 20 ms frames out, flushable at once.

Sans-I/O: the media clock pulls `next_frame()` once per tick. It remembers how much of each
item actually left, which is what barge-in truncation needs.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass

from voicegw.audio.format import BYTES_PER_SAMPLE, FRAME_MS

MAX_REMEMBERED_ITEMS = 64
"""Items whose played ms stay known; a long call does not grow memory without bound."""


@dataclass(frozen=True, slots=True)
class OutFrame:
    """One frame for the wire."""

    pcm: bytes
    """Exactly `frame_ms` of mono s16le PCM (an item's last frame is padded with silence)."""

    item_id: str | None
    marker: bool
    """First frame after an idle period: the start of a talkspurt (RTP marker bit)."""


class PlayoutBuffer:
    """A queue of agent audio cut into frames, with per-item accounting."""

    def __init__(self, sample_rate: int, *, frame_ms: int = FRAME_MS) -> None:
        if sample_rate <= 0 or frame_ms <= 0 or sample_rate * frame_ms % 1000:
            raise ValueError(
                f"{frame_ms} ms at {sample_rate} Hz is not a whole positive number of samples per frame"
            )
        self.sample_rate = sample_rate
        self.frame_ms = frame_ms
        self._frame_bytes = sample_rate * frame_ms // 1000 * BYTES_PER_SAMPLE
        self._queue: deque[tuple[str, bytearray]] = deque()
        self._queued_bytes = 0
        self._played: OrderedDict[str, int] = OrderedDict()
        """Bytes of real audio (not padding) sent per item."""
        self._current: str | None = None
        self._idle = True

    @property
    def queued_ms(self) -> int:
        """Milliseconds of audio waiting (not yet handed out by `next_frame`)."""
        return self._bytes_to_ms(self._queued_bytes)

    def _bytes_to_ms(self, size: int) -> int:
        return size * 1000 // (self.sample_rate * BYTES_PER_SAMPLE)

    def enqueue(self, pcm: bytes, item_id: str) -> None:
        """Queue audio of `item_id`; consecutive chunks of one item join up."""
        if len(pcm) % BYTES_PER_SAMPLE:
            raise ValueError(f"PCM of {len(pcm)} bytes is not whole 16-bit samples")
        if not pcm:
            return
        if self._queue and self._queue[-1][0] == item_id:
            self._queue[-1][1].extend(pcm)
        else:
            self._queue.append((item_id, bytearray(pcm)))
        self._queued_bytes += len(pcm)

    def next_frame(self) -> OutFrame | None:
        """The next frame to send, or None when nothing is queued."""
        if not self._queue:
            self._idle = True
            return None
        item_id, audio = self._queue[0]
        chunk = bytes(audio[: self._frame_bytes])
        del audio[: self._frame_bytes]
        if not audio:
            self._queue.popleft()
        self._queued_bytes -= len(chunk)
        self._record(item_id, len(chunk))
        marker, self._idle = self._idle, False
        if len(chunk) < self._frame_bytes:
            chunk += bytes(self._frame_bytes - len(chunk))
        return OutFrame(chunk, item_id, marker)

    def _record(self, item_id: str, size: int) -> None:
        self._current = item_id
        self._played[item_id] = self._played.get(item_id, 0) + size
        self._played.move_to_end(item_id)
        while len(self._played) > MAX_REMEMBERED_ITEMS:
            self._played.popitem(last=False)

    def flush(self) -> int:
        """Drop everything queued; return the ms of the current item that were sent.

        The current item is the one the last frame came from. Audio queued after a flush starts
        a new talkspurt: its first frame carries the marker.
        """
        self._queue.clear()
        self._queued_bytes = 0
        self._idle = True
        return self.played_ms(self._current) if self._current is not None else 0

    def played_ms(self, item_id: str) -> int:
        """Milliseconds of `item_id` handed out by `next_frame` so far."""
        return self._bytes_to_ms(self._played.get(item_id, 0))
