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
from pathlib import Path

import pytest

from tests.e2e.front_desk import GREETING_S, RATE, Listener, conversation, front_desk_server, tools_called
from voicegw.testing.harness import run_caller
from voicegw.testing.media import read_wav, write_wav

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]
QUESTIONS = ("What are your opening hours?", "What time is it now?", "Goodbye.")


async def test_plain_serve_answers_questions_with_tools_and_hangs_up_on_goodbye(tmp_path: Path) -> None:
    pcm, windows = conversation(tmp_path, QUESTIONS)
    wav = write_wav(tmp_path / "caller.wav", pcm, RATE)
    voicegw = front_desk_server(tmp_path)
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
    listener = Listener(*read_wav(heard))
    greeting = listener.said(0, GREETING_S)
    hours, time_answer, farewell = (listener.said(start, end) for start, end in windows)
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
    assert tools_called(voicegw) == {"opening_hours", "current_time", "hang_up"}, tools_called(voicegw)
