from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.harness import free_udp_port, options_ping

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@pytest.fixture
def voicegw(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Start `voicegw serve --echo` with a TOML config; stopped (SIGTERM) at the end of the test."""
    servers: list[Server] = []

    def start(config: str = "") -> Server:
        port = free_udp_port()
        config_path = tmp_path / f"voicegw-{port}.toml"
        config_path.write_text(config)
        log_path = tmp_path / f"voicegw-{port}.log"
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "voicegw",
                "serve",
                "--echo",
                "--listen",
                f"127.0.0.1:{port}",
                "--config",
                str(config_path),
            ],
            cwd=ROOT,
            stdout=log_path.open("wb"),
            stderr=subprocess.STDOUT,
        )
        server = Server(proc, port, log_path)
        servers.append(server)
        deadline = time.monotonic() + 15
        while options_ping(port) != 200:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"voicegw did not start:\n{server.log()}")
        return server

    yield start
    for server in servers:
        server.stop()
