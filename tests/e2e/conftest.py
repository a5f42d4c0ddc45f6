"""Fixtures of the end-to-end tests: test speech, a running echo server, an RTP capture socket.

The server under test is `voicegw serve --echo`. `VOICEGW_E2E_TARGET=baseline` runs the same tests
against scripts/baseline_echo_uas.py (pjsua2's own media) instead: that is how the tooling itself
was proven, independently of voicegw.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from voicegw.testing.harness import EchoServer, capture_for_sipp
from voicegw.testing.media import OPUS_RATE, Pcm, read_wav, synthesize
from voicegw.testing.rtp_tools import RtpCapture

TARGET = os.environ.get("VOICEGW_E2E_TARGET", "voicegw")


@pytest.fixture(scope="session")
def e2e_target() -> str:
    return TARGET


@pytest.fixture(scope="session")
def speech_8k(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Pcm]:
    """A spoken sentence (espeak-ng), 8 kHz mono s16 WAV, and its samples."""
    path = synthesize(tmp_path_factory.mktemp("speech") / "speech_8k.wav", rate=8000)
    return path, read_wav(path)[0]


@pytest.fixture(scope="session")
def speech_48k(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Pcm]:
    path = synthesize(tmp_path_factory.mktemp("speech") / "speech_48k.wav", rate=OPUS_RATE)
    return path, read_wav(path)[0]


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., EchoServer]]:
    """Start echo servers (answering OPTIONS before returning); each must exit cleanly on SIGTERM."""
    servers: list[EchoServer] = []

    def start(*, media_timeout: float = 0.0, config: str = "") -> EchoServer:
        server = EchoServer(TARGET, tmp_path, media_timeout=media_timeout, config=config)
        servers.append(server)
        server.wait_ready()
        return server

    yield start
    unclean = [server for server in servers if not server.stop()]
    if unclean:
        pytest.fail(
            "echo server did not exit cleanly on SIGTERM: "
            + "; ".join(f"{s.kind} rc={s.proc.returncode}\n{s.output()}" for s in unclean)
        )


@pytest.fixture
def echo_server(start_server: Callable[..., EchoServer]) -> EchoServer:
    return start_server()


@pytest.fixture
def rtp_capture() -> Iterator[tuple[RtpCapture, int]]:
    """A capture socket on the port SIPp's SDP announces, and the -mp that makes it so."""
    capture, media_port = capture_for_sipp()
    with capture:
        yield capture, media_port
