"""Fixtures for the audio tests: real speech from espeak-ng, synthesized once per session."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.signals import speech

SpeechFactory = Callable[..., bytes]


@pytest.fixture(scope="session")
def speech_pcm(tmp_path_factory: pytest.TempPathFactory) -> SpeechFactory:
    """`speech_pcm(rate, text=...)`: mono s16le speech at `rate`, made by espeak-ng and sox.

    Each (rate, text) is synthesized once per test session into a temporary directory and
    reused, so tests can ask for real speech freely.
    """
    directory: Path = tmp_path_factory.mktemp("speech")
    made: dict[tuple[int, str], bytes] = {}

    def make(rate: int, text: str = "Hello, this is the voice gateway.") -> bytes:
        key = (rate, text)
        if key not in made:
            made[key] = speech(directory / f"speech{len(made)}", rate, text)
        return made[key]

    return make
