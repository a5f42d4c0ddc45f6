"""Fixtures of the realtime tests."""

from __future__ import annotations

import pytest

from tests.signals import speech


@pytest.fixture(scope="session")
def spoken_16k(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """Real speech: a sentence synthesized by espeak-ng, as 16 kHz mono s16le PCM."""
    return speech(
        tmp_path_factory.mktemp("speech") / "paris", 16000, "What is the weather like in Paris today?"
    )
