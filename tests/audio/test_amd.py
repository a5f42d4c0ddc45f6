from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from voicegw.audio.amd import AmdDecision, AmdEvent, AmdSettings, AnsweringMachineDetector, VoicemailReady
from voicegw.testing.callees import RATE, VOICES, Callee, greeting, pickup, silence, to_pcm, tone

GREETING = "Hi, you have reached the voicemail of John Smith. Please leave a message after the tone."


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("callees")


def run(pcm: bytes, settings: AmdSettings | None = None) -> tuple[AnsweringMachineDetector, list[AmdEvent]]:
    """Feed 20 ms frames until the detector is done (as a call would)."""
    detector = AnsweringMachineDetector(RATE, settings)
    frame = RATE * 20 // 1000 * 2
    events: list[AmdEvent] = []
    for i in range(0, len(pcm), frame):
        events += detector.feed(pcm[i : i + frame])
        if detector.done:
            break
    return detector, events


@pytest.mark.parametrize(("text", "noise"), [("Hello?", 0.0), ("Hello, this is Anna.", 0.0), ("Yes?", 800.0)])
def test_a_person_is_a_human_within_three_seconds(workdir: Path, text: str, noise: float) -> None:
    callee = pickup(text, VOICES[0], workdir, lead_ms=500, noise_rms=noise)
    detector, events = run(callee.pcm)
    assert len(events) == 1 and isinstance(events[0], AmdDecision)
    assert events[0].verdict == "human", events
    assert callee.greeting_end_ms is not None
    assert callee.greeting_end_ms < events[0].at_ms <= 3000
    assert detector.done and detector.ready is None


def test_a_greeting_with_a_beep_is_a_machine_ready_at_the_beep_end(workdir: Path) -> None:
    callee = greeting(GREETING, VOICES[1], workdir, lead_ms=200, beep_hz=1000.0, gap_ms=500, beep_ms=300)
    detector, events = run(callee.pcm)
    decision, ready = events
    assert isinstance(decision, AmdDecision) and decision.verdict == "machine"
    assert decision.at_ms <= 3000
    assert isinstance(ready, VoicemailReady) and ready.cause == "beep"
    assert callee.beep_end_ms is not None and abs(ready.at_ms - callee.beep_end_ms) <= 10
    assert ready.beep_hz is not None and abs(ready.beep_hz - 1000) < 5
    assert detector.done


def test_a_greeting_without_a_beep_is_ready_after_a_silence(workdir: Path) -> None:
    callee = greeting(GREETING, VOICES[2], workdir, lead_ms=200, beep_hz=None)
    _, events = run(callee.pcm, AmdSettings(no_beep_silence_ms=1500))
    decision, ready = events
    assert isinstance(decision, AmdDecision) and decision.verdict == "machine"
    assert isinstance(ready, VoicemailReady) and ready.cause == "silence"
    assert callee.greeting_end_ms is not None
    assert callee.greeting_end_ms + 1500 <= ready.at_ms <= callee.greeting_end_ms + 1500 + 300


def test_a_beep_right_at_the_answer_is_a_machine_already_recording() -> None:
    pcm = to_pcm(np.concatenate([silence(300), tone(1000, 500), silence(3000)]), 0.0, 0)
    _, events = run(pcm)
    decision, ready = events
    assert decision == AmdDecision("machine", 400, "a beep")
    assert isinstance(ready, VoicemailReady) and ready.cause == "beep"
    assert abs(ready.at_ms - 800) <= 4  # the beep's 4 ms fade-out dates its half-level point


@pytest.mark.parametrize("noise", [0.0, 800.0])
def test_a_silent_line_is_unknown(noise: float) -> None:
    _, events = run(to_pcm(silence(6000), noise, 7), AmdSettings(initial_silence_ms=2000))
    assert events == [AmdDecision("unknown", 2000, "nobody spoke")]


def test_a_greeting_that_never_ends_times_out(workdir: Path) -> None:
    callee = greeting(GREETING, VOICES[0], workdir, lead_ms=0, beep_hz=None, gap_ms=0)
    endless = callee.pcm[: len(callee.pcm) - RATE * 2 * 7] * 3
    _, events = run(endless, AmdSettings(max_voicemail_wait_ms=6000))
    assert events[-1] == VoicemailReady(6000, "timeout")


def test_many_words_before_a_pause_are_a_greeting(workdir: Path) -> None:
    callee = pickup("One. Two. Three. Four. Five. Six.", VOICES[5], workdir, lead_ms=200)
    _, events = run(callee.pcm, AmdSettings(greeting_ms=10_000))
    decision = events[0]
    assert isinstance(decision, AmdDecision)
    assert (decision.verdict, decision.cause) == ("machine", "more than 4 words without a pause")


def test_no_pattern_by_the_end_of_the_window_is_unknown(workdir: Path) -> None:
    callee = pickup("Hello, this is Anna.", VOICES[0], workdir, lead_ms=2400)
    _, events = run(callee.pcm, AmdSettings(total_analysis_ms=3000))
    assert events == [AmdDecision("unknown", 3000, "no pattern within the analysis window")]


def test_nothing_more_comes_after_the_decision_for_a_human(workdir: Path) -> None:
    callee: Callee = pickup("Hello?", VOICES[3], workdir, lead_ms=300)
    detector, _ = run(callee.pcm)
    assert detector.feed(to_pcm(tone(1000, 500), 0.0, 0) + callee.pcm) == []


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match=r"AmdSettings\.greeting_ms must be positive, got 0"):
        AmdSettings(greeting_ms=0)
    with pytest.raises(ValueError, match="max_words must be at least 1"):
        AmdSettings(max_words=0)
