"""A plain `voicegw serve` answers a phone call: the default front desk on the embedded model.

A real pjsua2 caller (its own media stack) plays one WAV into the call: three questions spoken by
espeak-ng with room for each answer; it records everything it hears and waits for our BYE. The
recording, cut at the questions and transcribed by the embedded model's own Whisper, must carry
the facts of the tools' answers, and "goodbye" must end the call from our side.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import tomllib
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from tests.e2e.harness import EchoServer, run_caller
from tests.e2e.media import read_wav, synthesize, write_wav
from voicegw.models.local.stt import SpeechToText

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]
RATE = 8000
GREETING = "Hello, front desk. How can I help?"
ANSWER_S = 11.0
"""Room for one answer of the embedded model on a loaded 2-core machine (it starts within ~3 s)."""

QUESTIONS = ("What are your opening hours?", "What time is it now?", "Goodbye.")


def desk_data(tmp_path: Path) -> Path:
    """The bundled front desk with a short greeting, so the caller need not wait through it."""
    source = resources.files("voicegw.server") / "data" / "front_desk.toml"
    text = source.read_text(encoding="utf-8")
    assert tomllib.loads(text)["greeting"]
    text = re.sub(r'greeting = """.*?"""', f'greeting = "{GREETING}"', text, flags=re.S)
    path = tmp_path / "desk.toml"
    path.write_text(text)
    return path


def conversation(tmp_path: Path) -> tuple[Path, list[tuple[float, float]]]:
    """The caller's side: 6 s for the greeting, then each question followed by room for its answer.
    Returns the WAV and, per question, the window (seconds) in which its answer must be heard."""
    silence = np.zeros(int(RATE * 6.0), dtype=np.int16)
    parts, windows, at = [silence], [], len(silence) / RATE
    for index, text in enumerate(QUESTIONS):
        pcm, _ = read_wav(synthesize(tmp_path / f"q{index}.wav", rate=RATE, text=text))
        gap = np.zeros(int(RATE * ANSWER_S), dtype=np.int16)
        parts += [pcm, gap]
        at += len(pcm) / RATE
        windows.append((at, at + ANSWER_S))
        at += ANSWER_S
    return write_wav(tmp_path / "caller.wav", np.concatenate(parts), RATE), windows


async def test_plain_serve_answers_questions_with_tools_and_hangs_up_on_goodbye(tmp_path: Path) -> None:
    wav, windows = conversation(tmp_path)
    voicegw = EchoServer(
        "voicegw",
        tmp_path,
        agent="",  # no --agent: what a plain `voicegw serve` runs
        config=f'[model]\nname = "local"\n[agent]\ndata = "{desk_data(tmp_path)}"\n',
    )
    try:
        await asyncio.to_thread(voicegw.wait_ready, 120)
        heard = tmp_path / "heard.wav"
        report = await asyncio.to_thread(
            run_caller,
            voicegw.uri,
            "--play",
            str(wav),
            "--record",
            str(heard),
            "--end",
            "wait-bye",
            timeout=150,
        )
    finally:
        stopped = await asyncio.to_thread(voicegw.stop)
    assert stopped, voicegw.output()[-3000:]
    assert report["answered"], report
    pcm, rate = read_wav(heard)
    stt = SpeechToText()

    def said(start: float, end: float) -> str:
        window = pcm[int(start * rate) : int(end * rate)]
        return stt.transcribe(window.astype(np.int16).tobytes(), rate).text.lower()

    greeting = said(0, 6.0)
    hours, time_answer, farewell = (said(start, end) for start, end in windows)
    log = voicegw.output()
    assert "front desk" in greeting or "help" in greeting, (greeting, log[-2000:])
    # The opening_hours tool's answer: "open Monday to Friday from 8 AM to 6 PM..."
    assert "monday" in hours and "friday" in hours, (hours, log[-3000:])
    # The current_time tool's answer carries today's date: its weekday is a word Whisper spells.
    today = dt.datetime.now().astimezone().strftime("%A").lower()
    assert today in time_answer or "time" in time_answer, (time_answer, log[-3000:])
    assert re.search(r"\d", time_answer), (time_answer, log[-3000:])
    # "Goodbye." ends the call from our side, after the farewell.
    assert "goodbye" in farewell or "thank you" in farewell, (farewell, log[-3000:])
    assert report["bye_received"] and report["disconnect_reason"] != "", report
    assert report["bye_after_s"] < windows[-1][1] + 1, report
    # Each tool call is logged (read the whole log: `output()` is only its tail).
    called = {str(e["tool"]) for e in voicegw.log_events() if e.get("event") == "tool_call"}
    assert called == {"opening_hours", "current_time", "hang_up"}, called
