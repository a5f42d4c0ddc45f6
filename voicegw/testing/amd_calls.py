"""Calls to synthetic callees (voicegw/testing/callees.py) with `voicegw call --amd`, for the
end-to-end AMD tests and scripts/bench_voicemail.py.

SIPp answers and plays the callee from a pcap; its SDP sends voicegw's audio to a socket the
caller of these helpers owns, which is what the callee would record. The agent's model is the
OpenAI Realtime protocol server of tests/models: its greeting, and so the voicemail, is 2 s of a
440 Hz tone, easy to find in the recording.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from voicegw.testing.callees import Callee
from voicegw.testing.fake_realtime import API_KEY, FakeRealtimeServer
from voicegw.testing.harness import run_process
from voicegw.testing.media import PCMU
from voicegw.testing.rtp_tools import RtpCapture, build_pcap
from voicegw.testing.sipp import HOST, SippRun, sipp_uas

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
) -> tuple[int, str, SippRun, list[str]]:
    """Dial SIPp playing `callee` with `voicegw call --amd ARGS`: exit status, stderr, SIPp's run,
    and the instructions of every response the model was asked for.

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
            "--agent", "voicegw.testing.agents:greeter", "--timeout", "10", "--amd", *args,
            env={"OPENAI_API_KEY": API_KEY, "OPENAI_BASE_URL": model.base_url},
        )  # fmt: skip
        run = await sipp
    assert model.violations == [], model.violations
    requests = [m for c in model.connections for m in c.received if m.get("type") == "response.create"]
    return status, stderr, run, [m.get("response", {}).get("instructions", "") for m in requests]
