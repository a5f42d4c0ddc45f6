"""Capacity benchmark: N concurrent SIPp calls against `voicegw serve`, echo or agent, and a baseline.

Echo mode (`--mode echo`): for each target (voicegw `serve --echo`; the pjsua2 baseline echo UAS of
scripts/baseline_echo_uas.py, whose media is pjsua2's own C conference bridge) and each N, SIPp
(scripts/sipp/uac_echo_pcap.xml with [auto_media_port+4]: every call replays a PCMU pcap of speech
from its own port) holds N calls for D seconds. Then voicegw's CPU per call as a ratio to the
baseline's of the same run.

Agent mode (`--mode agent`): `voicegw serve --agent voicegw.testing.agents:assistant` on the OpenAI
Realtime model, pointed at scripts/realtime_speaker.py (a local server of the OpenAI protocol in
its own process, answering every call with 3 s of audio every few seconds and cutting its answer
off when the caller talks over it). The callers' pcap is speech bursts between silences, so
barge-ins happen. Figures are voicegw's alone: the speaker's and SIPp's CPU are not counted.

Probes, over the window where all N calls are up:
  - CPU % of the server's whole process tree (utime + stime from /proc, summed over the server
    and its child processes, so calls in worker processes count; 100 % = one core), split between
    the server process (SIP signalling; the calls too with `--workers 0`) and its call workers; RSS;
  - calls that echoed (agent mode: that hear the agent): non-silent audio at the caller's socket;
  - outbound packet interval p50/p99/max and interval error p99 (|interval - 20 ms|), from kernel
    receive timestamps (SO_TIMESTAMPNS) on the sockets of a sample of calls; and the error p99
    again without the two intervals around each talkspurt's first packet (RTP marker bit: voicegw
    sends it on arrival, between two ticks, so those two intervals add up to 20 ms);
  - packets lost / late / concealed inside the server (its per-call `rtp_closed` counters);
  - call setup time INVITE -> 200 p50/p95 (SIPp's -trace_rtt);
  - agent mode: barge-ins (the speaker's VAD cut an answer off; voicegw's
    voicegw_barge_ins_total; truncations the speaker received), and the gateway-added latency
    both ways, p50/p95 from voicegw's voicegw_gateway_latency_seconds histograms on /metrics.

    .venv/bin/python scripts/bench_capacity.py --calls 200,500 --duration 60
    .venv/bin/python scripts/bench_capacity.py --mode agent --calls 100,200 --duration 60
    .venv/bin/python scripts/bench_capacity.py --mode both --calls 200 --markdown
    .venv/bin/python scripts/bench_capacity.py --search --duration 20   # largest N within budget
    .venv/bin/python scripts/bench_capacity.py --target voicegw --calls 100 --workers 0  # in-process
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import select
import shlex
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts.bench_agent import SPEAKER_API_KEY, Speaker, bursts_pcap, histogram_quantile, scrape  # noqa: E402
from voicegw.testing.harness import (  # noqa: E402
    HOST,
    EchoServer,
    free_tcp_port,
    sipp_command,
    sipp_response_times_ms,
)
from voicegw.testing.load import (  # noqa: E402
    cpu_seconds,
    scenario_for_load,
    sipp_counts,
    speech_pcap,
    tree_cpu_seconds,
    tree_rss_mb,
)

FRAME_MS = 20.0
PACKETS_PER_S = 1000.0 / FRAME_MS
EXPECTED_PACKET_SHARE = 0.9
SAMPLED_CALLS = 10
SETTLE_S = 2.0  # skip this much after the last call is up and before the first one ends
SINK_RCVBUF = 4096  # unsampled calls' audio only has to land somewhere: the kernel drops the rest
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
MAX_INTERVAL_ERROR_MS = 2.0
PORT_RANGE = (32000, 60000)  # above voicegw's default RTP range (20000-30000)
SILENT_ULAW = 0xFF
AUDIBLE_BYTES = 20
"""A PCMU payload with this many bytes off silence carries sound (speech, the agent's tone)."""
AUDIO_CHECK_S = 0.5
"""Looks at each caller's socket, 0.3 s apart, before a call counts as hearing nothing."""
AGENT = "voicegw.testing.agents:assistant"


@dataclass
class Result:
    mode: str
    target: str
    calls: int
    duration_s: float
    event_loop: str = ""
    calls_ok: int = 0
    calls_failed: int = 0
    calls_audible: int = 0
    """Calls whose caller heard sound from the server: its echo, or the agent."""
    cpu_percent: float = 0.0
    cpu_per_call: float = 0.0
    cpu_main_percent: float = 0.0
    """Of `cpu_percent`: the server process (SIP signalling, and the calls when workers = 0)."""
    cpu_workers_percent: float = 0.0
    """Of `cpu_percent`: its call workers (media, sessions)."""
    cpu_us_per_packet: float = 0.0
    """CPU per RTP packet in or out: comparable even when a starved server sent fewer packets."""
    rss_mb: float = 0.0
    packets_in_per_s: float = 0.0
    packets_out_per_s: float = 0.0
    interval_p50_ms: float = 0.0
    interval_p99_ms: float = 0.0
    interval_max_ms: float = 0.0
    interval_error_p99_ms: float = 0.0
    interval_error_p99_steady_ms: float = 0.0
    """The same without the two intervals around each talkspurt's first (marked) packet."""
    lost: int = 0
    late: int = 0
    concealed: int = 0
    bad_packets: int = 0
    setup_p50_ms: float = 0.0
    setup_p95_ms: float = 0.0
    barge_ins_caller: int = 0
    """Agent mode: answers the speaker cut off because the caller talked over them."""
    barge_ins_voicegw: int = 0
    """Agent mode: barge-ins voicegw handled (flush, cancel, truncate), from its metrics."""
    truncations: int = 0
    """Agent mode: truncations the speaker received."""
    latency_in_p50_ms: float = 0.0
    latency_in_p95_ms: float = 0.0
    latency_out_p50_ms: float = 0.0
    latency_out_p95_ms: float = 0.0
    media_clock: dict[str, object] = field(default_factory=dict)
    """voicegw's media clock statistics from its `stopped` log line (tick lateness, skipped ticks)."""
    notes: list[str] = field(default_factory=list)

    @property
    def within_budget(self) -> bool:
        return (
            self.calls_failed == 0
            and self.calls_ok == self.calls
            and self.calls_audible == self.calls
            and self.interval_error_p99_ms <= MAX_INTERVAL_ERROR_MS
            and self.lost == 0
            # Media really flowed both ways (a server that hears nothing also loses nothing).
            and self.packets_in_per_s >= EXPECTED_PACKET_SHARE * PACKETS_PER_S * self.calls
            and self.packets_out_per_s >= EXPECTED_PACKET_SHARE * PACKETS_PER_S * self.calls
        )


def audible(payload: bytes) -> bool:
    """True when a PCMU RTP packet's payload is not silence."""
    return sum(1 for b in payload[12:] if (b & 0x7F) < 0x70) >= AUDIBLE_BYTES


class CallerSinks:
    """One UDP socket per call's SIPp media port; the first `sampled` are read with kernel timestamps."""

    def __init__(self, calls: int, sampled: int) -> None:
        self.base, self.socks = self._bind(calls)
        self.sampled = self.socks[:sampled]
        self.arrivals: dict[int, list[float]] = {s.fileno(): [] for s in self.sampled}
        self.markers: dict[int, list[bool]] = {s.fileno(): [] for s in self.sampled}
        """Per arrival: the packet's RTP marker bit."""
        self.heard: set[int] = set()
        """Sampled sockets that received sound."""
        self.unheard = len(self.socks) - len(self.sampled)
        """Other sockets that have not received sound yet."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @staticmethod
    def _bind(calls: int) -> tuple[int, list[socket.socket]]:
        # SIPp binds -mp and -mp+2; call n replays from -mp + 4n ([auto_media_port+4]).
        rng = np.random.default_rng()
        for _ in range(200):
            base = int(rng.integers(PORT_RANGE[0], PORT_RANGE[1] - 4 * calls - 8)) & ~1
            socks: list[socket.socket] = []
            try:
                for probe in (base, base + 2):
                    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                        s.bind((HOST, probe))
                for n in range(1, calls + 1):
                    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                    socks.append(sock)
                    sock.bind((HOST, base + 4 * n))
            except OSError:
                for sock in socks:
                    sock.close()
                continue
            return base, socks
        raise RuntimeError(f"no free range of {4 * calls} ports for {calls} calls")

    def _run(self) -> None:
        for sock in self.sampled:
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            sock.setblocking(False)
        for sock in self.socks[len(self.sampled) :]:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SINK_RCVBUF)
            sock.setblocking(False)
        unheard, next_check = self.socks[len(self.sampled) :], time.monotonic()
        while not self._stop.is_set():
            if time.monotonic() >= next_check:
                # What the small buffers of the other calls hold: anything audible in it counts.
                unheard = [s for s in unheard if not any(audible(p) for p in _drain(s))]
                self.unheard, next_check = len(unheard), time.monotonic() + AUDIO_CHECK_S
            ready, _, _ = select.select(self.sampled, [], [], 0.1)
            for sock in ready:
                while True:
                    try:
                        data, ancillary, _, _ = sock.recvmsg(2048, 64)
                    except BlockingIOError:
                        break
                    if len(data) < 12 or 200 <= data[1] <= 204:
                        continue  # not RTP (RTCP goes to the odd port anyway)
                    if sock.fileno() not in self.heard and audible(data):
                        self.heard.add(sock.fileno())
                    for level, kind, value in ancillary:
                        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                            seconds, nanos = struct.unpack("qq", value[:16])
                            self.arrivals[sock.fileno()].append(seconds + nanos / 1e9)
                            self.markers[sock.fileno()].append(bool(data[1] & 0x80))

    def audible_calls(self) -> int:
        """Calls whose caller heard sound so far: the sampled ones read whole, the others by
        looking at what their small buffers hold every `AUDIO_CHECK_S`."""
        return len(self.heard) + len(self.socks) - len(self.sampled) - self.unheard

    def intervals_ms(self, start: float, end: float) -> tuple[np.ndarray, np.ndarray]:
        """Outbound packet intervals of the sampled calls, arrivals between `start` and `end`
        (epoch), and which of them are one of the two around a talkspurt's first packet."""
        out, around = [], []
        for key, times in self.arrivals.items():
            kept = [(t, m) for t, m in zip(times, self.markers[key], strict=True) if start <= t <= end]
            if len(kept) > 1:
                out.append(np.diff([t for t, _ in kept]) * 1000.0)
                # Per interval, the marker of the packet it ends at; then that one and the next.
                marked = np.array([m for _, m in kept[1:]])
                around.append(marked | np.concatenate([[False], marked[:-1]]))
        if not out:
            return np.zeros(0), np.zeros(0, dtype=bool)
        return np.concatenate(out), np.concatenate(around)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        for sock in self.socks:
            sock.close()


def _drain(sock: socket.socket) -> list[bytes]:
    packets = []
    while True:
        try:
            packets.append(sock.recv(2048))
        except BlockingIOError:
            return packets


# --- one run ----------------------------------------------------------------------------------


def start_server(
    mode: str, target: str, calls: int, run_dir: Path, speaker: Speaker | None, workers: int | None
) -> tuple[EchoServer, int | None]:
    """The server under test, and its HTTP port (voicegw only) for /metrics."""
    if target == "baseline":
        return EchoServer("baseline", run_dir, max_calls=calls + 10), None
    http = free_tcp_port()
    config = f'[server]\nhttp = "{HOST}:{http}"\n'
    if workers is not None:
        config += f"workers = {workers}\n"
    if mode == "agent":
        assert speaker is not None
        env = {"OPENAI_API_KEY": SPEAKER_API_KEY, "OPENAI_BASE_URL": speaker.base_url}
        return EchoServer("voicegw", run_dir, max_calls=calls + 10, agent=AGENT, env=env, config=config), http
    return EchoServer("voicegw", run_dir, max_calls=calls + 10, config=config), http


def run_one(
    mode: str, target: str, calls: int, args: argparse.Namespace, workdir: Path, pcap: Path
) -> Result:
    result = Result(mode, target, calls, args.duration)
    run_dir = workdir / f"{mode}-{target}-{calls}"
    run_dir.mkdir()
    (run_dir / "audio.pcap").symlink_to(pcap)
    speaker = Speaker(run_dir) if mode == "agent" else None
    sinks: CallerSinks | None = None
    server: EchoServer | None = None
    try:
        server, http = start_server(mode, target, calls, run_dir, speaker, args.workers)
        server.wait_ready()
        sinks = CallerSinks(calls, min(SAMPLED_CALLS, calls))
        command = sipp_command(
            str(scenario_for_load(run_dir)), server.port, media_port=sinks.base, keys={"pt": "0",
            "codec": "PCMU/8000", "te_pt": "101"}, calls=calls, pause_ms=int(args.duration * 1000),
            rate=args.rate,
        )  # fmt: skip
        command += ["-trace_stat", "-fd", "1", "-timeout", f"{int(args.duration * 2 + 60)}s"]
        ramp = calls / args.rate
        started = time.time()
        sipp = subprocess.Popen(command, cwd=run_dir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        window_start, window_end = started + ramp + SETTLE_S, started + args.duration - SETTLE_S
        if window_end - window_start < 5:
            result.notes.append(f"steady window only {window_end - window_start:.1f} s: raise --duration")
        time.sleep(max(0.0, window_start - time.time()))
        metrics_start = scrape(http) if http else {}
        speaker_start = speaker.counters() if speaker else {}
        pid = server.proc.pid
        cpu_start, main_start, wall_start = tree_cpu_seconds(pid), cpu_seconds(pid), time.monotonic()
        time.sleep(max(1.0, window_end - time.time()))
        cpu_used, wall = tree_cpu_seconds(pid) - cpu_start, time.monotonic() - wall_start
        main_used = cpu_seconds(pid) - main_start
        result.cpu_main_percent = round(100.0 * main_used / wall, 1)
        result.cpu_workers_percent = round(100.0 * (cpu_used - main_used) / wall, 1)
        result.rss_mb = round(tree_rss_mb(server.proc.pid), 1)
        metrics_end = scrape(http) if http else {}
        if speaker is not None:
            speaker_end = speaker.counters()
            result.barge_ins_caller = int(speaker_end["barge_ins"] - speaker_start["barge_ins"])
            result.truncations = int(speaker_end["truncations"] - speaker_start["truncations"])
        result.calls_audible = sinks.audible_calls()
        _, err = sipp.communicate(timeout=args.duration * 2 + 90)
        if sipp.returncode not in (0, 1):
            result.notes.append(f"sipp exit {sipp.returncode}: {err.decode(errors='replace')[-300:]}")
        result.cpu_percent = round(100.0 * cpu_used / wall, 1)
        result.cpu_per_call = round(result.cpu_percent / calls, 4)
        add_intervals(result, *sinks.intervals_ms(window_start, window_end))
        if mode == "agent":
            add_agent_metrics(result, metrics_start, metrics_end)
    finally:
        if sinks is not None:
            sinks.close()
        if server is not None and not server.stop():
            result.notes.append(f"server did not exit cleanly on SIGTERM (rc={server.proc.returncode})")
        if speaker is not None:
            speaker.stop()
    result.calls_ok, result.calls_failed = sipp_counts(run_dir)
    setup = sipp_response_times_ms(run_dir)
    if setup:
        result.setup_p50_ms = round(float(np.percentile(setup, 50)), 2)
        result.setup_p95_ms = round(float(np.percentile(setup, 95)), 2)
    add_server_counters(result, server.media_stats(), args.duration)
    if result.packets_in_per_s + result.packets_out_per_s:
        per_s = result.packets_in_per_s + result.packets_out_per_s
        result.cpu_us_per_packet = round(result.cpu_percent / 100 / per_s * 1e6, 2)
    add_server_log(result, server)
    return result


def add_intervals(result: Result, intervals: np.ndarray, around_talkspurt: np.ndarray) -> None:
    if not len(intervals):
        result.notes.append("no audio reached the sampled calls' sockets")
        return
    result.interval_p50_ms = round(float(np.percentile(intervals, 50)), 2)
    result.interval_p99_ms = round(float(np.percentile(intervals, 99)), 2)
    result.interval_max_ms = round(float(intervals.max()), 2)
    errors = np.abs(intervals - FRAME_MS)
    result.interval_error_p99_ms = round(float(np.percentile(errors, 99)), 2)
    steady = errors[~around_talkspurt]
    if len(steady):
        result.interval_error_p99_steady_ms = round(float(np.percentile(steady, 99)), 2)


def add_agent_metrics(result: Result, start: dict[str, float], end: dict[str, float]) -> None:
    """Barge-ins and gateway latency over the window, from two scrapes of voicegw's /metrics."""
    name = "voicegw_barge_ins_total"
    result.barge_ins_voicegw = int(end.get(name, 0.0) - start.get(name, 0.0))
    quantiles = {}
    for direction in ("inbound", "outbound"):
        labels = f'direction="{direction}"'
        quantiles[direction] = [histogram_quantile(start, end, labels, q) for q in (0.50, 0.95)]
        if not quantiles[direction][0]:
            result.notes.append(f"no {direction} gateway latency samples in the window")
    result.latency_in_p50_ms, result.latency_in_p95_ms = quantiles["inbound"]
    result.latency_out_p50_ms, result.latency_out_p95_ms = quantiles["outbound"]


def add_server_counters(result: Result, stats: list[dict[str, object]], duration: float) -> None:
    """Totals of the server's per-call `rtp_closed` counters."""
    if not stats:
        result.notes.append("the server logged no rtp_closed counters: packet rates and loss unknown")
        return

    def total(key: str) -> int:
        return sum(int(s.get(key) or 0) for s in stats)  # type: ignore[call-overload]

    result.packets_in_per_s = round(total("packets_in") / duration, 1)
    result.packets_out_per_s = round(total("packets_out") / duration, 1)
    # RFC 3550 cumulative loss is negative when duplicates arrived: one call's duplicates must not
    # hide another call's loss.
    result.lost = sum(max(0, int(s.get("lost") or 0)) for s in stats)  # type: ignore[call-overload]
    result.late = total("late")
    result.concealed, result.bad_packets = total("frames_concealed"), total("bad_packets")
    if len(stats) != result.calls:
        result.notes.append(f"{len(stats)} rtp_closed lines for {result.calls} calls")
    if total("packets_in") == 0:
        result.notes.append("the server received no RTP at all")


def add_server_log(result: Result, server: EchoServer) -> None:
    """The event loop from voicegw's `serving` line, the media clocks' figures from `stopped` (the
    server's, which runs the calls with `--workers 0`) or from each call worker's `worker_stopped`."""
    workers = {}
    for event in server.log_events():
        if event.get("event") == "serving":
            result.event_loop = str(event.get("event_loop", ""))
        elif event.get("event") == "stopped" and isinstance(event.get("clock"), dict):
            result.media_clock = event["clock"]
        elif event.get("event") == "worker_stopped" and isinstance(event.get("clock"), dict):
            workers[f"worker {event.get('worker')}"] = event["clock"]
    if workers:
        result.media_clock = workers
    if result.target == "baseline":
        result.event_loop = "pjsua2 C media"


# --- output -----------------------------------------------------------------------------------


def print_result(result: Result) -> None:
    agent = (
        f" barge-ins caller/voicegw/truncated={result.barge_ins_caller}/{result.barge_ins_voicegw}/"
        f"{result.truncations} latency in p50/p95={result.latency_in_p50_ms}/{result.latency_in_p95_ms} ms"
        f" out p50/p95={result.latency_out_p50_ms}/{result.latency_out_p95_ms} ms"
        if result.mode == "agent"
        else ""
    )
    print(
        f"{result.mode:5} {result.target:8} N={result.calls:4} ok={result.calls_ok}/{result.calls} "
        f"audible={result.calls_audible} failed={result.calls_failed} loop={result.event_loop} "
        f"cpu={result.cpu_percent:6.1f}% ({result.cpu_per_call:.4f}%/call, "
        f"{result.cpu_us_per_packet} us/packet; server {result.cpu_main_percent}% + workers "
        f"{result.cpu_workers_percent}%) rss={result.rss_mb} MB "
        f"pps in/out={result.packets_in_per_s:.0f}/{result.packets_out_per_s:.0f} "
        f"interval p50/p99/max={result.interval_p50_ms}/{result.interval_p99_ms}/{result.interval_max_ms} ms "
        f"(err p99 {result.interval_error_p99_ms} ms, {result.interval_error_p99_steady_ms} ms without "
        f"talkspurt starts) lost={result.lost} late={result.late} "
        f"concealed={result.concealed} setup p50/p95={result.setup_p50_ms}/{result.setup_p95_ms} ms"
        + agent
        + (f" media clock {result.media_clock}" if result.media_clock else "")
        + (f"  notes: {'; '.join(result.notes)}" if result.notes else ""),
        flush=True,
    )


def ratios(results: list[Result]) -> dict[tuple[str, int], float]:
    """voicegw's CPU per call over the baseline's, per (mode, N) where both ran."""
    baseline = {(r.mode, r.calls): r for r in results if r.target == "baseline"}
    out = {}
    for r in results:
        base = baseline.get((r.mode, r.calls))
        if r.target == "voicegw" and base is not None and base.cpu_per_call:
            out[(r.mode, r.calls)] = round(r.cpu_per_call / base.cpu_per_call, 2)
    return out


def machine() -> str:
    model = "unknown CPU"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} cores, {model}, Linux {platform.release()}, Python {platform.python_version()}"


def markdown(results: list[Result], args: argparse.Namespace) -> str:
    """The results as one Markdown table, with the machine and the command that made it."""
    ratio = ratios(results)
    lines = [
        f"Machine: {machine()}. SIPp and the servers share it; {args.duration:g} s calls, "
        f"{args.rate} new calls a second.",
        "",
        f"Command: `{shlex.join(['.venv/bin/python', 'scripts/bench_capacity.py', *sys.argv[1:]])}`",
        "",
        "| mode | server | loop | N | calls ok | audible | CPU % (tree) | CPU %/call | × baseline "
        "| µs/packet | RSS MB | interval p50/p99/max ms | error p99 ms (w/o talkspurt starts) | lost "
        "| setup p50/p95 ms "
        "| barge-ins caller/voicegw | latency in p50/p95 ms | latency out p50/p95 ms |",
        "|" + "---|" * 18,
    ]
    for r in results:
        agent = r.mode == "agent"
        x = ratio.get((r.mode, r.calls)) if r.target == "voicegw" else None
        lines.append(
            f"| {r.mode} | {r.target} | {r.event_loop} | {r.calls} | {r.calls_ok} | {r.calls_audible} "
            f"| {r.cpu_percent} | {r.cpu_per_call:.3f} | {f'{x:.2f}' if x else '-'} | {r.cpu_us_per_packet} "
            f"| {r.rss_mb} "
            f"| {r.interval_p50_ms}/{r.interval_p99_ms}/{r.interval_max_ms} "
            f"| {r.interval_error_p99_ms} ({r.interval_error_p99_steady_ms}) "
            f"| {r.lost} | {r.setup_p50_ms}/{r.setup_p95_ms} "
            f"| {f'{r.barge_ins_caller}/{r.barge_ins_voicegw}' if agent else '-'} "
            f"| {f'{r.latency_in_p50_ms}/{r.latency_in_p95_ms}' if agent else '-'} "
            f"| {f'{r.latency_out_p50_ms}/{r.latency_out_p95_ms}' if agent else '-'} |"
        )
    notes = [f"- {r.mode} {r.target} N={r.calls}: {'; '.join(r.notes)}" for r in results if r.notes]
    return "\n".join(lines + (["", *notes] if notes else []))


# --- driving ----------------------------------------------------------------------------------


def search(mode: str, target: str, args: argparse.Namespace, workdir: Path, pcap: Path) -> Result | None:
    """Largest N within budget: grow by x1.5 until a run fails it, then bisect to 10 % precision."""
    best: Result | None = None
    low, high, n = 0, 0, args.search_start
    while True:
        result = run_one(mode, target, n, args, workdir, pcap)
        print_result(result)
        if result.within_budget:
            best, low = result, n
            if n >= args.search_max:
                return best
            n = min(int(n * 1.5), args.search_max)
        else:
            high = n
            break
    while high - low > max(10, low // 10):
        n = (low + high) // 2
        result = run_one(mode, target, n, args, workdir, pcap)
        print_result(result)
        if result.within_budget:
            best, low = result, n
        else:
            high = n
    return best


def plan(args: argparse.Namespace) -> list[tuple[str, str]]:
    """(mode, target) pairs to run: the baseline only has an echo mode."""
    modes = ["echo", "agent"] if args.mode == "both" else [args.mode]
    targets = ["voicegw", "baseline"] if args.target == "both" else [args.target]
    return [(m, t) for m in modes for t in targets if not (m == "agent" and t == "baseline")]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mode", choices=("echo", "agent", "both"), default="echo")
    parser.add_argument("--target", choices=("voicegw", "baseline", "both"), default="both")
    parser.add_argument("--calls", default="200,500", help="comma-separated concurrent call counts")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds each call lasts")
    parser.add_argument("--rate", type=int, default=50, help="new calls per second while ramping up")
    parser.add_argument("--search", action="store_true", help="find the largest N within budget")
    parser.add_argument("--search-start", type=int, default=50)
    parser.add_argument("--search-max", type=int, default=1000)
    parser.add_argument("--json", type=Path, help="also write every result here")
    parser.add_argument("--markdown", action="store_true", help="end with the results as a Markdown table")
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="voicegw's call workers (default: its own, one per core; 0: none)",
    )
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # servers and sinks: 2-3 sockets per call
    print(f"machine: {machine()}", flush=True)
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="voicegw-bench-") as tmp:
        workdir = Path(tmp)
        pcaps = {"echo": speech_pcap(workdir, args.duration + 5)}
        if args.mode != "echo":
            pcaps["agent"] = bursts_pcap(workdir, args.duration + 5)
        for mode, target in plan(args):
            if args.search:
                best = search(mode, target, args, workdir, pcaps[mode])
                found = best.calls if best else "none"
                print(f"{mode} {target}: largest N within budget: {found}", flush=True)
                results += [best] if best else []
                continue
            for calls in (int(n) for n in args.calls.split(",")):
                result = run_one(mode, target, calls, args, workdir, pcaps[mode])
                print_result(result)
                results.append(result)
    for (mode, calls), ratio in sorted(ratios(results).items()):
        print(f"{mode} N={calls}: voicegw CPU per call = {ratio:.2f} x baseline", flush=True)
    if args.markdown:
        print("\n" + markdown(results, args), flush=True)
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=2))


if __name__ == "__main__":
    main()
