"""The embedded model's turn detector on real speech, stream time only (no clock, no sleep)."""

from __future__ import annotations

from voicegw.contracts.model import TurnDetection
from voicegw.models.local.turns import (
    PartialDue,
    TurnDetector,
    TurnEnded,
    TurnPaused,
    TurnStarted,
    looks_complete,
)

from .conftest import RATE, silence


def _events(detector: TurnDetector, pcm: bytes) -> list:
    frame = RATE * 20 // 1000 * 2
    out = []
    for start in range(0, len(pcm), frame):
        out.extend(detector.feed(pcm[start : start + frame]))
    return out


def test_turn_starts_within_100_ms_pauses_then_ends(speech) -> None:
    detector = TurnDetector(RATE, TurnDetection(silence_duration_ms=600), pause_ms=200)
    question = speech("Where is my order number forty two?")
    events = _events(detector, silence(500) + question + silence(1000))
    started = [e for e in events if isinstance(e, TurnStarted)]
    paused = [e for e in events if isinstance(e, TurnPaused)]
    ended = [e for e in events if isinstance(e, TurnEnded)]
    assert len(started) == 1 and len(ended) == 1 and paused
    onset = 500 + next(
        i
        for i in range(0, len(question), 2)
        if abs(int.from_bytes(question[i : i + 2], "little", signed=True)) > 300
    ) * 1000 // (2 * RATE)
    assert onset - 40 <= started[0].at_ms <= onset + 100
    assert any(isinstance(e, PartialDue) for e in events)
    # The turn ends a full silence after the last pause; its audio holds the whole question.
    assert ended[0].at_ms == paused[-1].at_ms
    assert len(detector.end_turn()) >= len(question) * 0.8


def test_speculative_partial_comes_early_in_the_pause_that_ends_the_turn(speech) -> None:
    detector = TurnDetector(RATE, TurnDetection(silence_duration_ms=600), pause_ms=250, speculative_ms=100)
    events = _events(detector, silence(300) + speech("What time is it?") + silence(800))
    paused = [i for i, e in enumerate(events) if isinstance(e, TurnPaused)]
    speculative = [
        (i, e) for i, e in enumerate(events) if isinstance(e, PartialDue) and e.silence_from_ms is not None
    ]
    # One per silence inside the turn, each for a silence start of its own; the pause that ends
    # the turn has one, emitted before it, 100 ms into its silence.
    last_pause = events[paused[-1]]
    assert isinstance(last_pause, TurnPaused)
    index, early = next((i, e) for i, e in speculative if e.silence_from_ms == last_pause.at_ms)
    assert index < paused[-1]
    assert early.at_ms - last_pause.at_ms in (100, 120)
    assert len({e.silence_from_ms for _, e in speculative}) == len(speculative)


def test_speech_resuming_in_the_pause_continues_the_turn(speech) -> None:
    detector = TurnDetector(RATE, TurnDetection(silence_duration_ms=800), pause_ms=200)
    part = speech("I would like to book")
    events = _events(detector, part + silence(100) + part + silence(1200))
    assert sum(isinstance(e, TurnStarted) for e in events) == 1
    assert sum(isinstance(e, TurnPaused) for e in events) >= 2
    assert sum(isinstance(e, TurnEnded) for e in events) == 1


def test_second_stage_and_threshold_mapping() -> None:
    assert looks_complete("What time is it?")
    assert looks_complete("Thank you.")
    assert not looks_complete("I want to book a table and")
    assert not looks_complete("My number is,")
    assert not looks_complete("")
