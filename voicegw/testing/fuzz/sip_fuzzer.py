"""The SIP mutation fuzzer: mutated seeds (voicegw/testing/fuzz/sip_seeds.py, sip_mutate.py) at a server
over UDP, TCP and TLS while live echo calls run and an OPTIONS probe watches it from a thread.

Everything sent is drawn from one `random.Random(seed)`, so a seed replays a run's messages
exactly. When the server dies, the messages of the last few batches are replayed one by one
against a fresh server to find the one that kills it, which delta debugging then shrinks and
`save_case` keeps as a regression case (tests/sip/fuzz_cases/, replayed by
tests/fuzz/test_fuzz_cases.py); when none does alone, the batches are replayed in order and
shrunk as a sequence.
"""

from __future__ import annotations

import hashlib
import json
import random
import struct
import subprocess
import sys
import time
from collections import Counter, deque
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from voicegw.testing.fuzz.echo_probe import EchoReport, echo_ratio
from voicegw.testing.fuzz.minimise import ddmin, minimise_message
from voicegw.testing.fuzz.sip_mutate import mutate
from voicegw.testing.fuzz.sip_seeds import SEEDS, Endpoints, render
from voicegw.testing.fuzz.sip_transports import HOST, TCP_CONNECTIONS, StreamSender, Traffic, UdpSender
from voicegw.testing.fuzz.target import LivenessProbe, Target, Usage, exit_description
from voicegw.testing.paths import ROOT, TESTS

CASES_DIR = TESTS / "sip" / "fuzz_cases"
FUZZ_PORT = 5070
"""Our UDP port, written in every message: fixed (it is free in the fuzzer's own network
namespace) so that a seed replays the same bytes."""
PARTNERS = 16
PROBE_START_S = 15.0
SETTLE_S = 0.02
PACING = 20
"""Messages sent back to back at most: bursts of hundreds would overflow the server's socket
buffer and drop datagrams (the liveness probe's too) that a steady rate delivers."""
WINDOW_BATCHES = 4
"""Batches kept for the minimiser: a server behind on its queue dies of an older message."""
SILENT_PROBES = 3
"""OPTIONS probes (2 s each) unanswered in a row that end a run: the server is gone or hung."""


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
    """Messages between two looks at the server (its process, the OPTIONS probe's answers)."""
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
    connection: int = 0
    """Which of the stream sender's connections carried it (TCP, TLS)."""


@dataclass
class Crash:
    after: int
    """Messages sent when the death was seen."""
    exit: str
    candidates: int
    """Messages kept for the minimiser."""

    culprit: Sent | None = None
    """The message that alone kills a fresh server."""

    sequence: int | None = None
    """When no single message kills a fresh server: how many, replayed in order, still do."""

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
    slowest_probe_ms: int = 0
    echo: list[dict[str, float | None]] = field(default_factory=list)
    usage_before: Usage | None = None
    usage_after: Usage | None = None
    crash: Crash | None = None
    assertions: list[str] = field(default_factory=list)
    """pjsip's ``Assert failed`` log lines (survived with NDEBUG, but each one is a bug)."""

    clean_exit: bool | None = None
    """Whether the server (when started here) exited with status 0 on SIGTERM after the run."""

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
        return (
            self.crash is None
            and self.probes_answered == self.probes
            and not self.echo_problems()
            and not self.assertions
            and self.clean_exit is not False
        )

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
            "slowest_options_answer_ms": self.slowest_probe_ms,
            "echo_ratio": self.echo,
            "usage_before": asdict(self.usage_before) if self.usage_before else None,
            "usage_after": asdict(self.usage_after) if self.usage_after else None,
            "crash": crash,
            "assertion_failures": self.assertions,
            "clean_exit": self.clean_exit,
            "ok": self.ok,
        }


