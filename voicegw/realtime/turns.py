"""Server-side turn detection for models that have none: webrtcvad on the caller's audio.

`ServerTurnDetector` is sans-I/O: caller PCM in, actions out. It forwards only speech to the
model — the prefix padding from before the onset, the speech, the trailing silence — and says
when a turn starts (after `min_speech_ms` of speech, so a click does not cut the agent off) and
when it ends (after `silence_duration_ms` of silence).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Literal, TypeAlias

from voicegw.contracts.model import TurnDetection

LOOKBACK_MARGIN_MS = 300
"""Audio kept beyond prefix padding + minimum speech: the VAD reports onsets a little late."""


@dataclass(frozen=True, slots=True)
class TurnStarted:
    at_ms: int
    type: Literal["turn_started"] = "turn_started"


@dataclass(frozen=True, slots=True)
class ForwardAudio:
    pcm: bytes
    type: Literal["forward_audio"] = "forward_audio"


@dataclass(frozen=True, slots=True)
class TurnEnded:
    at_ms: int
    type: Literal["turn_ended"] = "turn_ended"


TurnAction: TypeAlias = TurnStarted | ForwardAudio | TurnEnded


class ServerTurnDetector:
    """Turns of the caller's speech, from webrtcvad."""

    def __init__(self, sample_rate: int, settings: TurnDetection) -> None:
        # Imported here: webrtcvad is only needed when the model has no turn detection of its own.
        from voicegw.audio.vad import SpeechStarted, VoiceActivityDetector, aggressiveness_for

        self._started_type = SpeechStarted
        self._vad = VoiceActivityDetector(
            sample_rate,
            aggressiveness=aggressiveness_for(settings.threshold),
            min_speech_ms=settings.min_speech_ms,
            silence_ms=settings.silence_duration_ms,
            prefix_padding_ms=settings.prefix_padding_ms,
        )
        self._rate = sample_rate
        self._prefix_ms = settings.prefix_padding_ms
        self._keep_ms = settings.prefix_padding_ms + settings.min_speech_ms + LOOKBACK_MARGIN_MS
        self._samples = 0
        self._recent: deque[tuple[int, int, bytes]] = deque()  # (start_ms, end_ms, pcm)
        self._in_turn = False

    @property
    def in_turn(self) -> bool:
        return self._in_turn

    def feed(self, pcm: bytes) -> list[TurnAction]:
        """Feed caller audio (any length); returns what to do, in order."""
        start_ms = self._samples * 1000 // self._rate
        self._samples += len(pcm) // 2
        end_ms = self._samples * 1000 // self._rate
        self._recent.append((start_ms, end_ms, pcm))
        actions: list[TurnAction] = []
        for event in self._vad.feed(pcm):
            if isinstance(event, self._started_type):
                self._in_turn = True
                actions.append(TurnStarted(event.at_ms))
                self._drop_before(event.at_ms - self._prefix_ms)
            elif self._in_turn:
                actions.append(self._forward())
                actions.append(TurnEnded(event.at_ms))
                self._in_turn = False
        if self._in_turn:
            actions.append(self._forward())
        else:
            self._drop_before(end_ms - self._keep_ms)
        return [a for a in actions if not (isinstance(a, ForwardAudio) and not a.pcm)]

    def _forward(self) -> ForwardAudio:
        pcm = b"".join(chunk for _, _, chunk in self._recent)
        self._recent.clear()
        return ForwardAudio(pcm)

    def _drop_before(self, ms: int) -> None:
        while self._recent and self._recent[0][1] <= ms:
            self._recent.popleft()
