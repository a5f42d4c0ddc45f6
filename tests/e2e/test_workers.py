"""Calls in worker processes: a worker's death or hang ends only its calls, drain and metrics span workers.

Raw SIP dialogs (voicegw/testing/raw_sip.py) place the calls, so the test reads the BYE the server sends
(its Reason header); each call sends a tone as PCMU RTP from a capture socket and counts the echo.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.e2e.test_operations import metric, wait_for
from voicegw.server.workers.heartbeat import UNRESPONSIVE_AFTER_S
from voicegw.testing.fake_realtime import FakeRealtimeServer
from voicegw.testing.harness import EchoServer, free_udp_port, http_get, openai_agent_server
from voicegw.testing.media import PCMU
from voicegw.testing.raw_sip import Dialog, offer_sdp
from voicegw.testing.rtp_tools import RtpCapture, RtpPacket

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150)]

RATE = 8000
TONE = (np.sin(2 * np.pi * 440 * np.arange(160) / RATE) * 8000).astype(np.int16)
ECHO_RMS = 1000
"""A frame louder than this is echoed tone, not the silence a call sends with nothing to play."""
WORKER_FAILED_REASON = 'Reason: Q.850;cause=41;text="worker failed"'
RESTART_WAIT_S = 15.0
BYE_WAIT_S = UNRESPONSIVE_AFTER_S + 20.0
"""A hung worker is found within the heartbeat's bound; the rest is room for a loaded machine."""
CAUSES = ("died", "unresponsive")


class EchoLeg:
    """One raw SIP call sending a tone (PCMU, 20 ms packets) and recording what comes back."""

    def __init__(self, server_port: int) -> None:
        self.capture = RtpCapture()
        self.dialog = Dialog(server_port)
        ok = self.dialog.establish(offer_sdp(self.capture.port))
        found = re.search(r"m=audio (\d+)", ok.body)
        assert found, ok.body
        self.remote = ("127.0.0.1", int(found[1]))
        self._stop = threading.Event()
        self._sender = threading.Thread(target=self._send, daemon=True)
        self._sender.start()

    @property
    def call_id(self) -> str:
        return self.dialog.call_id

    def _send(self) -> None:
        payload = PCMU.encode(TONE)
        seq = 0
        while not self._stop.wait(0.02):
            packet = RtpPacket(0, seq & 0xFFFF, seq * 160, 0x1234ABCD, seq == 0, payload)
            self.capture.send(bytes(packet), self.remote)
            seq += 1

    def echoed_since(self, since: float) -> int:
        """Loud frames (the tone, echoed) that arrived after `since` (monotonic)."""
        return sum(
            1
            for packet in self.capture.packets()
            if packet.arrival >= since
            and packet.payload_type == 0
            and _rms(PCMU.decode(packet.payload)) > ECHO_RMS
        )

    def hang_up(self) -> None:
        self.stop_media()
        self.dialog.request("BYE")
        self.dialog.until(200)

    def stop_media(self) -> None:
        self._stop.set()
        self._sender.join()

    def close(self) -> None:
        self.stop_media()
        self.capture.close()
        self.dialog.close()


def _rms(pcm: Any) -> float:
    return float(np.sqrt(np.mean(np.asarray(pcm, dtype=np.float64) ** 2)))


def _events(server: EchoServer, name: str) -> list[dict[str, Any]]:
    return [event for event in server.log_events() if event.get("event") == name]


def _workers_of(server: EchoServer) -> dict[str, int]:
    """Each call's worker, from the server's ``call_to_worker`` lines."""
    return {event["call_id"]: event["worker"] for event in _events(server, "call_to_worker")}


def _worker_pids(server: EchoServer, index: int) -> list[int]:
    return [event["pid"] for event in _events(server, "worker_started") if event.get("worker") == index]


def _wait_echo(legs: list[EchoLeg], since: float, frames: int = 25) -> None:
    wait_for(lambda: all(leg.echoed_since(since) >= frames for leg in legs), "the echo of every call", 10.0)


def _start(tmp_path: Path, http_port: int, extra: str = "") -> EchoServer:
    config = f'[server]\nworkers = 2\nhttp = "127.0.0.1:{http_port}"\n{extra}'
    server = EchoServer("voicegw", tmp_path, config=config)
    server.wait_ready()
    return server


def test_a_killed_worker_ends_only_its_calls_and_comes_back(tmp_path: Path) -> None:
    _fail_one_worker(tmp_path, signal.SIGKILL, "died")


def test_a_worker_whose_loop_hangs_is_killed_and_its_calls_end(tmp_path: Path) -> None:
    # A stopped process is the surest hang: nothing in it runs, it answers no ping, yet it lives.
    _fail_one_worker(tmp_path, signal.SIGSTOP, "unresponsive")


