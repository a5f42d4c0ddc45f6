"""The SIP mutation fuzzer: mutated seeds (tests/fuzz/sip_seeds.py, sip_mutate.py) at a server
over UDP, TCP and TLS while live echo calls run, with a liveness probe between batches.

Everything sent is drawn from one `random.Random(seed)`, so a seed replays a run's messages
exactly. When the server dies, the messages since its last answered probe are replayed one by
one against a fresh server to find the one that kills it, which delta debugging then shrinks
and `save_case` keeps as a regression case (tests/sip/fuzz_cases/, replayed by
tests/fuzz/test_fuzz_cases.py).
"""

from __future__ import annotations

import hashlib
import json
import random
import subprocess
import sys
import time
from collections import Counter, deque
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from tests.fuzz.echo_probe import EchoReport, echo_ratio
from tests.fuzz.minimise import minimise_message
from tests.fuzz.sip_mutate import mutate
from tests.fuzz.sip_seeds import SEEDS, Endpoints, render
from tests.fuzz.sip_transports import HOST, TCP_CONNECTIONS, StreamSender, Traffic, UdpSender
from tests.fuzz.target import Target, Usage, exit_description

ROOT = Path(__file__).resolve().parents[2]
CASES_DIR = ROOT / "tests" / "sip" / "fuzz_cases"
FUZZ_PORT = 5070
"""Our UDP port, written in every message: fixed (it is free in the fuzzer's own network
namespace) so that a seed replays the same bytes."""
PARTNERS = 16
PROBE_START_S = 15.0
SETTLE_S = 0.02


@dataclass(frozen=True)
class FuzzOptions:
    seed: int
    count: int
    rate: float = 2500.0
    transports: tuple[str, ...] = ("UDP", "TCP")
    calls: int = 1
    phase_s: float = 4.0
    """Length of the echo measurements before and after the fuzzing."""
    batch: int = 500
    """Messages between two liveness probes."""
    minimise: bool = True
    minimise_budget: int = 300
    cases_dir: Path = CASES_DIR


@dataclass(frozen=True)
class Sent:
    number: int
    """Which message of the run this is (from 1)."""

    transport: str
    data: bytes
    seed: str
    mutations: tuple[str, ...]


@dataclass
class Crash:
    after: int
    """Messages sent when the death was seen."""
    exit: str
    candidates: int
    culprit: Sent | None = None
    """The message that alone kills a fresh server."""

    minimal: Sent | None = None
    case: str | None = None
    log_tail: str = ""


@dataclass
class FuzzReport:
    seed: int
    sent: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    traffic: Traffic = field(default_factory=Traffic)
    probes: int = 0
    probes_answered: int = 0
    echo: list[dict[str, float | None]] = field(default_factory=list)
    usage_before: Usage | None = None
    usage_after: Usage | None = None
    crash: Crash | None = None

    @property
    def rate(self) -> float:
        return sum(self.sent.values()) / self.seconds if self.seconds else 0.0

    def echo_problems(self, margin: float = 0.1) -> list[str]:
        """Calls whose echo during or after the fuzzing fell more than `margin` below before."""
        problems = []
        for index, ratios in enumerate(self.echo):
            before = ratios.get("before")
            for phase in ("during", "after"):
                value = ratios.get(phase)
                if before is None or value is None or value < before - margin:
                    problems.append(f"call {index}: echo {phase} {value} vs before {before}")
        return problems

    @property
    def ok(self) -> bool:
        return self.crash is None and self.probes_answered == self.probes and not self.echo_problems()

    def as_dict(self) -> dict[str, Any]:
        crash = None
        if self.crash is not None:
            crash = {k: v for k, v in asdict(self.crash).items() if k not in ("culprit", "minimal")}
            if (culprit := self.crash.culprit) is not None:
                crash["culprit"] = {
                    "number": culprit.number, "transport": culprit.transport, "seed": culprit.seed,
                    "mutations": culprit.mutations, "bytes": len(culprit.data),
                }  # fmt: skip
            if self.crash.minimal is not None:
                crash["minimal_bytes"] = len(self.crash.minimal.data)
        return {
            "seed": self.seed,
            "sent": dict(self.sent),
            "total_sent": sum(self.sent.values()),
            "seconds": round(self.seconds, 1),
            "rate_per_s": round(self.rate),
            "responses": {str(k): v for k, v in sorted(self.traffic.responses.items())},
            "requests_from_server": dict(self.traffic.requests),
            "connections_closed": self.traffic.connections_closed,
            "options_probes": self.probes,
            "options_answered": self.probes_answered,
            "echo_ratio": self.echo,
            "usage_before": asdict(self.usage_before) if self.usage_before else None,
            "usage_after": asdict(self.usage_after) if self.usage_after else None,
            "crash": crash,
            "ok": self.ok,
        }


