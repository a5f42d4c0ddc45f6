"""`voicegw call` as a user runs it: SIPp answers (or not), the agent greets, the exit status says how.

The agent's model is the OpenAI Realtime protocol server of tests/models (the one fake allowed);
SIPp is the called party; its SDP sends our RTP to a socket the test owns, which checks the
greeting's audio (the fake's 440 Hz tone, μ-law) arrived.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from voicegw.testing.fake_realtime import API_KEY, TONE_HZ, FakeRealtimeServer, dominant_hz
from voicegw.testing.harness import run_process
from voicegw.testing.media import PCMU
from voicegw.testing.rtp_tools import RtpCapture
from voicegw.testing.sipp import HOST, sipp_uas

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]
GREETING_MS = 2000  # tests/models/data/greeting.json: ten 200 ms chunks of tone


async def voicegw_call(uri: str, *args: str, model_url: str) -> tuple[int, str]:
    """Run `voicegw call URI --agent voicegw.testing.agents:greeter ARGS`: exit status and stderr."""
    status, _, stderr = await run_process(
        sys.executable, "-m", "voicegw", "call", uri, "--agent", "voicegw.testing.agents:greeter", *args,
        env={"OPENAI_API_KEY": API_KEY, "OPENAI_BASE_URL": model_url},
    )  # fmt: skip
    return status, stderr


async def test_the_agent_greets_the_callee_and_the_call_completes(tmp_path: Path) -> None:
    with RtpCapture() as capture:
        keys = {"rtp_port": str(capture.port), "pt": "0", "codec": "PCMU/8000"}
        answering = sipp_uas("uas_answer_bye.xml", tmp_path, keys=keys, pause_ms=4000)
        async with FakeRealtimeServer("greeting") as model, answering as (port, sipp):
            status, stderr = await voicegw_call(
                f"sip:alice@{HOST}:{port}", "--from", "sip:campaign@voicegw.test", "--timeout", "10",
                model_url=model.base_url,
            )  # fmt: skip
            run = await sipp
    assert status == 0, stderr[-3000:]
    assert run.ok, run.output
    assert model.violations == [], model.violations
    assert (
        "From: <sip:campaign@voicegw.test>" in run.messages
        or "From: sip:campaign@voicegw.test" in run.messages
    )
    assert '"event": "call_completed"' in stderr and "far end hung up" in stderr
    samples = np.concatenate([PCMU.decode(p.payload) for p in capture.packets() if p.payload_type == 0])
    loud = np.flatnonzero(np.abs(samples.astype(np.float64)) > 1500)
    assert len(loud), "no greeting audio reached the callee"
    heard_ms = (loud[-1] - loud[0] + 1) * 1000 / 8000
    assert abs(heard_ms - GREETING_MS) <= 100, heard_ms
    assert abs(dominant_hz(samples[loud[0] : loud[-1]].astype(np.float64), 8000) - TONE_HZ) < 15


@pytest.mark.parametrize(
    ("scenario", "ring_s", "exit_status", "message"),
    [
        ("uas_busy.xml", "10", 3, "voicegw: busy: sip:bob@127.0.0.1:{port}: 486 Busy Here"),
        (
            "uas_ring_cancel.xml",
            "2",
            4,
            "voicegw: no answer: sip:bob@127.0.0.1:{port}: 487 no answer within 2 s",
        ),
    ],
)
async def test_an_unanswered_call_exits_with_its_status_and_one_line(
    tmp_path: Path, scenario: str, ring_s: str, exit_status: int, message: str
) -> None:
    async with FakeRealtimeServer("greeting") as model, sipp_uas(scenario, tmp_path) as (port, sipp):
        status, stderr = await voicegw_call(
            f"sip:bob@{HOST}:{port}", "--timeout", ring_s, model_url=model.base_url
        )
        run = await sipp
    assert run.ok, run.output
    assert status == exit_status, stderr[-3000:]
    assert stderr.strip().splitlines()[-1].startswith(message.format(port=port))
    assert "Traceback" not in stderr