def _fail_one_worker(tmp_path: Path, how: signal.Signals, cause: str) -> None:
    """Worker 0 gets `how` during four calls: its two calls end with a BYE, the others echo on."""
    http_port = free_udp_port()
    server = _start(tmp_path, http_port)
    legs: list[EchoLeg] = []
    try:
        legs = [EchoLeg(server.port) for _ in range(4)]
        _wait_echo(legs, time.monotonic())
        workers = _workers_of(server)
        doomed = [leg for leg in legs if workers[leg.call_id] == 0]
        survivors = [leg for leg in legs if workers[leg.call_id] == 1]
        assert len(doomed) == len(survivors) == 2, workers  # least loaded: spread evenly

        (old_pid,) = _worker_pids(server, 0)
        os.kill(old_pid, how)
        failed_at = time.monotonic()
        _wait_echo(survivors, failed_at)  # the other worker's calls never notice

        for leg in doomed:
            leg.dialog.sock.settimeout(BYE_WAIT_S)
            bye = leg.dialog.until_request("BYE")
            assert WORKER_FAILED_REASON in bye, bye
        # Nor afterwards: their echo goes on, with no BYE.
        time.sleep(1.5)
        _wait_echo(survivors, time.monotonic() - 1.0)
        ended = {event["call_id"]: event["end_reason"] for event in _events(server, "call_ended")}
        assert ended == {leg.call_id: "worker_failed" for leg in doomed}, server.output()
        lost = {event["call_id"]: event["cause"] for event in _events(server, "call_worker_failed")}
        assert lost == {leg.call_id: cause for leg in doomed}
        (failure,) = _events(server, f"worker_{cause}")
        assert failure["level"] == "error" and failure["worker"] == 0 and failure["calls"] == 2
        if cause == "unresponsive":
            assert failure["silent_s"] >= UNRESPONSIVE_AFTER_S and failure["exit_status"] == -signal.SIGKILL
            assert not _events(server, "worker_died")

        # The worker is back and takes new calls (the least loaded: it has none).
        wait_for(lambda: len(_worker_pids(server, 0)) == 2, "worker 0 started again", RESTART_WAIT_S)
        assert _worker_pids(server, 0)[1] != old_pid
        fresh = EchoLeg(server.port)
        legs.append(fresh)
        assert _workers_of(server)[fresh.call_id] == 0
        _wait_echo([fresh, *survivors], time.monotonic())

        for leg in (*survivors, fresh):
            leg.hang_up()
        metrics = http_get(http_port, "/metrics")[1]
        assert metric(metrics, "voicegw_worker_restarts_total", cause=cause) == 1
        assert sum(metric(metrics, "voicegw_worker_restarts_total", cause=c) for c in CAUSES) == 1
        assert metric(metrics, "voicegw_workers_up") == 2
        assert metric(metrics, "voicegw_calls_ended_total", reason="worker_failed") == 2
        assert metric(metrics, "voicegw_calls_total", outcome="answered", status="200") == 5
    finally:
        for leg in legs:
            leg.close()
        stopped = server.stop()
    assert stopped, server.output()


def test_drain_waits_for_the_calls_of_every_worker(tmp_path: Path) -> None:
    http_port = free_udp_port()
    server = _start(tmp_path, http_port)
    legs: list[EchoLeg] = []
    try:
        # Each process froze what its start-up made (voicegw.server.heap): calls' cycles are
        # then collected often and cheaply.
        wait_for(lambda: len(_events(server, "worker_ready")) == 2, "both workers' start-up")
        frozen = [e["frozen_objects"] for e in _events(server, "worker_ready") + _events(server, "serving")]
        assert len(frozen) == 3 and min(frozen) > 10_000, frozen
        legs = [EchoLeg(server.port) for _ in range(2)]
        assert sorted(_workers_of(server).values()) == [0, 1]
        server.proc.send_signal(signal.SIGTERM)
        wait_for(lambda: bool(_events(server, "draining")), "the drain to start")

        refused = Dialog(server.port)
        refused.invite(offer_sdp(refused.local_port + 2))
        assert refused.until(503).headers.get("retry-after")
        refused.ack(for_error=True)
        refused.close()
        assert http_get(http_port, "/health")[0] == 503

        drained_at = time.monotonic()
        _wait_echo(legs, drained_at)  # both workers still carry their calls
        assert server.proc.poll() is None
        for leg in legs:
            leg.hang_up()
        assert server.proc.wait(15) == 0, server.output()
    finally:
        for leg in legs:
            leg.close()
        server.stop()
    assert not [e for e in server.log_events() if e.get("level") == "error"], server.output()


async def test_metrics_sum_the_sessions_of_every_worker(tmp_path: Path) -> None:
    http_port = free_udp_port()
    fake = FakeRealtimeServer("conversation")
    fake.scenario["connections"] *= 2  # one model connection per call
    async with fake as model:
        server = openai_agent_server(
            tmp_path,
            "voicegw.testing.agents:assistant",
            model.base_url,
            config=f'[server]\nworkers = 2\nhttp = "127.0.0.1:{http_port}"\n',
        )
        legs: list[EchoLeg] = []
        try:
            await asyncio.to_thread(server.wait_ready)
            for _ in range(2):
                legs.append(await asyncio.to_thread(EchoLeg, server.port))
            assert sorted(_workers_of(server).values()) == [0, 1]
            for leg in legs:
                await asyncio.to_thread(leg.hang_up)

            def summed() -> bool:
                text = http_get(http_port, "/metrics")[1]
                return metric(text, "voicegw_sessions_ended_total", reason="caller_hung_up") == 2

            # Each session's end is counted in its own worker: only the sum makes two.
            await asyncio.to_thread(wait_for, summed, "both sessions in the metrics")
            text = http_get(http_port, "/metrics")[1]
            assert metric(text, "voicegw_calls_total", outcome="answered", status="200") == 2
            assert metric(text, "voicegw_calls_ended_total", reason="caller_hung_up") == 2
            health = http_get(http_port, "/health")
            assert health[0] == 200 and '"up": 2' in health[1], health
        finally:
            for leg in legs:
                leg.close()
            stopped = await asyncio.to_thread(server.stop)
    assert stopped, server.output()
