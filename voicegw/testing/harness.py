"""Processes of an end-to-end test: the echo server under test, SIPp, the pjsua2 caller.

`EchoServer` starts `voicegw serve --echo` (or the pjsua2 baseline, to prove the tooling) on free
ports, waits until it answers OPTIONS, and stops it with SIGTERM, reporting whether it exited
cleanly. `run_sipp` and `run_caller` place calls against it.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from voicegw.testing.paths import ROOT, TESTS
from voicegw.testing.rtp_tools import RtpCapture

SIPP_DIR = ROOT / "scripts" / "sipp"
SIPP_PCAP_DIRS = (
    Path("/usr/share/sip-tester"),
    Path("/usr/share/sipp/pcap"),
    Path("/usr/share/doc/sip-tester/pcap"),
)
CALLER = TESTS / "e2e" / "tools" / "pjsua_caller.py"
BASELINE = ROOT / "scripts" / "baseline_echo_uas.py"
VOICEGW = [sys.executable, "-m", "voicegw"]
HOST = "127.0.0.1"
START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0
SIPP_MEDIA_OFFSET = 4  # scripts/sipp/*.xml put [media_port+4] in the SDP


def free_udp_port() -> int:
    """A port free for UDP and TCP right now (the server binds both for SIP)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((HOST, 0))
            port = int(udp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind((HOST, port))
                except OSError:
                    continue
            return port


def free_tcp_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def http_get(port: int, path: str) -> tuple[int, str]:
    """A GET of the server's HTTP endpoint on loopback: the status and the body (errors too)."""
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}{path}", timeout=5) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A throw-away certificate and key (PEM) for voicegw's TLS listener, made with openssl."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    return cert, key


def tls_config(directory: Path) -> tuple[str, int]:
    """voicegw's ``[sip]`` TOML for a TLS listener on a free port, and that port."""
    cert, key = self_signed_certificate(directory)
    port = free_tcp_port()
    return f"[sip]\ntls_port = {port}\ntls_cert = '{cert}'\ntls_key = '{key}'\n", port


def sipp_media_port(capture_port: int) -> int | None:
    """The -mp for SIPp so that [media_port+4] is `capture_port`, if SIPp can bind -mp and -mp+2."""
    base = capture_port - SIPP_MEDIA_OFFSET
    if base < 1024:
        return None
    for port in (base, base + 2):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.bind((HOST, port))
            except OSError:
                return None
    return base


def capture_for_sipp(attempts: int = 50) -> tuple[RtpCapture, int]:
    """A capture socket on the port SIPp's SDP announces ([media_port+4]), and the -mp that makes
    it so; the caller closes the capture."""
    for _ in range(attempts):
        capture = RtpCapture()
        media_port = sipp_media_port(capture.port)
        if media_port is not None:
            return capture, media_port
        capture.close()
    raise RuntimeError("no free port pair for SIPp's media sockets")


