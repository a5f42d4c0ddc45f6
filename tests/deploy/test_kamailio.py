"""deploy/kamailio/kamailio.cfg for real: Kamailio on 127.0.0.1 in front of two `voicegw serve --echo`
nodes; SIPp calls through it are spread over both, and while one node drains (SIGTERM: its INVITEs
get 503) every call still lands, on the other one."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.signals import require_tools
from voicegw.testing.harness import EchoServer, free_udp_port, options_ping
from voicegw.testing.raw_sip import Dialog
from voicegw.testing.sipp import run_scenario

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]
CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "kamailio" / "kamailio.cfg"
HOST = "127.0.0.1"
CALLS = 4


class Kamailio:
    """deploy/kamailio/kamailio.cfg in the foreground, listening on 127.0.0.1, nodes from `nodes`."""

    def __init__(self, workdir: Path, nodes: list[int]) -> None:
        require_tools("kamailio")
        self.port = free_udp_port()
        runtime = workdir / "kamailio-run"
        runtime.mkdir()
        dispatcher = workdir / "dispatcher.list"
        dispatcher.write_text("".join(f"1 sip:{HOST}:{port} 0 0 duid=node{port}\n" for port in nodes))
        self.log_path = workdir / "kamailio.log"
        self._log = self.log_path.open("wb")
        # -DD -E: foreground, log to stderr; -A: the config's defines (listen address, node list).
        # Probes every 5 s, not 1: a node slow for a moment on a loaded machine stays in the set.
        command = [
            "kamailio", "-f", str(CONFIG), "-DD", "-E", "-Y", str(runtime), "-m", "32", "-M", "4",
            "-A", f"LISTEN=udp:{HOST}:{self.port}",
            "-A", f'DISPATCHER_LIST="{dispatcher}"',
            "-A", f'CTL_SOCKET="unix:{runtime}/ctl"',
            "-A", "PING_INTERVAL=5",
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            command,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"kamailio exited with {self.proc.returncode}:\n{self.output()}")
            if options_ping(self.port, 0.3) is not None:
                return
        raise TimeoutError(f"kamailio did not answer within {timeout} s:\n{self.output()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")[-4000:]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[Kamailio, list[EchoServer]]]:
    nodes = [EchoServer("voicegw", tmp_path) for _ in range(2)]
    proxy: Kamailio | None = None
    try:
        for node in nodes:
            node.wait_ready()
        proxy = Kamailio(tmp_path, [node.port for node in nodes])
        proxy.wait_ready()
        yield proxy, nodes
    finally:
        if proxy is not None:
            proxy.stop()
        for node in nodes:
            node.stop()


def answered(node: EchoServer) -> int:
    return sum(1 for e in node.log_events() if e.get("event") == "call_answered")


def place_calls(proxy: Kamailio, workdir: Path, count: int) -> None:
    for index in range(count):
        run = run_scenario("uac_answer_bye.xml", proxy.port, workdir / f"call{index}", time_limit=20)
        assert run.ok, run.output + proxy.output()
        # The 200 OK came back through the proxy with its Record-Route (ACK and BYE followed it).
        assert f"Record-Route: <sip:{HOST}:{proxy.port};lr" in run.messages, run.messages[-3000:]


def test_calls_are_spread_over_the_nodes_and_fail_over_from_a_draining_one(
    cluster: tuple[Kamailio, list[EchoServer]], tmp_path: Path
) -> None:
    proxy, (first, second) = cluster
    place_calls(proxy, tmp_path / "spread", CALLS)
    assert (answered(first), answered(second)) == (CALLS // 2, CALLS // 2), proxy.output()

    # A call in progress keeps the first node alive while it drains.
    held = Dialog(first.port)
    try:
        held.establish()
        first.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        while not any(e.get("event") == "draining" for e in first.log_events()):
            assert time.monotonic() < deadline, first.output()
            time.sleep(0.1)
        before = answered(second)
        place_calls(proxy, tmp_path / "drain", CALLS)
        assert answered(second) - before == CALLS, proxy.output()
        rejected = [e for e in first.log_events() if e.get("event") == "call_rejected"]
        assert rejected and all(e["status"] == 503 for e in rejected), rejected
        held.request("BYE")
        held.until(200)
    finally:
        held.close()
    assert first.stop(), first.output()
