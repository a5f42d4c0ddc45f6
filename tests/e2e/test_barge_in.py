"""Barge-in over real RTP: the caller talks over the default agent's greeting (embedded model).

The caller is a raw SIP dialog plus a UDP socket sending a steady 20 ms PCMU stream, as a phone
does: silence, then an espeak-ng question while the greeting plays. Both directions are timed
at the caller's socket. The agent's voiced packets must stop soon after the first voiced packet
of the question left, and what the server says the caller heard (the truncated assistant item)
must match the greeting audio that actually arrived.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from voicegw.models.local.stt import SpeechToText
from voicegw.testing.barge_in import GREETING_HEARD_S, RATE, agent_stopped_at, phone_call
from voicegw.testing.harness import EchoServer
from voicegw.testing.media import read_wav, synthesize

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

STOP_BOUND_MS = 150
"""The issue's bound from the caller's speech onset on the wire to the agent's last voiced packet."""


def test_caller_speech_stops_the_agent_and_the_history_holds_what_was_heard(tmp_path: Path) -> None:
    question, _ = read_wav(synthesize(tmp_path / "q.wav", rate=RATE, text="What is your address?"))
    voicegw = EchoServer("voicegw", tmp_path, agent="", config='[model]\nname = "local"\n')
    try:
        voicegw.wait_ready(120)
        with phone_call(voicegw.port) as (caller, _, _):
            greeting_start = caller.wait_for_agent_speech(GREETING_HEARD_S)
            caller.question = question
            time.sleep(len(question) / RATE + 1.0)
    finally:
        stopped = voicegw.stop()
    assert stopped, voicegw.output()[-3000:]
    assert caller.onset is not None
    cut = agent_stopped_at(caller, greeting_start)
    stop_ms = (cut - caller.onset) * 1000
    log = voicegw.log_events()  # the whole log: output() is only its end
    interrupted = [entry for entry in log if entry.get("event") == "audio_interrupted"]
    truncated = [entry for entry in log if entry.get("event") == "item_truncated"]
    assert interrupted and truncated, voicegw.output()[-3000:]
    assert stop_ms <= STOP_BOUND_MS, (stop_ms, interrupted)
    # What the server says was heard is what arrived: the played ms and the words.
    heard_ms = (cut - greeting_start) * 1000
    assert abs(interrupted[0]["played_ms"] - heard_ms) <= 250, (interrupted[0], heard_ms)
    text = truncated[0]["transcript"].lower()
    greeting = "hello, you have reached the front desk of the riverside community center."
    assert text and greeting.startswith(text.rstrip(".,")[: len(text) - 2]), text
    received = np.concatenate([pcm for t, pcm in caller.received if greeting_start - 0.5 <= t <= cut])
    spoken = SpeechToText().transcribe(received.astype(np.int16).tobytes(), RATE).text.lower()
    # Whisper completes the word cut off half-said (and may invent one after it); the model
    # estimates words within a clause by their share of its speech: a word or two of slack.
    assert 0 <= len(spoken.split()) - len(text.split()) <= 3, (spoken, text)
