"""`examples/realtime/twilio_sip/server.py` as a user runs it: the Twilio profile, a SIP call, Ctrl-C.

The caller is the pjsua2 caller (a real SIP stack, as Twilio's gateway would be) and the model the
local OpenAI Realtime protocol server (the one fake allowed), so that the answer is known.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from voicegw.testing.fake_realtime import API_KEY, TONE_HZ, FakeRealtimeServer, dominant_hz
from voicegw.testing.harness import HOST, EchoServer, run_caller, run_process
from voicegw.testing.media import read_wav, write_wav
from voicegw.testing.raw_sip import Dialog, offer_sdp

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]
SERVER = Path(__file__).resolve().parents[2] / "examples" / "realtime" / "twilio_sip" / "server.py"
RATE = 8000
STOP_TIMEOUT_S = 15.0


@dataclass
class ExampleServer(EchoServer):
    """The example as a subprocess on 127.0.0.1, with the Twilio profile and `allow` as allow-list."""

    allow: str = "127.0.0.1/32"

    def command(self) -> list[str]:
        return [sys.executable, str(SERVER), "--listen", f"{HOST}:{self.port}", "--public-address", HOST,
                "--allow", self.allow]  # fmt: skip


def model_env(model_server: FakeRealtimeServer) -> dict[str, str]:
    return {"OPENAI_API_KEY": API_KEY, "OPENAI_BASE_URL": model_server.base_url}


def ctrl_c(server: ExampleServer) -> bool:
    """SIGINT, as Ctrl-C in a terminal; True if it then exited by itself with status 0."""
    server.proc.send_signal(signal.SIGINT)
    with contextlib.suppress(subprocess.TimeoutExpired):
        server.proc.wait(STOP_TIMEOUT_S)
    return server.stop()


async def test_help() -> None:
    status, out, _ = await run_process(sys.executable, str(SERVER), "--help", time_limit=30)
    assert status == 0
    for option in ("--listen", "--public-address", "--allow", "--model", "--config"):
        assert option in out, option


async def test_a_call_from_an_allowed_source_is_answered_by_the_agent(tmp_path: Path) -> None:
    t = np.arange(RATE * 3) / RATE
    question = write_wav(tmp_path / "q.wav", (6000 * np.sin(2 * np.pi * 700 * t)).astype("<i2"), RATE)
    async with FakeRealtimeServer("conversation") as model_server:
        server = ExampleServer("twilio_sip", tmp_path, env=model_env(model_server))
        try:
            await asyncio.to_thread(server.wait_ready)
            report = await asyncio.to_thread(
                run_caller, f"sip:+15550100@{HOST}:{server.port}", "--codec", "PCMU",
                "--play", str(question), "--record", str(tmp_path / "a.wav"), "--end", "hangup",
            )  # fmt: skip
        finally:
            stopped = await asyncio.to_thread(ctrl_c, server)
    out = server.output()
    assert stopped, out
    assert "Traceback" not in out, out
    assert f"[answering] sip:{HOST}:{server.port} (public {HOST}), callers from 1 network(s)" in out, out
    assert "\n[done]\n" in out, out
    assert 200 in report["status_codes"], report
    assert model_server.violations == [], model_server.violations
    connection = model_server.connections[0]
    # The profile's PCMU reaches the model untouched, and the agent is this example's.
    session = connection.of_type("session.update")[0]["session"]
    assert session["audio"]["input"]["format"] == {"type": "audio/pcmu"}
    assert "Be concise" in session["instructions"]
    assert "get_time" in [tool["name"] for tool in session["tools"]]
    assert connection.input_ms() >= 1200  # the caller's audio reached the model
    pcm, rate = read_wav(tmp_path / "a.wav")
    samples = np.asarray(pcm, dtype=np.float64)
    loud = np.flatnonzero(np.abs(samples) > 1500)
    assert len(loud), "no answer audio reached the caller"
    assert (loud[-1] - loud[0] + 1) * 1000 / rate >= 600  # the scenario's answer is 800 ms
    assert abs(dominant_hz(samples[loud[0] : loud[-1]], rate) - TONE_HZ) < 15


async def test_a_call_from_a_source_off_the_allow_list_is_refused(tmp_path: Path) -> None:
    async with FakeRealtimeServer("conversation") as model_server:
        # A documentation network (RFC 5737) as the only allowed one: 127.0.0.1 is not on it.
        server = ExampleServer("twilio_sip", tmp_path, env=model_env(model_server), allow="192.0.2.0/24")
        try:
            await asyncio.to_thread(server.wait_ready)
            dialog = Dialog(server.port)
            try:
                dialog.invite(offer_sdp(dialog.local_port + 2))
                refused = await asyncio.to_thread(dialog.until, 403)
                dialog.ack(for_error=True)
            finally:
                dialog.close()
        finally:
            stopped = await asyncio.to_thread(server.stop)  # SIGTERM
    assert refused.status == 403
    assert stopped, server.output()
    assert model_server.connections == []  # no model session for a refused call