class EchoCalls:
    """Live echo calls, each an `echo_probe` process of its own."""

    def __init__(self, port: int, calls: int) -> None:
        self.processes = [
            subprocess.Popen(
                [sys.executable, "-m", "voicegw.testing.fuzz.echo_probe", str(port)],
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
        self.window: deque[Sent] = deque(maxlen=WINDOW_BATCHES * options.batch)

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
            self.report.assertions = self.target.assertion_failures()
            if self.target.owned and self.report.crash is None:
                self.report.clean_exit = self.target.stop()
            if self.report.crash is not None and self.options.minimise and self.target.owned:
                self._minimise(self.report.crash)
        finally:
            if self.target.owned:
                self.target.stop()
        return self.report

    def _measured_run(self) -> dict[str, tuple[float, float]]:
        with LivenessProbe(self.target.port) as probe:
            try:
                return self._phases(probe)
            finally:
                self.report.probes, self.report.probes_answered = probe.sent, probe.answered
                self.report.slowest_probe_ms = round(probe.slowest_s * 1000)

    def _phases(self, probe: LivenessProbe) -> dict[str, tuple[float, float]]:
        phase = self.options.phase_s
        start = time.monotonic()
        self.report.usage_before = self.target.usage(phase)
        marks = {"before": (start, time.monotonic())}
        fuzz_start = time.monotonic()
        self._fuzz(probe)
        marks["during"] = (fuzz_start, time.monotonic())
        after = time.monotonic()
        if self.report.crash is None:
            self.report.usage_after = self.target.usage(phase)
        marks["after"] = (after, time.monotonic())
        return marks

    def _fuzz(self, probe: LivenessProbe) -> None:
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
                connection = rng.randrange(TCP_CONNECTIONS)
                senders[transport].send(data, connection)
                self.window.append(Sent(index + 1, transport, data, name, mutations, connection))
                report.sent[transport] += 1
                if (index + 1) % options.batch == 0 or index + 1 == options.count:
                    for sender in senders.values():
                        sender.drain()
                    if not self._still_alive(index + 1, probe):
                        break
                if (index + 1) % PACING == 0:
                    time.sleep(max(0.0, start + (index + 1) / options.rate - time.monotonic()))
        finally:
            report.seconds = time.monotonic() - start
            for sender in senders.values():
                sender.close()

    def _still_alive(self, sent: int, probe: LivenessProbe) -> bool:
        """False once the server died (or went silent for good): the run stops there."""
        code = self.target.died()
        if code is None and probe.unanswered_in_a_row < SILENT_PROBES:
            return True
        code = code if code is not None else self.target.crashed_after_silence()
        if code is None and not self.target.owned:
            self.log(f"after {sent} messages the server stopped answering OPTIONS")
            description = "stopped answering"
        elif code is None:
            self.log(f"after {sent} messages the server stopped answering OPTIONS (still running)")
            description = "hung: running, but answers no OPTIONS"
        else:
            description = exit_description(code)
            self.log(f"CRASH after {sent} messages: the server died ({description})")
        self.report.crash = Crash(
            sent, description, len(self.window), log_tail=self.target.log_tail()[-1500:]
        )
        return False

    def _minimise(self, crash: Crash) -> None:
        culprit = next((sent for sent in self.window if self._kills(sent.transport, sent.data)), None)
        if culprit is None:
            self._minimise_sequence(crash)
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

    def _minimise_sequence(self, crash: Crash) -> None:
        window = list(self.window)
        self.log(f"no single message kills a fresh server alone; replaying the last {len(window)} in order")
        if not self._replay_kills(window):
            self.log(
                "they do not kill a fresh server either: the crash needs more of the run (replay the seed)"
            )
            return
        sequence = ddmin(window, self._replay_kills, budget=self.options.minimise_budget // 4)
        crash.sequence = len(sequence)
        crash.case = str(save_sequence(self.options.cases_dir, sequence))
        numbers = ", ".join(str(sent.number) for sent in sequence[:20])
        self.log(f"{len(sequence)} messages in order kill it (numbers {numbers}); saved as {crash.case}")

    def _replay_kills(self, sequence: Sequence[Sent]) -> bool:
        """True when `sequence`, sent in order at the run's rate, kills a fresh server."""
        self.target.restart()
        return self._killed_by(sequence)

    def _kills(self, transport: str, data: bytes) -> bool:
        """True when `data` alone kills the server, restarted only when the last test killed it
        (a restart per test would cost seconds each)."""
        if self.target.died() is not None or not self.target.alive(1.0):
            self.target.restart()
        return self._killed_by([Sent(0, transport, data, "", ())])

    def _killed_by(self, sequence: Sequence[Sent]) -> bool:
        senders = self._senders(Traffic())
        try:
            replay(sequence, senders, self.options.rate)
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


SEQUENCE_RECORD = struct.Struct("!cBI")
TRANSPORT_CODES = {"UDP": b"U", "TCP": b"T", "TLS": b"S"}


def save_sequence(directory: Path, sequence: Sequence[Sent]) -> Path:
    """Keep messages that kill only together as ``seq-<hash>.bin``: per message its transport,
    its connection and its length (`SEQUENCE_RECORD`), then its bytes."""
    data = b"".join(
        SEQUENCE_RECORD.pack(TRANSPORT_CODES[s.transport], s.connection, len(s.data)) + s.data
        for s in sequence
    )
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"seq-{hashlib.sha256(data).hexdigest()[:12]}.bin"
    path.write_bytes(data)
    return path


def load_case(path: Path) -> list[Sent]:
    """The messages of a saved case: one (``<transport>-<hash>.bin``) or a sequence (``seq-``)."""
    data = path.read_bytes()
    kind = path.stem.split("-", 1)[0].upper()
    if kind != "SEQ":
        return [Sent(1, kind, data, path.stem, ())]
    transports = {code: name for name, code in TRANSPORT_CODES.items()}
    sequence: list[Sent] = []
    position = 0
    while position < len(data):
        code, connection, length = SEQUENCE_RECORD.unpack_from(data, position)
        position += SEQUENCE_RECORD.size
        sequence.append(
            Sent(
                len(sequence) + 1,
                transports[code],
                data[position : position + length],
                path.stem,
                (),
                connection,
            )
        )
        position += length
    return sequence


def replay(sequence: Sequence[Sent], senders: Mapping[str, UdpSender | StreamSender], rate: float) -> None:
    """Send `sequence` in order through `senders`, at most `rate` messages per second."""
    for index, sent in enumerate(sequence, 1):
        senders[sent.transport].send(sent.data, sent.connection)
        if index % PACING == 0:
            time.sleep(PACING / rate)


def report_json(report: FuzzReport) -> str:
    return json.dumps(report.as_dict(), indent=2, default=str)