def options_ping(port: int, timeout: float = 0.5, *, retransmit: float | None = None) -> int | None:
    """Send one SIP OPTIONS over UDP; return the response's status code, or None.

    With `retransmit`, the request is sent again every that many seconds until `timeout`, as a
    SIP client does over UDP (RFC 3261 17.1.2.2): a datagram the kernel dropped is not a silence.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, 0))
        local = sock.getsockname()[1]
        tag = uuid.uuid4().hex[:10]
        request = (
            f"OPTIONS sip:echo@{HOST}:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {HOST}:{local};branch=z9hG4bK{tag};rport\r\n"
            f"From: <sip:probe@{HOST}:{local}>;tag={tag}\r\n"
            f"To: <sip:echo@{HOST}:{port}>\r\n"
            f"Call-ID: {tag}@{HOST}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        )
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            sock.sendto(request.encode(), (HOST, port))
            sock.settimeout(min(left, retransmit or left))
            try:
                data, _ = sock.recvfrom(65535)
                break
            except TimeoutError:
                continue
            except ConnectionRefusedError:
                return None
        else:
            return None
    parts = data.split(b" ", 2)
    return int(parts[1]) if len(parts) > 1 and parts[0] == b"SIP/2.0" and parts[1].isdigit() else None


@dataclass
class EchoServer:
    """A server process: `voicegw serve --echo` (or `--agent`), or the pjsua2 baseline (`kind="baseline"`)."""

    kind: str
    workdir: Path
    media_timeout: float = 0.0
    """Seconds of RTP silence before the server hangs up (0: the server's default)."""
    max_calls: int = 0
    """Concurrent calls the server must accept (0: the server's default)."""
    config: str = ""
    """More of voicegw's TOML configuration, whole tables (not with `media_timeout`/`max_calls`)."""
    agent: str | None = None
    """Serve this agent (``module:attribute``) instead of the echo; ``""``: neither flag, as a
    plain `voicegw serve` (the default agent)."""
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_udp_port)

    def __post_init__(self) -> None:
        self.log_path = self.workdir / f"{self.kind}-{self.port}.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            self.command(),
            cwd=ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **self.env},
        )
        self.returncode: int | None = None

    def command(self) -> list[str]:
        listen = f"{HOST}:{self.port}"
        if self.kind == "baseline":
            command = [
                sys.executable,
                str(BASELINE),
                "--listen",
                listen,
                "--media-timeout",
                str(self.media_timeout),
            ]
            return command + (["--max-calls", str(self.max_calls)] if self.max_calls else [])
        mode = ["--echo"] if self.agent is None else ["--agent", self.agent] if self.agent else []
        command = [*VOICEGW, "serve", *mode, "--listen", listen]
        if self.media_timeout or self.max_calls or self.config:
            command += ["--config", str(self._write_config())]
        return command

    def _write_config(self) -> Path:
        # voicegw's TOML configuration (voicegw/server/config.py): [sip] max_calls, [rtp] media_timeout.
        lines = []
        if self.max_calls:
            lines += ["[sip]", f"max_calls = {self.max_calls}"]
        if self.media_timeout:
            lines += ["[rtp]", f"media_timeout = {self.media_timeout}"]
        lines.append(self.config)
        path = self.workdir / f"voicegw-{self.port}.toml"
        path.write_text("\n".join(lines) + "\n")
        return path

    @property
    def uri(self) -> str:
        return f"sip:echo@{HOST}:{self.port}"

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.kind} exited with {self.proc.returncode} at start:\n{self.output()}"
                )
            if options_ping(self.port, 0.3) == 200:
                return
        raise TimeoutError(f"{self.kind} did not answer OPTIONS within {timeout} s:\n{self.output()}")

    def stop(self, timeout: float = STOP_TIMEOUT) -> bool:
        """SIGTERM, then wait; True if it exited by itself with status 0 (else it is killed)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
                self._log.close()
                return False
        self._log.close()
        self.returncode = self.proc.returncode
        return self.returncode == 0

    def output(self) -> str:
        self._flush()
        return self.log_path.read_text(errors="replace")[-4000:]

    def _flush(self) -> None:
        if not self._log.closed:
            self._log.flush()

    def log_events(self) -> list[dict[str, Any]]:
        """The server's JSON log lines (structlog for voicegw, the baseline's own).

        pjsua's C threads write to the same stream, so a JSON object may share its line with
        their output: every object on a line is decoded, whatever surrounds it.
        """
        self._flush()
        decoder = json.JSONDecoder()
        events = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            start = line.find("{")
            while start >= 0:
                try:
                    event, end = decoder.raw_decode(line, start)
                except ValueError:
                    start = line.find("{", start + 1)
                    continue
                if isinstance(event, dict):
                    events.append(event)
                start = line.find("{", end)
        return events

    def dtmf_digits(self) -> str:
        """Digits the server logged as DTMF events, in order.

        voicegw logs each digit as ``event: dtmf`` with ``digit`` (the call layer); its RTP layer
        also logs ``media_event`` with ``kind: dtmf``, used only when the former is absent.
        """
        events = self.log_events()
        digits = [str(e["digit"]) for e in events if e.get("event") == "dtmf" and "digit" in e]
        if digits:
            return "".join(digits)
        details = [str(e.get("detail", "")) for e in events if e.get("kind") == "dtmf"]
        return "".join(d.split("digit='", 1)[1][0] for d in details if "digit='" in d)

    def media_stats(self) -> list[dict[str, Any]]:
        """Per-call RTP counters logged when each call's media closed (event ``rtp_closed``)."""
        return [event for event in self.log_events() if event.get("event") == "rtp_closed"]


@dataclass(frozen=True)
class SippResult:
    returncode: int
    output: str
    workdir: Path

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def response_times_ms(self) -> list[float]:
        """INVITE -> 200 times of every call (SIPp's -trace_rtt file), in ms."""
        return sipp_response_times_ms(self.workdir)


def sipp_response_times_ms(workdir: Path) -> list[float]:
    """The response times in SIPp's -trace_rtt files under `workdir` (ms; SIPp's resolution is 1 ms)."""
    times = []
    for path in workdir.glob("*_rtt.csv"):
        lines = path.read_text().splitlines()
        if not lines:
            continue
        column = lines[0].split(";").index("response_time_ms")
        times += [float(line.split(";")[column]) for line in lines[1:] if line.count(";") >= column]
    return times


def sipp_command(
    scenario: str,
    server_port: int,
    *,
    media_port: int,
    keys: dict[str, str],
    calls: int = 1,
    pause_ms: int = 1000,
    rate: int = 10,
) -> list[str]:
    """The SIPp command line for one of scripts/sipp/*.xml."""
    if shutil.which("sipp") is None:
        raise RuntimeError("sipp is not installed (Debian package sip-tester; scripts/setup.sh installs it)")
    command = [
        "sipp", f"{HOST}:{server_port}", "-sf", scenario, "-i", HOST, "-p", str(free_udp_port()),
        "-mp", str(media_port), "-m", str(calls), "-l", str(calls), "-r", str(rate), "-d", str(pause_ms),
        "-nostdin", "-trace_err", "-trace_rtt", "-rtt_freq", "1", "-max_recv_loops", "10000",
    ]  # fmt: skip
    for key, value in keys.items():
        command += ["-key", key, value]
    return command


