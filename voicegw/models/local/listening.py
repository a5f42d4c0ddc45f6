"""The listening part of the embedded model: caller audio → turns → Whisper's transcripts.

Caller audio goes through the sans-I/O `TurnDetector` on the event loop (cheap); Whisper runs
in the shared inference pool through one `TranscriptionLane` per turn. A turn ends at its
silence, or earlier, at a pause whose words already look like a whole turn (the second stage).
The final transcript is handed to the model's `on_turn`; the audio feed never waits on Whisper.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from voicegw.contracts.model import (
    ModelInputTranscript,
    ModelSpeechStarted,
    ModelSpeechStopped,
    RealtimeModelConfig,
)
from voicegw.models.local.core import ModelCore
from voicegw.models.local.speaking import Speaking
from voicegw.models.local.stt import SpeechToText, Transcription, TranscriptionLane
from voicegw.models.local.turns import (
    PartialDue,
    TurnDetector,
    TurnEnded,
    TurnPaused,
    TurnStarted,
    looks_complete,
)

TurnHandler = Callable[[str, float], Awaitable[None]]
"""Called with a turn's final, non-empty transcript and the ms Whisper took for it."""


@dataclass
class _Turn:
    item_id: str
    lane: TranscriptionLane
    candidate: tuple[int, str] | None = None
    """(pause position, transcript) from the second-stage check, reusable as the final."""

    speculative: tuple[int, asyncio.Future[Transcription | None]] | None = None
    """(silence start, its transcription asked for): the second stage's transcript, early."""


class Listening:
    """The caller's side: turns, barge-in, partial and final transcripts."""

    def __init__(
        self,
        core: ModelCore,
        speaking: Speaking,
        on_turn: TurnHandler,
        *,
        pause_ms: int,
        partial_interval_ms: int,
    ) -> None:
        """`speaking` is cut off when the caller starts talking over it (barge-in)."""
        self.stt = SpeechToText(progress=core.progress)
        self._core = core
        self._speaking = speaking
        self._on_turn = on_turn
        self._pause_ms = pause_ms
        self._partial_interval_ms = partial_interval_ms
        self._detector: TurnDetector | None = None
        self._turn: _Turn | None = None
        self._held = bytearray()
        """Without turn detection: the caller's audio since the last `commit`."""

        self._committed: asyncio.Task[None] | None = None
        """Without turn detection: the transcription of the last committed turn."""

    def configure(self, old: RealtimeModelConfig | None, config: RealtimeModelConfig) -> None:
        """A new configuration: a new turn detector when its settings or the rate changed."""
        if old is not None and (old.turn_detection, old.sample_rate) == (
            config.turn_detection,
            config.sample_rate,
        ):
            return
        self._detector = (
            TurnDetector(
                config.sample_rate,
                config.turn_detection,
                pause_ms=self._pause_ms,
                partial_interval_ms=self._partial_interval_ms,
            )
            if config.turn_detection is not None
            else None
        )

    async def feed(self, pcm: bytes) -> None:
        """20 ms of caller audio."""
        detector = self._detector
        if detector is None:
            self._held += pcm  # a turn is whatever comes until `commit`
            return
        config = self._core.config
        for event in detector.feed(pcm):
            match event:
                case TurnStarted(at_ms=at_ms):
                    self._turn = self._new_turn()
                    self._core.emit(ModelSpeechStarted(at_ms, self._turn.item_id))
                    td = config.turn_detection
                    if td is not None and td.interrupt_response:
                        await self._speaking.cancel()
                case PartialDue(silence_from_ms=int() as silence_from) if self._turn is not None:
                    # Asked for even while a partial runs: the end of the turn waits on this one.
                    self._turn.speculative = (silence_from, self._turn.lane.request(detector.audio()))
                case PartialDue() if self._turn and config.transcribe_input and not self._turn.lane.busy:
                    self._turn.lane.request(detector.audio())
                case TurnPaused(at_ms=at_ms) if self._turn is not None:
                    self._core.spawn(self._second_stage(self._turn, detector, at_ms))
                case TurnEnded(at_ms=at_ms) if self._turn is not None:
                    self._end_turn(self._turn, detector.end_turn(), at_ms)

    def commit(self) -> None:
        """End the caller's turn now (the session, or the application, detects turns itself)."""
        if self._detector is None:
            if self._held:
                audio, self._held = bytes(self._held), bytearray()
                end_ms = len(audio) * 500 // self._core.config.sample_rate  # 2 bytes a sample
                self._committed = self._core.spawn(self._finish_turn(self._new_turn(), audio, end_ms))
        elif self._turn is not None:
            self._end_turn(self._turn, self._detector.end_turn(), self._detector.position_ms)

    async def committed(self) -> None:
        """Wait until the last committed turn is transcribed (and answered, or in the history)."""
        if self._committed is not None:
            await asyncio.shield(self._committed)

    def _new_turn(self) -> _Turn:
        item_id = self._core.new_id("item")

        async def partial(result: Transcription) -> None:
            if result.text and self._turn is turn and self._core.config.transcribe_input:
                self._core.emit(ModelInputTranscript(item_id, result.text, is_final=False))

        config = self._core.config
        lane = TranscriptionLane(self.stt, config.sample_rate, config.vocabulary, self._core.spawn, partial)
        turn = _Turn(item_id, lane)
        return turn

    async def _second_stage(self, turn: _Turn, detector: TurnDetector, paused_at: int) -> None:
        """Transcribe at the pause; end the turn early when the words look like a whole turn."""
        if turn.speculative is not None and turn.speculative[0] == paused_at:
            # Asked for at the first silence of this pause: the same words, most of the work done.
            request = turn.speculative[1]
        else:
            request = turn.lane.request(detector.audio())
        result = await asyncio.shield(request)
        if result is None or self._turn is not turn or not detector.paused:
            return  # the turn ended meanwhile, or the caller went on speaking
        turn.candidate = (paused_at, result.text)
        if looks_complete(result.text):
            self._turn = None
            await self._finish_turn(turn, detector.end_turn(), paused_at, result.text, result.elapsed_ms)

    def _end_turn(self, turn: _Turn, audio: bytes, end_ms: int) -> None:
        """Close the turn now and transcribe it in a task: the audio feed never waits on Whisper."""
        self._turn = None
        self._core.spawn(self._finish_turn(turn, audio, end_ms))

    async def _finish_turn(
        self, turn: _Turn, audio: bytes, end_ms: int, text: str | None = None, stt_ms: float = 0.0
    ) -> None:
        self._core.emit(ModelSpeechStopped(end_ms, turn.item_id))
        if text is None and turn.candidate is not None and turn.candidate[0] == end_ms:
            text = turn.candidate[1]  # that pause became the end: only silence came after it
        if text is None:
            if turn.speculative is not None and turn.speculative[0] == end_ms:
                request = turn.speculative[1]  # the same words, asked for early in this silence
            else:
                request = turn.lane.request(audio)
            # The turn is over: no newer request can replace this one.
            result = await asyncio.shield(request)
            assert result is not None
            text, stt_ms = result.text, result.elapsed_ms
        self._core.emit(ModelInputTranscript(turn.item_id, text, is_final=True))
        if text:  # else noise: nothing to answer
            await self._on_turn(text, stt_ms)