class EchoCalls:
    """Live echo calls, each an `echo_probe` process of its own."""

    def __init__(self, port: int, calls: int) -> None:
        self.processes = [
            subprocess.Popen(
                [sys.executable, "-m", "tests.fuzz.echo_probe", str(port)],
                cwd=ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(calls)
        ]
        for process in self.processes:
            assert process.stdout is not None
            line = process.stdout.readline()
            if not line.startswith('{"ready"'):
                self.close()
                raise RuntimeError(f"an echo call did not start (probe said {line!r})")

    def finish(self) -> list[EchoReport | None]:
        """Hang up every call; each one's report (None for a probe that failed)."""
        reports: list[EchoReport | None] = []
        for process in self.processes:
            try:
                out, _ = process.communicate("stop\n", timeout=PROBE_START_S)
                reports.append(EchoReport.from_json(out.strip().splitlines()[-1]))
            except (subprocess.TimeoutExpired, IndexError, ValueError):
                reports.append(None)
        self.close()
        return reports

    def close(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait()


class SipFuzzer:
    """One run: mutated messages at `target` while `options.calls` echo calls go on."""

    def __init__(self, target: Target, options: FuzzOptions, log: Any = print) -> None:
        self.target = target
        self.options = options
        self.log = log
        self.report = FuzzReport(options.seed)
        self.rng = random.Random(options.seed)
        self.window: deque[Sent] = deque(maxlen=2 * options.batch)

    def _senders(self, traffic: Traffic) -> dict[str, UdpSender | StreamSender]:
        server = (HOST, self.target.port)
        senders: dict[str, UdpSender | StreamSender] = {}
        for transport in self.options.transports:
            if transport == "UDP":
                senders[transport] = UdpSender(server, traffic, FUZZ_PORT)
            elif transport == "TCP":
                senders[transport] = StreamSender(server, traffic)
            elif self.target.tls_port is not None:
                senders[transport] = StreamSender((HOST, self.target.tls_port), traffic, tls=True)
        return senders

    def _endpoints(self, transport: str) -> Endpoints:
        port = self.target.tls_port if transport == "TLS" and self.target.tls_port else self.target.port
        return Endpoints(HOST, port, HOST, FUZZ_PORT, transport)

    def run(self) -> FuzzReport:
        if self.target.owned:
            self.target.start()
        try:
            calls = EchoCalls(self.target.port, self.options.calls) if self.options.calls else None
            try:
                marks = self._measured_run()
            finally:
                reports = calls.finish() if calls else []
            self.report.echo = [
                {phase: (echo_ratio(r, *span) if r else None) for phase, span in marks.items()}
                for r in reports
            ]
            if self.report.crash is not None and self.options.minimise and self.target.owned:
                self._minimise(self.report.crash)
        finally:
            if self.target.owned:
                self.target.stop()
        return self.report

    def _measured_run(self) -> dict[str, tuple[float, float]]:
        phase = self.options.phase_s
        start = time.monotonic()
        self.report.usage_before = self.target.usage(phase)
        marks = {"before": (start, time.monotonic())}
        fuzz_start = time.monotonic()
        self._fuzz()
        marks["during"] = (fuzz_start, time.monotonic())
        after = time.monotonic()
        if self.report.crash is None:
            self.report.usage_after = self.target.usage(phase)
        marks["after"] = (after, time.monotonic())
        return marks

    def _fuzz(self) -> None:
        options, rng, report = self.options, self.rng, self.report
        senders = self._senders(report.traffic)
        partners = {
            t: [render(rng.choice(tuple(SEEDS)), self._endpoints(t), rng) for _ in range(PARTNERS)]
            for t in senders
        }
        transports, names = tuple(senders), tuple(SEEDS)
        self.log(f"fuzzing {options.count} messages over {'+'.join(transports)} at {options.rate:.0f}/s")
        start = time.monotonic()
        try:
            for index in range(options.count):
                transport, name = rng.choice(transports), rng.choice(names)
                data, mutations = mutate(
                    render(name, self._endpoints(transport), rng), partners[transport], rng
                )
                senders[transport].send(data, rng.randrange(TCP_CONNECTIONS))
                self.window.append(Sent(index + 1, transport, data, name, mutations))
                report.sent[transport] += 1
                if (index + 1) % options.batch == 0 or index + 1 == options.count:
                    for sender in senders.values():
                        sender.drain()
                    if not self._still_alive(index + 1):
                        break
                    time.sleep(max(0.0, start + (index + 1) / options.rate - time.monotonic()))
        finally:
            report.seconds = time.monotonic() - start
            for sender in senders.values():
                sender.close()

    def _still_alive(self, sent: int) -> bool:
        report = self.report
        report.probes += 1
        code = self.target.died()
        if code is None and self.target.alive(1.0):
            report.probes_answered += 1
            return True
        code = code if code is not None else self.target.crashed_after_silence()
        if code is None:
            self.log(f"after {sent} messages the server did not answer OPTIONS (still running)")
            return True
        report.crash = Crash(
            sent, exit_description(code), len(self.window), log_tail=self.target.log_tail()[-1500:]
        )
        self.log(f"CRASH after {sent} messages: the server died ({report.crash.exit})")
        return False

    def _minimise(self, crash: Crash) -> None:
        culprit = next((sent for sent in self.window if self._kills(sent.transport, sent.data)), None)
        if culprit is None:
            self.log(f"no single message of the last {len(self.window)} kills a fresh server alone")
            return
        crash.culprit = culprit
        self.log(
            f"message {culprit.number} ({culprit.seed} {'+'.join(culprit.mutations)},"
            f" {len(culprit.data)} bytes) kills a fresh server alone; minimising"
        )
        data = minimise_message(
            culprit.data, lambda d: self._kills(culprit.transport, d), budget=self.options.minimise_budget
        )
        crash.minimal = replace(culprit, data=data)
        crash.case = str(save_case(self.options.cases_dir, culprit.transport, data))
        self.log(f"minimal case: {len(data)} bytes, saved as {crash.case}")

    def _kills(self, transport: str, data: bytes) -> bool:
        """True when `data` alone kills a fresh server (restarted as needed; ours only)."""
        if self.target.died() is not None or not self.target.alive(1.0):
            self.target.restart()
        traffic = Traffic()
        senders = self._senders(traffic)
        try:
            senders[transport].send(data)
            time.sleep(SETTLE_S)
            if self.target.died() is None and self.target.alive(1.0):
                return False
            return self.target.crashed_after_silence() is not None
        finally:
            for sender in senders.values():
                sender.close()


def save_case(directory: Path, transport: str, data: bytes) -> Path:
    """Keep a crashing message as ``<transport>-<hash>.bin`` (the replay test sends it that way)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{transport.lower()}-{hashlib.sha256(data).hexdigest()[:12]}.bin"
    path.write_bytes(data)
    return path


def report_json(report: FuzzReport) -> str:
    return json.dumps(report.as_dict(), indent=2, default=str)
