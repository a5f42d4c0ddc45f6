"""Call control from the agent, end to end: the model hangs up (our BYE) or transfers (our REFER).

A real pjsua2 caller calls `voicegw serve --agent voicegw.server.default_agent:front_desk`; the
model is the OpenAI Realtime protocol server of tests/models (the one fake allowed), scripted to
answer the greeting with 600 ms of speech and a function call. For the transfer, SIPp's ``uas``
is the operator: the caller accepts our REFER, calls SIPp, and reports the answer by NOTIFY.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from voicegw.testing.fake_realtime import API_KEY, FakeRealtimeServer
from voicegw.testing.harness import EchoServer, SippUas, run_caller
from voicegw.testing.media import read_wav

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]
AGENT = "voicegw.server.default_agent:front_desk"
SPOKEN_MS = 600  # the scenarios' speech before the function call: three 200 ms chunks of tone


async def call_agent(
    tmp_path: Path, scenario: str, *, config: str = ""
) -> tuple[dict[str, Any], EchoServer, FakeRealtimeServer]:
    """One call that waits for our BYE, recording what it hears; the server is stopped after."""
    async with FakeRealtimeServer(scenario) as model:
        voicegw = EchoServer(
            "voicegw",
            tmp_path,
            agent=AGENT,
            config=config,
            env={"OPENAI_API_KEY": API_KEY, "OPENAI_BASE_URL": model.base_url},
        )
        try:
            await asyncio.to_thread(voicegw.wait_ready)
            report = await asyncio.to_thread(
                run_caller,
                voicegw.uri,
                "--record",
                str(tmp_path / "heard.wav"),
                "--end",
                "wait-bye",
                "--bye-timeout",
                "20",
            )
        finally:
            stopped = await asyncio.to_thread(voicegw.stop)
    assert stopped, voicegw.output()
    assert model.violations == [], model.violations
    return report, voicegw, model


def heard_ms(path: Path) -> float:
    pcm, rate = read_wav(path)
    loud = np.flatnonzero(np.abs(np.asarray(pcm, dtype=np.float64)) > 1500)
    return (loud[-1] - loud[0] + 1) * 1000 / rate if len(loud) else 0.0


def end_reasons(voicegw: EchoServer) -> list[str]:
    return [e["end_reason"] for e in voicegw.log_events() if e.get("event") == "session_ended"]


async def test_the_agent_hangs_up_after_its_goodbye_is_heard(tmp_path: Path) -> None:
    report, voicegw, _ = await call_agent(tmp_path, "hang_up")

    assert report["answered"], report
    assert report["bye_received"], report  # the BYE came from voicegw
    assert abs(heard_ms(tmp_path / "heard.wav") - SPOKEN_MS) <= 100  # the whole goodbye, then BYE
    assert end_reasons(voicegw) == ["agent_hung_up"], voicegw.output()


async def test_the_agent_transfers_the_caller_to_the_operator(tmp_path: Path) -> None:
    operator = SippUas(tmp_path / "operator")
    try:
        report, voicegw, _ = await call_agent(
            tmp_path, "transfer", config=f'[agent]\noperator = "{operator.uri("operator")}"'
        )
    finally:
        status, sipp_output = await asyncio.to_thread(operator.wait, 20)

    assert report["transfers"] == [operator.uri("operator")], report  # our REFER's Refer-To
    assert 200 in report["transferred_call"]["status_codes"], report  # the operator answered
    assert report["bye_received"], report  # then voicegw left the call
    assert abs(heard_ms(tmp_path / "heard.wav") - SPOKEN_MS) <= 100  # "let me put you through" first
    assert status == 0, sipp_output  # SIPp took its call and the BYE that ended it
    assert end_reasons(voicegw) == ["transferred"], voicegw.output()
    transfer_logs = [
        e for e in voicegw.log_events() if e.get("event") == "transfer_status" and e.get("final")
    ]
    assert [e["code"] for e in transfer_logs] == [200], voicegw.output()
