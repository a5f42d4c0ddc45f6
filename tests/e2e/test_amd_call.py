"""`voicegw call --amd` to a callee that is a person, one that is an answering machine, a silent
line; how each call goes is checked from what the callee heard (voicegw/testing/amd_calls.py)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from voicegw.testing.amd_calls import (
    ALIGNMENT_MS,
    GREETING,
    MESSAGE_MS,
    call_callee,
    recording,
    tone_onset_ms,
)
from voicegw.testing.callees import RATE, VOICES, Callee, greeting, pickup
from voicegw.testing.fake_realtime import TONE_HZ, dominant_hz
from voicegw.testing.media import PCMU
from voicegw.testing.rtp_tools import RtpCapture
from voicegw.testing.sipp import SippRun

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]
MESSAGE = "Hello, this is Acme Dental confirming your appointment tomorrow at nine."


def call_record(stderr: str) -> dict[str, object]:
    """The call's record, from its ``call_record`` log line."""
    for line in stderr.splitlines():
        if line.startswith("{") and '"event": "call_record"' in line:
            record: dict[str, object] = json.loads(line)["record"]
            return record
    raise AssertionError("no call_record line")


def check_ending(status: int, stderr: str, run: SippRun, expected: int, last_line: str) -> None:
    """The exit status, SIPp's scenario played through, the last line, and no error logged."""
    assert status == expected, stderr[-3000:]
    assert run.ok, run.output
    assert last_line in stderr.strip().splitlines()[-1]
    assert '"level": "error"' not in stderr and "Traceback" not in stderr


async def test_a_person_answering_gets_the_agent(tmp_path: Path, rtp_capture: tuple[RtpCapture, int]) -> None:
    callee = pickup("Hello?", VOICES[0], tmp_path / "speech", lead_ms=400)
    status, stderr, run, _ = await call_callee(tmp_path, rtp_capture, callee, "uas_answer_play_bye.xml")
    capture = rtp_capture[0]
    check_ending(status, stderr, run, 0, "voicegw: answered by: human")
    assert '"event": "amd_decided"' in stderr and '"verdict": "human"' in stderr
    assert call_record(stderr)["amd"] == "human"
    # The agent greets once the person has said hello and paused, within 3 s of the answer.
    onset = tone_onset_ms(capture)
    assert callee.greeting_end_ms is not None
    assert callee.greeting_end_ms < onset < 3000 + 1000, onset
    samples, _ = recording(capture)
    loud = np.flatnonzero(np.abs(samples) > 1500)
    assert abs(dominant_hz(samples[loud[0] : loud[-1]], RATE) - TONE_HZ) < 15


async def test_a_machine_gets_the_voicemail_after_its_beep(
    tmp_path: Path, rtp_capture: tuple[RtpCapture, int]
) -> None:
    callee = greeting(
        GREETING, VOICES[1], tmp_path / "speech", lead_ms=300, beep_hz=1000.0, gap_ms=400, beep_ms=400
    )
    status, stderr, run, responses = await call_callee(
        tmp_path, rtp_capture, callee, "uas_answer_play_wait_bye.xml", "--voicemail-message", MESSAGE
    )
    capture = rtp_capture[0]
    check_ending(status, stderr, run, 5, "voicemail left after the beep")
    assert '"verdict": "machine"' in stderr and '"event": "voicemail_left"' in stderr
    assert call_record(stderr)["amd"] == "machine"
    assert len(responses) == 1 and responses[0].endswith(MESSAGE), responses  # the text, word for word
    # The callee's recording: silence while its greeting plays, then the message, which starts
    # after the beep has ended (never over it) and soon after (the target is 500 ms).
    assert callee.beep_end_ms is not None
    onset = tone_onset_ms(capture)
    delay = onset - callee.beep_end_ms
    assert -ALIGNMENT_MS < delay < 500 + 1000, f"the message started {delay:.0f} ms after the beep's end"
    samples, _ = recording(capture)
    message = samples[int(onset * RATE / 1000) :]
    loud = np.flatnonzero(np.abs(message) > 1500)
    heard_ms = (loud[-1] - loud[0] + 1) * 1000 / RATE
    assert abs(heard_ms - MESSAGE_MS) <= 100, heard_ms  # all of it went out before the hang-up


async def test_a_machine_is_hung_up_on_when_asked(
    tmp_path: Path, rtp_capture: tuple[RtpCapture, int]
) -> None:
    callee = greeting(GREETING, VOICES[2], tmp_path / "speech", lead_ms=300, beep_hz=1000.0)
    status, stderr, run, responses = await call_callee(
        tmp_path, rtp_capture, callee, "uas_answer_play_wait_bye.xml", "--on-machine", "hangup"
    )
    assert responses == []
    capture = rtp_capture[0]
    check_ending(status, stderr, run, 6, "no voicemail left")
    # Hung up at the decision, within 3 s, long before the greeting's end; nothing was said.
    packets = capture.packets()
    assert (packets[-1].arrival - packets[0].arrival) < 3.5
    assert all(np.abs(PCMU.decode(p.payload).astype(np.float64)).max() < 1500 for p in packets)


async def test_a_silent_line_is_unknown_and_gets_the_agent(
    tmp_path: Path, rtp_capture: tuple[RtpCapture, int]
) -> None:
    callee = Callee("silent line", bytes(RATE * 2 * 8), "unknown", None, None, None)
    status, stderr, run, _ = await call_callee(tmp_path, rtp_capture, callee, "uas_answer_play_bye.xml")
    check_ending(status, stderr, run, 7, "voicegw: answered by: unknown (nobody spoke")
    # Nobody spoke for the initial silence (2.5 s): the agent talks then.
    assert 2500 - ALIGNMENT_MS <= tone_onset_ms(rtp_capture[0]) < 2500 + 1500


async def test_a_voicemail_without_a_model_ends_the_call_with_the_cause_logged(
    tmp_path: Path, rtp_capture: tuple[RtpCapture, int]
) -> None:
    callee = greeting(GREETING, VOICES[3], tmp_path / "speech", lead_ms=300, beep_hz=850.0)
    status, stderr, run, _ = await call_callee(
        tmp_path, rtp_capture, callee, "uas_answer_play_wait_bye.xml", model_rejects=503
    )
    check_ending(status, stderr, run, 6, "no voicemail left")
    assert '"event": "voicemail_failed"' in stderr and '"cause": "model_unreachable"' in stderr


async def test_a_person_whose_phone_sends_no_rtp_while_silent_is_a_human(
    tmp_path: Path, rtp_capture: tuple[RtpCapture, int]
) -> None:
    said = pickup("Hello?", VOICES[2], tmp_path / "speech", lead_ms=0)
    assert said.greeting_end_ms is not None
    # Silence suppression: packets only while the person speaks, none before or after.
    speech_only = dataclasses.replace(said, pcm=said.pcm[: said.greeting_end_ms * RATE // 1000 * 2])
    status, stderr, run, _ = await call_callee(tmp_path, rtp_capture, speech_only, "uas_answer_play_bye.xml")
    check_ending(status, stderr, run, 0, "voicegw: answered by: human")
    [decided] = [json.loads(line) for line in stderr.splitlines() if '"amd_decided"' in line]
    assert decided["decided_ms"] < 3000, decided
