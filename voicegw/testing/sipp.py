"""Run one of tests/sip/scenarios/*.xml with SIPp against a local voicegw and read what it saw."""

from __future__ import annotations

import asyncio
import random
import re
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator
from contextlib import ExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from voicegw.testing.harness import free_udp_port
from voicegw.testing.paths import TESTS

Keys = dict[str, str] | None
SCENARIOS = TESTS / "sip" / "scenarios"
HOST = "127.0.0.1"


@dataclass(frozen=True)
class SippRun:
    returncode: int
    output: str
    messages: str
    """SIPp's -trace_msg log: every message sent and received."""

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def received_sdp_ports(self) -> list[int]:
        """The m=audio ports of every SDP SIPp received."""
        received = self.messages.split("received")[1:]
        return [
            int(port) for chunk in received for port in re.findall(r"m=audio (\d+)", chunk.split("sent")[0])
        ]


def free_media_ports(span: tuple[int, int] | None = None) -> int:
    """A base port with base..base+3 free: SIPp binds audio and video RTP/RTCP from -mp.

    `span`: the base is drawn within it (default: any free port).
    """
    for _ in range(50):
        base = (random.randrange(*span) if span else free_udp_port()) & ~1
        with ExitStack() as stack:
            try:
                for offset in range(4):
                    sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
                    sock.bind((HOST, base + offset))
            except OSError:
                continue
            return base
    raise RuntimeError("no four consecutive free UDP ports")


def scenario_command(
    name: str,
    server_port: int | None,
    workdir: Path,
    *,
    timeout: float,
    keys: dict[str, str] | None = None,
    port: int | None = None,
    pause_ms: int = 0,
    media_port: int | None = None,
) -> list[str]:
    """The SIPp command line for one call of scenario `name`, run in `workdir`.

    A UAC scenario calls voicegw at `server_port`; a UAS scenario (no `server_port`) waits at `port`.
    `media_port` is SIPp's -mp (default: four free ports).
    """
    if shutil.which("sipp") is None:
        raise RuntimeError("sipp is not installed (Debian package sip-tester)")
    workdir.mkdir(parents=True, exist_ok=True)
    scenario = shutil.copy(SCENARIOS / name, workdir / name)
    target = [f"{HOST}:{server_port}"] if server_port else []
    command = [
        "sipp", *target, "-sf", str(scenario), "-i", HOST, "-p", str(port or free_udp_port()),
        "-mp", str(media_port or free_media_ports()), "-m", "1", "-nostdin", "-trace_msg", "-trace_err",
        "-timeout", f"{int(timeout)}s", "-timeout_error", "-d", str(pause_ms),
    ]  # fmt: skip
    for key, value in (keys or {}).items():
        command += ["-key", key, value]
    return command


def collect(returncode: int, output: str, workdir: Path) -> SippRun:
    messages = "".join(p.read_text(errors="replace") for p in workdir.glob("*_messages.log"))
    errors = "".join(p.read_text(errors="replace")[-2000:] for p in workdir.glob("*_errors.log"))
    return SippRun(returncode, output[-4000:] + errors, messages)


def run_scenario(
    name: str, server_port: int, workdir: Path, *, time_limit: float = 20.0, keys: Keys = None
) -> SippRun:
    """One call of scenario `name`; SIPp's own timeout turns a missing message into a failure."""
    command = scenario_command(name, server_port, workdir, timeout=time_limit, keys=keys)
    proc = subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=time_limit + 10)
    return collect(proc.returncode, proc.stdout + proc.stderr, workdir)


async def run_scenario_async(
    name: str, server_port: int, workdir: Path, *, time_limit: float = 20.0, keys: Keys = None
) -> SippRun:
    """`run_scenario` without blocking the event loop (for a voicegw running in this process)."""
    command = scenario_command(name, server_port, workdir, timeout=time_limit, keys=keys)
    return await _run_async(command, workdir, time_limit)


async def _run_async(command: list[str], workdir: Path, time_limit: float) -> SippRun:
    proc = await asyncio.create_subprocess_exec(
        *command, cwd=workdir, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        output, _ = await asyncio.wait_for(proc.communicate(), time_limit + 10)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return collect(proc.returncode, output.decode(errors="replace"), workdir)


@asynccontextmanager
async def sipp_uas(
    name: str,
    workdir: Path,
    *,
    time_limit: float = 20.0,
    keys: Keys = None,
    pause_ms: int = 0,
    media_port: int | None = None,
) -> AsyncIterator[tuple[int, asyncio.Task[SippRun]]]:
    """SIPp playing the called party (or a registrar): its SIP port, and its run as a task.

    The task ends when the scenario does; leaving the block stops SIPp if it is still running.
    """
    port = free_udp_port()
    command = scenario_command(
        name,
        None,
        workdir,
        timeout=time_limit,
        keys=keys,
        port=port,
        pause_ms=pause_ms,
        media_port=media_port,
    )
    run = asyncio.create_task(_run_async(command, workdir, time_limit))
    try:
        yield port, run
    finally:
        if not run.done():
            run.cancel()
        await asyncio.gather(run, return_exceptions=True)
