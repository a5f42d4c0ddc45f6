"""Fixtures of the realtime tests."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def spoken_16k(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """Real speech: a sentence synthesized by espeak-ng, as 16 kHz mono s16le PCM."""
    if shutil.which("espeak-ng") is None or shutil.which("sox") is None:
        pytest.skip("espeak-ng and sox are needed for real speech")
    out = tmp_path_factory.mktemp("speech")
    wav = out / "speech.wav"
    raw = out / "speech.raw"
    subprocess.run(["espeak-ng", "-w", str(wav), "What is the weather like in Paris today?"], check=True)
    subprocess.run(
        [
            "sox",
            str(wav),
            "-r",
            "16000",
            "-c",
            "1",
            "-b",
            "16",
            "-e",
            "signed-integer",
            "-t",
            "raw",
            str(raw),
        ],
        check=True,
    )
    return Path(raw).read_bytes()
