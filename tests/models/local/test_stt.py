"""The packaged Whisper on phone speech: a short encoder window for a turn, the full one for long."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.models.local.conftest import RATE, silence, spoken
from voicegw.models.local.stt import (
    FULL_WINDOW_FRAMES,
    MIN_WINDOW_FRAMES,
    TAIL_FRAMES,
    SpeechToText,
    window_frames,
)


def test_a_turn_gets_a_short_window_with_silence_after_it() -> None:
    assert window_frames(150) == MIN_WINDOW_FRAMES  # 1.5 s of speech: a 10 s window
    assert window_frames(1500) == 1500 + TAIL_FRAMES
    assert window_frames(2900) == FULL_WINDOW_FRAMES


@pytest.fixture(scope="module")
def stt() -> SpeechToText:
    model = SpeechToText()
    model.load()
    return model


def test_a_spoken_question_is_transcribed_in_a_short_window(stt: SpeechToText, tmp_path: Path) -> None:
    pcm = spoken("I want to track my order number three hundred.", tmp_path)

    result = stt.transcribe(pcm, RATE)

    assert "order" in result.text.lower() and "300" in result.text, result
    assert result.audio_ms == pytest.approx(len(pcm) * 1000 // (2 * RATE), abs=20)


def test_an_utterance_longer_than_a_window_is_transcribed_whole(stt: SpeechToText, tmp_path: Path) -> None:
    sentence = spoken("Thank you very much.", tmp_path)
    pause = silence(600)
    # About 28 s: past what one window holds with its silence, so Whisper's own segmenting runs.
    long = (sentence + pause) * max(1, 28_000 // ((len(sentence) + len(pause)) * 1000 // (2 * RATE)))

    text = stt.transcribe(long, RATE).text.lower()

    assert text.count("thank you") >= 3, text


def test_silence_and_clicks_are_not_transcribed(stt: SpeechToText) -> None:
    assert stt.transcribe(silence(100), RATE).text == ""


@pytest.mark.parametrize("sentence", ["Good morning.", "Goodbye.", "Who am I speaking with?"])
def test_a_vocabulary_biases_the_words_without_repeating_the_utterance(
    stt: SpeechToText, tmp_path: Path, sentence: str
) -> None:
    vocabulary = ("order number", "opening hours", "branch", "Boston", "Springfield", "Austin")

    text = stt.transcribe(spoken(sentence, tmp_path), RATE, vocabulary).text

    # Prompted tiny Whisper used to say short turns several times ("Good morning. Good morning...").
    assert len(text.split()) <= len(sentence.split()) + 1, text
