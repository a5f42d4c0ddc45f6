"""`examples/realtime/twilio_sip/server.py` as a user runs it: the Twilio profile, a SIP call, Ctrl-C.

The caller is the pjsua2 caller (a real SIP stack, as Twilio's gateway would be) and the model the
local OpenAI Realtime protocol server (the one fake allowed), so that the answer is known.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.e2e.harness import HOST, free_udp_port, options_ping, run_caller, run_process
from tests.e2e.media import read_wav, write_wav
from tests.models.fake_realtime import API_KEY, TONE_HZ, FakeRealtimeServer, dominant_hz
from tests.sip.raw_sip import Dialog, offer_sdp

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]
SERVER = Path(__file__).resolve().parents[2] / "examples" / "realtime" / "twilio_sip" / "server.py"
RATE = 8000
START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 15.0


class ExampleServer:
    """The example as a subprocess on 127.0.0.1, with the Twilio profile and `allow` as allow-list."""

    def __init__(self, allow: str, model_server: FakeRealtimeServer) -> None:
        env = {"OPENAI_API_KEY": API_KEY, "OPENAI_BASE_URL": model_server.base_url}
        self.port = free_udp_port()
        self.proc = subprocess.Popen(
            [sys.executable, str(SERVER), "--listen", f"{HOST}:{self.port}", "--public-address", HOST,
             "--allow", allow],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **env},
        )  # fmt: skip

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"the example exited with {self.proc.returncode}: {self.proc.communicate()}"
                )
            if options_ping(self.port, 0.3) == 200:
                return
        raise TimeoutError("the example did not answer OPTIONS")

    def stop(self, sig: signal.Signals) -> tuple[int, str, str]:
        """Send `sig`; the exit status and output (killed, and failing, if it does not exit)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            out, err = self.proc.communicate(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
            return -9, out.decode(errors="replace"), err.decode(errors="replace")
        return self.proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")


async def test_help() -> None:
    status, out, _ = await run_process(sys.executable, str(SERVER), "--help", time_limit=30)
    assert status == 0
    for option in ("--listen", "--public-address", "--allow", "--model", "--config"):
        assert option in out, option


async def test_a_call_from_an_allowed_source_is_answered_by_the_agent(tmp_path: Path) -> None:
    t = np.arange(RATE * 3) / RATE
    question = write_wav(tmp_path / "q.wav", (6000 * np.sin(2 * np.pi * 700 * t)).astype("<i2"), RATE)
    async with FakeRealtimeServer("conversation") as model_server:
        server = ExampleServer("127.0.0.1/32", model_server)
        try:
            await asyncio.to_thread(server.wait_ready)
            report = await asyncio.to_thread(
                run_caller, f"sip:+15550100@{HOST}:{server.port}", "--codec", "PCMU",
                "--play", str(question), "--record", str(tmp_path / "a.wav"), "--end", "hangup",
            )  # fmt: skip
        finally:
            status, out, err = await asyncio.to_thread(server.stop, signal.SIGINT)
    assert status == 0, err
    assert "Traceback" not in err, err
    assert out.startswith(f"[answering] sip:{HOST}:{server.port} (public {HOST}), callers from 1 network(s)")
    assert out.rstrip().endswith("[done]"), out
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
        server = ExampleServer("192.0.2.0/24", model_server)
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
            status, _, err = await asyncio.to_thread(server.stop, signal.SIGTERM)
    assert refused.status == 403
    assert status == 0, err
    assert model_server.connections == []  # no model session for a refused call