def run_sipp(
    scenario_name: str,
    server_port: int,
    *,
    workdir: Path,
    pcap: Path | None,
    media_port: int,
    keys: dict[str, str],
    timeout: float = 40.0,
    **options: int,
) -> SippResult:
    """Run a scenario from scripts/sipp/ in `workdir` (where it finds audio.pcap) and wait for it."""
    workdir.mkdir(parents=True, exist_ok=True)
    if pcap is not None:
        shutil.copy(pcap, workdir / "audio.pcap")
    scenario = shutil.copy(SIPP_DIR / scenario_name, workdir / scenario_name)
    command = sipp_command(str(scenario), server_port, media_port=media_port, keys=keys, **options)
    return _run_sipp(command, workdir, timeout)


def shipped_pcap_dir() -> Path | None:
    """Where the distribution put SIPp's own pcaps (g711a.pcap, dtmf_2833_*.pcap), if anywhere."""
    return next((d for d in SIPP_PCAP_DIRS if (d / "g711a.pcap").exists()), None)


def run_builtin_sipp(
    name: str, server_port: int, *, workdir: Path, media_port: int, calls: int = 1, timeout: float = 40.0
) -> SippResult:
    """Run one of SIPp's built-in scenarios (`-sn`); `pcap/` in `workdir` is SIPp's shipped pcaps."""
    workdir.mkdir(parents=True, exist_ok=True)
    pcaps = shipped_pcap_dir()
    if pcaps is not None:
        (workdir / "pcap").symlink_to(pcaps)
    command = sipp_command("", server_port, media_port=media_port, keys={}, calls=calls)
    command[command.index("-sf") : command.index("-sf") + 2] = ["-sn", name]
    return _run_sipp(command, workdir, timeout)


def _run_sipp(command: list[str], workdir: Path, timeout: float) -> SippResult:
    command = [*command, "-timeout", f"{int(timeout)}s", "-timeout_error"]
    proc = subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=timeout + 10)
    errors = "".join(p.read_text(errors="replace")[-2000:] for p in workdir.glob("*_errors.log"))
    return SippResult(proc.returncode, (proc.stdout[-3000:] + proc.stderr[-3000:] + errors), workdir)


async def run_process(
    *command: str, env: dict[str, str] | None = None, time_limit: float = 60.0
) -> tuple[int, str, str]:
    """Run a command from the repository root without blocking the loop: status, stdout, stderr.

    `env` adds to this process's environment; past `time_limit` seconds the process is killed.
    """
    process = await asyncio.create_subprocess_exec(
        *command,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), time_limit)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, out.decode(errors="replace"), err.decode(errors="replace")


def run_caller(uri: str, *args: str, timeout: float = 45.0) -> dict[str, Any]:
    """Run the pjsua2 caller (its own process: pjsua2 is one library per process); its JSON report."""
    proc = subprocess.run(
        [sys.executable, str(CALLER), uri, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"pjsua2 caller failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    report: dict[str, Any] = json.loads(lines[-1])
    return report


@dataclass
class SippUas:
    """SIPp's built-in ``uas`` scenario in the background: answers one call and takes its BYE."""

    workdir: Path
    port: int = field(default_factory=free_udp_port)

    def __post_init__(self) -> None:
        if shutil.which("sipp") is None:
            raise RuntimeError(
                "sipp is not installed (Debian package sip-tester; scripts/setup.sh installs it)"
            )
        from voicegw.testing.sipp import free_media_ports

        self.workdir.mkdir(parents=True, exist_ok=True)
        command = [
            "sipp", "-sn", "uas", "-i", HOST, "-p", str(self.port), "-mp", str(free_media_ports()),
            "-m", "1", "-nostdin", "-trace_err", "-timeout", "40s", "-timeout_error",
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            command, cwd=self.workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )

    def uri(self, user: str) -> str:
        return f"sip:{user}@{HOST}:{self.port}"

    def wait(self, timeout: float) -> tuple[int | None, str]:
        """SIPp's exit status (None: still running after `timeout`, then killed) and its output."""
        try:
            output, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            output, _ = self.proc.communicate()
            return None, output[-3000:]
        return self.proc.returncode, output[-3000:]


def openai_agent_server(workdir: Path, agent: str, base_url: str, *, config: str = "") -> EchoServer:
    """`voicegw serve --agent AGENT` on the OpenAI Realtime protocol at `base_url` (the local test server)."""
    from voicegw.testing.fake_realtime import API_KEY

    return EchoServer(
        "voicegw",
        workdir,
        agent=agent,
        config=config,
        env={"OPENAI_API_KEY": API_KEY, "OPENAI_BASE_URL": base_url},
    )
