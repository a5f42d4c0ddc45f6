"""The server under fuzz: a fresh `voicegw serve --echo` (voicegw/testing/harness.py's `EchoServer`)
or one already running at an address, its liveness, CPU and memory.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from voicegw.testing.harness import EchoServer, free_udp_port, options_ping, tls_config
from voicegw.testing.load import cpu_seconds

PAGE = os.sysconf("SC_PAGE_SIZE")
ASSERT_FAILED = b"Assert failed"
SERVER_CONFIG = "[server]\ndrain_timeout = 2"
"""Calls the fuzz got answered are never ACKed and live on until pjsip gives up on them (32 s):
a short drain lets SIGTERM end them, so the server must still exit cleanly within the harness's
10 s after a run."""
DEATH_WAIT_S = 2.0
RETRANSMIT_S = 0.5
"""The probe resends its OPTIONS as a SIP client does over UDP (T1): the fuzz's 60 KB datagrams
can fill the server's socket buffer for a moment, and the kernel then drops what arrives."""
"""How long a server that stopped answering gets to show that it died (pjsip aborts at once)."""


def rss_bytes(pid: int) -> int:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE


def exit_description(returncode: int) -> str:
    """``exit 3`` or ``signal SIGABRT``, from a Popen return code."""
    if returncode < 0:
        return f"signal {signal.Signals(-returncode).name}"
    return f"exit {returncode}"


class LivenessProbe:
    """An OPTIONS to the server every `interval` seconds from a thread of its own: a slow answer
    measures the server without slowing the sender down."""

    def __init__(self, port: int, interval: float = 0.25, timeout: float = 2.0) -> None:
        self.port, self.interval, self.timeout = port, interval, timeout
        self.sent = 0
        self.answered = 0
        self.unanswered_in_a_row = 0
        self.slowest_s = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> LivenessProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            began = time.monotonic()
            answered = options_ping(self.port, self.timeout, retransmit=RETRANSMIT_S) is not None
            self.sent += 1
            if answered:
                self.answered += 1
                self.unanswered_in_a_row = 0
                self.slowest_s = max(self.slowest_s, time.monotonic() - began)
            else:
                self.unanswered_in_a_row += 1


@dataclass
class Usage:
    cpu_percent: float
    rss_mb: float


class Target:
    """A server to fuzz: started here (`start`), or found at `port` (then it cannot be restarted)."""

    def __init__(
        self,
        workdir: Path,
        *,
        port: int = 0,
        tls: bool = False,
        external: bool = False,
        pid: int | None = None,
        config: str = "",
    ) -> None:
        """`external`: the server at `port` runs already (its process is `pid`, if known);
        `config`: more TOML for a server started here."""
        self.workdir = workdir
        self.config = config
        self.external = external
        self.tls = tls
        self.tls_port: int | None = None
        self.server: EchoServer | None = None
        self.port = port
        self._pid = pid

    @property
    def owned(self) -> bool:
        """True when this process started the server (and so may restart it)."""
        return not self.external

    @property
    def pid(self) -> int | None:
        return self.server.proc.pid if self.server else self._pid

    def start(self) -> None:
        """A fresh server on `port` (a free one if 0), answering OPTIONS."""
        config = f"{SERVER_CONFIG}\n{self.config}"
        if self.tls:
            tls, self.tls_port = tls_config(self.workdir)
            config += f"\n{tls}"
        self.server = EchoServer("voicegw", self.workdir, config=config, port=self.port or free_udp_port())
        self.server.wait_ready()
        self.port = self.server.port

    def restart(self) -> None:
        self.stop()
        self.start()

    def stop(self) -> bool:
        """SIGTERM the server we started; True if it exited by itself with status 0."""
        server, self.server = self.server, None
        return server.stop() if server is not None else True

    def died(self) -> int | None:
        """The server's return code if the process has ended (None while it runs or if not ours)."""
        return self.server.proc.poll() if self.server else None

    def alive(self, timeout: float = 1.0) -> bool:
        """True when the server answers an OPTIONS within `timeout` (resent as over UDP)."""
        return options_ping(self.port, timeout, retransmit=RETRANSMIT_S) is not None

    def crashed_after_silence(self) -> int | None:
        """The return code of a server that stopped answering and then turned out dead."""
        if self.server is None:
            return None
        deadline = time.monotonic() + DEATH_WAIT_S
        while time.monotonic() < deadline:
            if (code := self.died()) is not None:
                return code
            time.sleep(0.05)
        return None

    def usage(self, window: float = 2.0) -> Usage | None:
        """CPU (100 = one core) over the next `window` seconds, and RSS; None without a process
        (the window is waited all the same: it is a measuring phase of the run)."""
        pid = self.pid
        before = cpu_seconds(pid) if pid is not None else 0.0
        time.sleep(window)
        if pid is None:
            return None
        return Usage(100.0 * (cpu_seconds(pid) - before) / window, rss_bytes(pid) / 1e6)

    def assertion_failures(self) -> list[str]:
        """pjsip's ``Assert failed`` lines in the server's log: with NDEBUG (docs/security.md) a
        failed assertion is logged and survived, so each one is a finding of its own."""
        if self.server is None or not self.server.log_path.exists():
            return []
        with self.server.log_path.open("rb") as log:
            return [line.decode(errors="replace")[:300] for line in log if ASSERT_FAILED in line]

    def log_tail(self) -> str:
        return self.server.output() if self.server else ""
