"""The default front desk on the embedded model, as the end-to-end callers meet it.

The callers (pjsua2, SIPp) play one recording: a pause for the greeting, then each question
spoken by espeak-ng followed by room for its answer. What they hear is transcribed by the embedded
model's own Whisper.
"""

from __future__ import annotations

import re
import tomllib
from importlib import resources
from pathlib import Path

import numpy as np

from voicegw.models.local.stt import SpeechToText
from voicegw.testing.harness import EchoServer
from voicegw.testing.media import Pcm, read_wav, synthesize

RATE = 8000
GREETING = "Hello, front desk. How can I help?"
GREETING_S = 6.0
ANSWER_S = 11.0
"""Room for one answer of the embedded model on a loaded 2-core machine (it starts within ~3 s)."""


def desk_data(tmp_path: Path) -> Path:
    """The bundled front desk with a short greeting, so the caller need not wait through it."""
    source = resources.files("voicegw.server") / "data" / "front_desk.toml"
    text = source.read_text(encoding="utf-8")
    assert tomllib.loads(text)["greeting"]
    text = re.sub(r'greeting = """.*?"""', f'greeting = "{GREETING}"', text, flags=re.S)
    path = tmp_path / "desk.toml"
    path.write_text(text)
    return path


def front_desk_server(tmp_path: Path, extra_config: str = "") -> EchoServer:
    """A plain `voicegw serve` (no --agent: the default front desk) on the embedded model."""
    config = f'[model]\nname = "local"\n[agent]\ndata = "{desk_data(tmp_path)}"\n{extra_config}'
    return EchoServer("voicegw", tmp_path, agent="", config=config)


def conversation(tmp_path: Path, questions: tuple[str, ...]) -> tuple[Pcm, list[tuple[float, float]]]:
    """The caller's side at 8 kHz, and per question the window (seconds) of its answer."""
    parts = [np.zeros(int(RATE * GREETING_S), dtype=np.int16)]
    windows, at = [], GREETING_S
    for index, text in enumerate(questions):
        pcm, _ = read_wav(synthesize(tmp_path / f"q{index}.wav", rate=RATE, text=text))
        parts += [pcm, np.zeros(int(RATE * ANSWER_S), dtype=np.int16)]
        at += len(pcm) / RATE
        windows.append((at, at + ANSWER_S))
        at += ANSWER_S
    return np.concatenate(parts), windows


class Listener:
    """Transcribes windows of what a caller heard."""

    def __init__(self, pcm: Pcm, rate: int) -> None:
        self.pcm, self.rate = pcm, rate
        self._stt = SpeechToText()

    def said(self, start: float, end: float) -> str:
        window = self.pcm[int(start * self.rate) : int(end * self.rate)]
        return self._stt.transcribe(window.astype(np.int16).tobytes(), self.rate).text.lower()


def tools_called(server: EchoServer) -> set[str]:
    """The tools the server logged as called (the whole JSON log, not the tail `output()` keeps)."""
    return {str(e["tool"]) for e in server.log_events() if e.get("event") == "tool_call"}
