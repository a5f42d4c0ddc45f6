"""Answering-machine detection, sans-I/O: the callee's first audio in, a decision out.

A person answers with a short word or two ("Hello?", "Hello, this is Anna") and waits; a
machine plays a long greeting, word after word, often with a beep at the end. `AnsweringMachineDetector`
is fed the callee's PCM from the moment of the answer and tells them apart from the initial
silence, the length of the first utterance, the pause after it, the number of words and the
speech within the analysis window:

- speech that stops after a short utterance and stays silent for `after_greeting_silence_ms` is
  a ``human``;
- a first utterance longer than `greeting_ms`, more than `max_words` words before such a pause,
  or a beep is a ``machine``;
- nobody speaking for `initial_silence_ms`, or no pattern within `total_analysis_ms`, is
  ``unknown`` (the caller decides what an unknown pickup gets; ``voicegw call`` talks).

After a ``machine`` decision the detector keeps listening for the moment to speak: the end of
a beep (`ToneDetector`), else `no_beep_silence_ms` of silence after the greeting, else
`max_voicemail_wait_ms` after the answer. Time is the position in the fed stream.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

import numpy as np

from voicegw.audio.format import BYTES_PER_SAMPLE, FRAME_MS
from voicegw.audio.tone import ToneDetector, ToneEnded, ToneSettings, ToneStarted
from voicegw.audio.vad import SpeechStarted, SpeechStopped, VoiceActivityDetector

AmdVerdict: TypeAlias = Literal["human", "machine", "unknown"]

WORD_GAP_MS = 100
"""Silence that separates two words (the VAD's hangover): shorter gaps join syllables."""

MIN_WORD_MS = 100
"""Speech shorter than this is a click or a breath, not a word."""

NOISE_WINDOW_MS = 1500
"""The noise floor is the quietest frame of this much recent audio: long enough to span a
pause between words, short enough to follow a line that gets noisier."""

GATE_FACTOR = 2.0
"""A frame must be this many times (6 dB) louder than the noise floor to reach the VAD:
webrtcvad takes loud rumble and babble for speech, which would make every noisy pickup a long
greeting."""


@dataclass(frozen=True, slots=True)
class AmdSettings:
    """The detector's thresholds (milliseconds from the answer unless said otherwise)."""

    initial_silence_ms: int = 2500
    """Nobody spoke this long after the answer: ``unknown`` (a silent line, a shy person)."""

    greeting_ms: int = 1600
    """A first utterance (words joined by pauses shorter than `after_greeting_silence_ms`)
    longer than this is a recorded greeting."""

    after_greeting_silence_ms: int = 600
    """Silence after a short first utterance that means a person waiting for an answer."""

    max_words: int = 4
    """More words than this in the first utterance is a greeting."""

    total_analysis_ms: int = 4000
    """No decision by then: ``unknown`` (a person who started speaking just before the initial
    silence ran out, and is still on a short first utterance)."""

    no_beep_silence_ms: int = 1500
    """After a machine's greeting, silence this long with no beep: the machine is recording."""

    max_voicemail_wait_ms: int = 30_000
    """Give up waiting for the greeting's end and beep this long after the answer."""

    vad_aggressiveness: int = 2
    """webrtcvad's mode (0..3) for telling speech from silence and noise."""

    tone: ToneSettings = field(default_factory=ToneSettings)
    """What counts as the beep."""

    def __post_init__(self) -> None:
        for name in (
            "initial_silence_ms",
            "greeting_ms",
            "after_greeting_silence_ms",
            "total_analysis_ms",
            "no_beep_silence_ms",
            "max_voicemail_wait_ms",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"AmdSettings.{name} must be positive, got {getattr(self, name)}")
        if self.max_words < 1:
            raise ValueError(f"AmdSettings.max_words must be at least 1, got {self.max_words}")


@dataclass(frozen=True, slots=True)
class AmdDecision:
    """Who answered, decided `at_ms` after the answer."""

    verdict: AmdVerdict
    at_ms: int
    cause: str
    """Why, in words (``"short greeting then silence"``, ``"greeting longer than 1400 ms"``)."""

    type: Literal["amd_decision"] = "amd_decision"


@dataclass(frozen=True, slots=True)
class VoicemailReady:
    """The machine is recording: a message spoken from `at_ms` on is kept."""

    at_ms: int
    cause: Literal["beep", "silence", "timeout"]
    beep_hz: float | None = None
    """The beep's frequency, when `cause` is ``"beep"`` (`at_ms` is then its end)."""

    type: Literal["voicemail_ready"] = "voicemail_ready"


AmdEvent: TypeAlias = AmdDecision | VoicemailReady


class NoiseGate:
    """Silences 20 ms frames that are not clearly above the line's recent noise floor."""

    def __init__(self, sample_rate: int) -> None:
        self._frame_bytes = sample_rate * FRAME_MS // 1000 * BYTES_PER_SAMPLE
        self._levels: deque[float] = deque(maxlen=NOISE_WINDOW_MS // FRAME_MS)
        self._pending = bytearray()

    def process(self, pcm: bytes) -> bytes:
        """Whole frames of `pcm` (the rest waits for the next call), quiet ones zeroed."""
        self._pending += pcm
        out = bytearray()
        while len(self._pending) >= self._frame_bytes:
            frame = bytes(self._pending[: self._frame_bytes])
            del self._pending[: self._frame_bytes]
            samples = np.frombuffer(frame, dtype="<i2").astype(np.float64)
            level = float(np.sqrt(np.mean(samples * samples)))
            self._levels.append(level)
            out += frame if level >= GATE_FACTOR * min(self._levels) else bytes(len(frame))
        return bytes(out)


class AnsweringMachineDetector:
    """Feed the callee's audio from the answer on; `feed` returns the `AmdDecision` once, then,
    after a ``machine`` decision, the `VoicemailReady` once. `done` is true after the last event."""

    def __init__(self, sample_rate: int, settings: AmdSettings | None = None) -> None:
        self.settings = settings or AmdSettings()
        self._vad = VoiceActivityDetector(
            sample_rate,
            aggressiveness=self.settings.vad_aggressiveness,
            min_speech_ms=MIN_WORD_MS,
            silence_ms=WORD_GAP_MS,
            prefix_padding_ms=0,
        )
        self._tones = ToneDetector(sample_rate, self.settings.tone)
        self._gate = NoiseGate(sample_rate)
        self.decision: AmdDecision | None = None
        self.ready: VoicemailReady | None = None
        self._utterance_start: int | None = None
        """Where the first utterance began (None before anyone spoke)."""
        self._words = 0
        self._last_speech_end: int | None = None
        """Where the silence after the last word began (None while a word is going on)."""

    @property
    def position_ms(self) -> int:
        return self._vad.position_ms

    @property
    def done(self) -> bool:
        """Nothing more will come: a human or unknown decision, or the machine is recording."""
        return self.ready is not None or (self.decision is not None and self.decision.verdict != "machine")

    @property
    def _machine(self) -> bool:
        return self.decision is not None and self.decision.verdict == "machine"

    def feed(self, pcm: bytes) -> list[AmdEvent]:
        """Feed any amount of PCM (whole 20 ms frames keep decisions on time)."""
        if self.done:
            return []
        events: list[AmdEvent] = []
        for tone in self._tones.feed(pcm):
            match tone:
                case ToneStarted():
                    events += self._decide("machine", self._tones.position_ms, "a beep")
                case ToneEnded(at_ms=at_ms, frequency_hz=hz) if self._machine:
                    events += self._ready(at_ms, "beep", hz)
        for speech in self._vad.feed(self._gate.process(pcm)):
            match speech:
                case SpeechStarted(at_ms=at_ms) if not self._tones.in_tone:
                    self._word_started(at_ms)
                case SpeechStopped(at_ms=at_ms) if self._last_speech_end is None:
                    self._word_ended(at_ms)
        events += self._on_time(self._vad.position_ms)
        return events

    def _word_started(self, at_ms: int) -> None:
        if self._utterance_start is None:
            self._utterance_start = at_ms
        self._words += 1
        self._last_speech_end = None

    def _word_ended(self, at_ms: int) -> None:
        if self._utterance_start is None:
            return  # a beep's end, no word
        self._last_speech_end = at_ms

    def _on_time(self, now: int) -> list[AmdEvent]:
        """The decisions that time makes: silences long enough, utterances too long."""
        s = self.settings
        if self.decision is not None:
            return self._wait_for_recording(now)
        if self._utterance_start is None:
            return self._decide("unknown", now, "nobody spoke") if now >= s.initial_silence_ms else []
        speaking = self._last_speech_end is None
        utterance_end = now if speaking else self._last_speech_end
        assert utterance_end is not None
        if utterance_end - self._utterance_start > s.greeting_ms:
            return self._decide("machine", now, f"first utterance longer than {s.greeting_ms} ms")
        if self._words > s.max_words:
            return self._decide("machine", now, f"more than {s.max_words} words without a pause")
        if not speaking and now - utterance_end >= s.after_greeting_silence_ms:
            return self._decide("human", now, "a short greeting, then silence")
        if now >= s.total_analysis_ms:
            return self._decide("unknown", now, "no pattern within the analysis window")
        return []

    def _wait_for_recording(self, now: int) -> list[AmdEvent]:
        s = self.settings
        if now >= s.max_voicemail_wait_ms:
            return self._ready(now, "timeout")
        silent_since = self._last_speech_end
        if (
            silent_since is not None
            and not self._tones.in_tone
            and now - silent_since >= s.no_beep_silence_ms
        ):
            return self._ready(now, "silence")
        return []

    def _decide(self, verdict: AmdVerdict, at_ms: int, cause: str) -> list[AmdEvent]:
        if self.decision is not None:
            return []
        self.decision = AmdDecision(verdict, at_ms, cause)
        return [self.decision]

    def _ready(
        self, at_ms: int, cause: Literal["beep", "silence", "timeout"], hz: float | None = None
    ) -> list[AmdEvent]:
        if self.ready is not None:
            return []
        self.ready = VoicemailReady(at_ms, cause, hz)
        return [self.ready]
