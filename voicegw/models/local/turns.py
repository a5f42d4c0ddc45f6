"""Turn detection for the embedded model, sans-I/O: PCM in, turn events out.

Two stages. webrtcvad (`VoiceActivityDetector`) reports a pause after a short silence; the
turn then ends either at once, when the transcript of what was said looks complete (the
cheap second stage, `looks_complete`), or after the full end-of-turn silence. Speech that
resumes within the pause continues the same turn. Time is the stream position.

The transcript the second stage needs is started early: a speculative `PartialDue` comes after
`speculative_ms` of silence, before the pause is even sure, so that Whisper's time overlaps the
rest of the pause instead of following it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeAlias

from voicegw.audio.format import FRAME_MS
from voicegw.audio.vad import (
    SpeechStarted,
    SpeechStopped,
    VoiceActivityDetector,
    aggressiveness_for,
)
from voicegw.contracts.model import TurnDetection

DEFAULT_PAUSE_MS = 250
"""Silence after which the second stage looks at the transcript."""

PARTIAL_INTERVAL_MS = 1000
"""Audio between two partial transcriptions while the caller speaks (each costs a Whisper run,
and the CPU they take delays the one that matters, at the pause)."""

SPECULATIVE_MS = 40
"""Silence after which the transcript for the second stage is started."""

TRAILING_WORDS = frozenset(
    [
        "and",
        "or",
        "but",
        "so",
        "because",
        "the",
        "a",
        "an",
        "to",
        "of",
        "with",
        "um",
        "uh",
        "er",
        "like",
        "my",
        "your",
        "is",
        "are",
        "was",
        "if",
        "then",
        "that",
    ]
)
"""A turn ending on one of these words is most likely not finished."""


@dataclass(frozen=True, slots=True)
class TurnStarted:
    at_ms: int
    type: Literal["turn_started"] = "turn_started"


@dataclass(frozen=True, slots=True)
class TurnPaused:
    """A short silence: transcribe, and end the turn early if it looks complete."""

    at_ms: int
    type: Literal["turn_paused"] = "turn_paused"


@dataclass(frozen=True, slots=True)
class TurnEnded:
    """The full end-of-turn silence passed."""

    at_ms: int
    type: Literal["turn_ended"] = "turn_ended"


@dataclass(frozen=True, slots=True)
class PartialDue:
    """Enough new speech for another partial transcript.

    `silence_from_ms` is set on the speculative one: the silence it follows began there, and its
    transcript holds the whole turn if that silence turns into the pause (`TurnPaused.at_ms`).
    """

    at_ms: int
    silence_from_ms: int | None = None
    type: Literal["partial_due"] = "partial_due"


TurnEvent: TypeAlias = TurnStarted | TurnPaused | TurnEnded | PartialDue


def looks_complete(transcript: str) -> bool:
    """The second stage: a transcript ending a sentence, not on a connective or a filler."""
    text = transcript.strip()
    if not text or text.endswith(("...", ",", "-")):
        return False
    last = text.rstrip(".?!").split()[-1].lower().strip(",") if text.rstrip(".?!").split() else ""
    return text[-1] in ".?!" and last not in TRAILING_WORDS


class TurnDetector:
    """Cuts the caller's audio into turns and keeps the audio of the current one."""

    def __init__(
        self,
        sample_rate: int,
        settings: TurnDetection,
        *,
        pause_ms: int = DEFAULT_PAUSE_MS,
        partial_interval_ms: int = PARTIAL_INTERVAL_MS,
        speculative_ms: int = SPECULATIVE_MS,
    ) -> None:
        self.sample_rate = sample_rate
        self.end_silence_ms = settings.silence_duration_ms
        self.partial_interval_ms = partial_interval_ms
        self.speculative_ms = speculative_ms
        self._vad = VoiceActivityDetector(
            sample_rate,
            aggressiveness=aggressiveness_for(settings.threshold),
            min_speech_ms=settings.min_speech_ms,
            silence_ms=min(pause_ms, settings.silence_duration_ms),
            prefix_padding_ms=settings.prefix_padding_ms,
        )
        self._frame_bytes = sample_rate * FRAME_MS // 1000 * 2
        self._pending = bytearray()
        self._audio = bytearray()
        self.in_turn = False
        self._paused_at: int | None = None
        self._last_partial_ms = 0
        self._speculated_for: int | None = None
        """The silence start that already has its speculative partial."""

    @property
    def position_ms(self) -> int:
        return self._vad.position_ms

    @property
    def paused(self) -> bool:
        return self._paused_at is not None

    def audio(self) -> bytes:
        """The current turn's audio so far (prefix padding included)."""
        return bytes(self._audio)

    def end_turn(self) -> bytes:
        """Close the current turn (early end or commit); return its audio."""
        audio = bytes(self._audio)
        self._audio.clear()
        self.in_turn, self._paused_at = False, None
        return audio

    def feed(self, pcm: bytes) -> list[TurnEvent]:
        self._pending += pcm
        events: list[TurnEvent] = []
        while len(self._pending) >= self._frame_bytes:
            frame = bytes(self._pending[: self._frame_bytes])
            del self._pending[: self._frame_bytes]
            events.extend(self._frame(frame))
        return events

    def _frame(self, frame: bytes) -> list[TurnEvent]:
        events: list[TurnEvent] = []
        vad_events = self._vad.feed(frame)
        now = self._vad.position_ms
        for event in vad_events:
            match event:
                case SpeechStarted(at_ms=at_ms) if not self.in_turn:
                    self.in_turn, self._paused_at = True, None
                    self._audio[:] = self._vad.take_prefix()
                    self._last_partial_ms = now
                    events.append(TurnStarted(at_ms))
                    frame = b""  # already in the prefix
                case SpeechStarted():
                    self._paused_at = None  # speech resumed within the pause: same turn
                case SpeechStopped(at_ms=at_ms) if self.in_turn:
                    self._paused_at = at_ms
                    events.append(TurnPaused(at_ms))
        if self.in_turn:
            self._audio += frame
            silence_from = self._vad.silence_started_ms
            if (
                silence_from is not None
                and silence_from != self._speculated_for
                and now - silence_from >= self.speculative_ms
            ):
                self._speculated_for, self._last_partial_ms = silence_from, now
                events.append(PartialDue(now, silence_from))
            elif self._paused_at is None and now - self._last_partial_ms >= self.partial_interval_ms:
                self._last_partial_ms = now
                events.append(PartialDue(now))
            if self._paused_at is not None and now - self._paused_at >= self.end_silence_ms:
                events.append(TurnEnded(self._paused_at))
                self.in_turn, self._paused_at = False, None
        return events
