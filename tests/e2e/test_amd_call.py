"""`voicegw call --amd` to a callee that is a person, then to one that is an answering machine.

SIPp answers and plays a synthetic callee (tests/audio/callees.py) from a pcap; its SDP sends
voicegw's audio to a socket the test owns, which is what the callee would record. The agent's
model is the OpenAI Realtime protocol server of tests/models: its greeting, and so the
voicemail, is 2 s of a 440 Hz tone, easy to find in the recording.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from tests.audio.callees import RATE, VOICES, Callee, greeting, pickup
from tests.e2e.harness import run_process
from tests.e2e.media import PCMU
from tests.e2e.rtp_tools import RtpCapture, build_pcap
from tests.models.fake_realtime import API_KEY, TONE_HZ, FakeRealtimeServer, dominant_hz
from tests.sip.sipp import HOST, SippRun, sipp_uas

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

GREETING = (
    "Hi, you have reached the voicemail of John Smith. I can't take your call right now. "
    "Please leave a message after the tone."
)
MESSAGE_MS = 2000  # tests/models/data/greeting.json: ten 200 ms chunks of tone
ALIGNMENT_MS = 100
"""How far apart the callee's clock (its pcap starts on the ACK) and the first packet voicegw
sends (on the 200 OK) may be: both happen within a loopback round trip, and a packet or two."""


def recording(capture: RtpCapture) -> tuple[np.ndarray, float]:
    """What the callee heard, decoded in arrival order, and when the first packet arrived."""
    packets = [p for p in capture.packets() if p.payload_type == 0]
    assert packets, "voicegw sent no audio"
    samples = np.concatenate([PCMU.decode(p.payload) for p in packets]).astype(np.float64)
    return samples, packets[0].arrival


def tone_onset_ms(capture: RtpCapture) -> float:
    """When the agent's tone began, in ms after voicegw's first packet (arrival times, so a
    stalled sender shows)."""
    packets = [p for p in capture.packets() if p.payload_type == 0]
    first = packets[0].arrival
    for packet in packets:
        pcm = PCMU.decode(packet.payload).astype(np.float64)
        if np.abs(pcm).max() > 1500:
            return (packet.arrival - first) * 1000
    raise AssertionError("the agent's audio never reached the callee")


async def call_callee(
    tmp_path: Path,
    capture: tuple[RtpCapture, int],
    callee: Callee,
    scenario: str,
    *args: str,
    model_rejects: int | None = None,
) -> tuple[int, str, SippRun]:
    """Dial SIPp playing `callee` with `voicegw call --amd ARGS`: exit status, stderr, SIPp's run.

    `capture` is the socket SIPp's SDP announces (and its -mp): what voicegw sends arrives there.
    `model_rejects`: the model server answers every connection with this HTTP status.
    """
    samples = np.frombuffer(callee.pcm, dtype="<i2").copy()
    build_pcap(tmp_path / "audio.pcap", "PCMU", samples)
    keys = {"pt": "0", "codec": "PCMU/8000"}
    answering = sipp_uas(scenario, tmp_path, keys=keys, pause_ms=7000, time_limit=40, media_port=capture[1])
    model_server = FakeRealtimeServer("greeting", reject_status=model_rejects)
    async with model_server as model, answering as (port, sipp):
        status, _, stderr = await run_process(
            sys.executable, "-m", "voicegw", "call", f"sip:callee@{HOST}:{port}",
            "--agent", "tests.e2e.agents:greeter", "--timeout", "10", "--amd", *args,
            env={"OPENAI_API_KEY": API_KEY, "OPENAI_BASE_URL": model.base_url},
        )  # fmt: skip
        run = await sipp
    assert model.violations == [], model.violations
    return status, stderr, run


async def test_a_person_answering_gets_the_agent(tmp_path: Path, rtp_capture: tuple[RtpCapture, int]) -> None:
    callee = pickup("Hello?", VOICES[0], tmp_path / "speech", lead_ms=400)
    status, stderr, run = await call_callee(tmp_path, rtp_capture, callee, "uas_answer_play_bye.xml")
    capture = rtp_capture[0]
    assert status == 0, stderr[-3000:]
    assert run.ok, run.output
    assert '"event": "amd_decided"' in stderr and '"verdict": "human"' in stderr
    assert "voicegw: answered by: human" in stderr.strip().splitlines()[-1]
    assert '"level": "error"' not in stderr
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
    status, stderr, run = await call_callee(tmp_path, rtp_capture, callee, "uas_answer_play_wait_bye.xml")
    capture = rtp_capture[0]
    assert status == 5, stderr[-3000:]
    assert run.ok, run.output
    assert '"verdict": "machine"' in stderr and '"event": "voicemail_left"' in stderr
    assert "voicemail left after the beep" in stderr.strip().splitlines()[-1]
    assert '"level": "error"' not in stderr
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
    status, stderr, run = await call_callee(
        tmp_path, rtp_capture, callee, "uas_answer_play_wait_bye.xml", "--on-machine", "hangup"
    )
    capture = rtp_capture[0]
    assert status == 6, stderr[-3000:]
    assert run.ok, run.output
    assert "no voicemail left" in stderr.strip().splitlines()[-1]
    # Hung up at the decision, within 3 s, long before the greeting's end; nothing was said.
    packets = capture.packets()
    assert (packets[-1].arrival - packets[0].arrival) < 3.5
    assert all(np.abs(PCMU.decode(p.payload).astype(np.float64)).max() < 1500 for p in packets)


async def test_a_silent_line_is_unknown_and_gets_the_agent(
    tmp_path: Path, rtp_capture: tuple[RtpCapture, int]
) -> None:
    callee = Callee("silent line", bytes(RATE * 2 * 8), "unknown", None, None, None)
    status, stderr, run = await call_callee(tmp_path, rtp_capture, callee, "uas_answer_play_bye.xml")
    assert status == 7, stderr[-3000:]
    assert run.ok, run.output
    assert "voicegw: answered by: unknown (nobody spoke" in stderr.strip().splitlines()[-1]
    # Nobody spoke for the initial silence (2.5 s): the agent talks then.
    assert 2500 <= tone_onset_ms(rtp_capture[0]) < 2500 + 1500


async def test_a_voicemail_without_a_model_ends_the_call_with_the_cause_logged(
    tmp_path: Path, rtp_capture: tuple[RtpCapture, int]
) -> None:
    callee = greeting(GREETING, VOICES[3], tmp_path / "speech", lead_ms=300, beep_hz=850.0)
    status, stderr, run = await call_callee(
        tmp_path, rtp_capture, callee, "uas_answer_play_wait_bye.xml", model_rejects=503
    )
    assert status == 6, stderr[-3000:]
    assert run.ok, run.output
    assert '"event": "voicemail_failed"' in stderr and '"cause": "model_unreachable"' in stderr
    assert "no voicemail left" in stderr.strip().splitlines()[-1]
    assert '"level": "error"' not in stderr and "Traceback" not in stderr
