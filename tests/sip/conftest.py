from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from voicegw.testing.harness import EchoServer


@pytest.fixture
def voicegw(tmp_path: Path) -> Iterator[Callable[..., EchoServer]]:
    """Start `voicegw serve --echo` with more TOML config; stopped (SIGTERM) at the end of the test."""
    servers: list[EchoServer] = []

    def start(config: str = "") -> EchoServer:
        server = EchoServer("voicegw", tmp_path, config=config)
        servers.append(server)
        server.wait_ready()
        return server

    yield start
    for server in servers:
        server.stop()
