"""Capacity benchmark: N concurrent SIPp echo calls against `voicegw serve --echo` and the baseline.

For each target (voicegw; the pjsua2 baseline echo UAS of scripts/baseline_echo_uas.py, whose media
is pjsua2's own C conference bridge) and each N, SIPp (scripts/sipp/uac_echo_pcap.xml with
[auto_media_port+4]: every call replays a PCMU pcap from its own port) holds N calls for D seconds.
Probes, over the window where all N calls are up:
  - CPU % of the server process and its call workers (utime + stime from /proc/PID/stat; 100 % =
    one core), and the split between the two (`--workers 0`: calls in the server's own process);
  - echo packets/s in and out (the server's per-call counters, logged as `rtp_closed` at hang-up);
  - outbound packet interval p50/p99/max and interval error p99 (|interval - 20 ms|), from kernel
    receive timestamps (SO_TIMESTAMPNS) on the sockets of a sample of calls;
  - packets lost / late / concealed inside the server (its `rtp_closed` counters);
  - call setup time INVITE -> 200 p50/p95 (SIPp's -trace_rtt).
Then voicegw's CPU per call as a ratio to the baseline's.

    .venv/bin/python scripts/bench_capacity.py --calls 50,200 --duration 60
    .venv/bin/python scripts/bench_capacity.py --target baseline --calls 600 --duration 30
    .venv/bin/python scripts/bench_capacity.py --search --duration 20   # largest N within budget
    .venv/bin/python scripts/bench_capacity.py --target voicegw --calls 100 --workers 0  # in-process
"""

from __future__ import annotations

import argparse
import json
import resource
import select
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

from voicegw.testing.harness import HOST, EchoServer, sipp_command, sipp_response_times_ms  # noqa: E402
from voicegw.testing.load import (  # noqa: E402
    children_cpu_seconds,
    cpu_seconds,
    scenario_for_load,
    sipp_counts,
    speech_pcap,
)

FRAME_MS = 20.0
PACKETS_PER_S = 1000.0 / FRAME_MS
EXPECTED_PACKET_SHARE = 0.9
SAMPLED_CALLS = 10
SETTLE_S = 2.0  # skip this much after the last call is up and before the first one ends
SINK_RCVBUF = 4096  # unsampled calls' echo only has to land somewhere: the kernel drops the rest
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
MAX_INTERVAL_ERROR_MS = 2.0
PORT_RANGE = (32000, 60000)  # above voicegw's default RTP range (20000-30000)


@dataclass
class Result:
    target: str
    calls: int
    duration_s: float
    calls_ok: int = 0
    calls_failed: int = 0
    cpu_percent: float = 0.0
    cpu_per_call: float = 0.0
    cpu_main_percent: float = 0.0
    """Of `cpu_percent`: the server process (SIP signalling, and the calls when workers = 0)."""
    cpu_workers_percent: float = 0.0
    """Of `cpu_percent`: its call workers (media, sessions)."""
    packets_in_per_s: float = 0.0
    packets_out_per_s: float = 0.0
    interval_p50_ms: float = 0.0
    interval_p99_ms: float = 0.0
    interval_max_ms: float = 0.0
    interval_error_p99_ms: float = 0.0
    lost: int = 0
    late: int = 0
    concealed: int = 0
    bad_packets: int = 0
    setup_p50_ms: float = 0.0
    setup_p95_ms: float = 0.0
    media_clock: dict[str, object] = field(default_factory=dict)
    """voicegw's media clock statistics from its `stopped` log line (tick lateness, skipped ticks)."""
    notes: list[str] = field(default_factory=list)

    @property
    def within_budget(self) -> bool:
        return (
            self.calls_failed == 0
            and self.calls_ok == self.calls
            and self.interval_error_p99_ms <= MAX_INTERVAL_ERROR_MS
            and self.lost == 0
            # Media really flowed both ways (a server that hears nothing also loses nothing).
            and self.packets_in_per_s >= EXPECTED_PACKET_SHARE * PACKETS_PER_S * self.calls
            and self.packets_out_per_s >= EXPECTED_PACKET_SHARE * PACKETS_PER_S * self.calls
        )


class EchoSinks:
    """One UDP socket per call's SIPp media port; the first `sampled` are read with kernel timestamps."""

    def __init__(self, calls: int, sampled: int) -> None:
        self.base, self.socks = self._bind(calls)
        self.sampled = self.socks[:sampled]
        self.arrivals: dict[int, list[float]] = {s.fileno(): [] for s in self.sampled}
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
        while not self._stop.is_set():
            ready, _, _ = select.select(self.sampled, [], [], 0.1)
            for sock in ready:
                while True:
                    try:
                        data, ancillary, _, _ = sock.recvmsg(2048, 64)
                    except BlockingIOError:
                        break
                    if len(data) < 12 or 200 <= data[1] <= 204:
                        continue  # not RTP (RTCP goes to the odd port anyway)
                    for level, kind, value in ancillary:
                        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                            seconds, nanos = struct.unpack("qq", value[:16])
                            self.arrivals[sock.fileno()].append(seconds + nanos / 1e9)

    def intervals_ms(self, start: float, end: float) -> np.ndarray:
        """Outbound packet intervals of the sampled calls, arrivals between `start` and `end` (epoch)."""
        out = []
        for times in self.arrivals.values():
            window = np.array([t for t in times if start <= t <= end])
            if len(window) > 1:
                out.append(np.diff(window) * 1000.0)
        return np.concatenate(out) if out else np.zeros(0)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        for sock in self.socks:
            sock.close()


def run_one(target: str, calls: int, args: argparse.Namespace, workdir: Path, pcap: Path) -> Result:
    result = Result(target, calls, args.duration)
    run_dir = workdir / f"{target}-{calls}"
    run_dir.mkdir()
    (run_dir / "audio.pcap").symlink_to(pcap)
    workers = (
        f"[server]\nworkers = {args.workers}\n" if target == "voicegw" and args.workers is not None else ""
    )
    server = EchoServer(target, run_dir, max_calls=calls + 10, config=workers)
    sinks: EchoSinks | None = None
    try:
        server.wait_ready()
        sinks = EchoSinks(calls, min(SAMPLED_CALLS, calls))
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
        pid = server.proc.pid
        main_start, workers_start, wall_start = cpu_seconds(pid), children_cpu_seconds(pid), time.monotonic()
        time.sleep(max(1.0, window_end - time.time()))
        main_used, workers_used = cpu_seconds(pid) - main_start, children_cpu_seconds(pid) - workers_start
        cpu_used, wall = main_used + workers_used, time.monotonic() - wall_start
        _, err = sipp.communicate(timeout=args.duration * 2 + 90)
        if sipp.returncode not in (0, 1):
            result.notes.append(f"sipp exit {sipp.returncode}: {err.decode(errors='replace')[-300:]}")
        result.cpu_percent = round(100.0 * cpu_used / wall, 1)
        result.cpu_per_call = round(result.cpu_percent / calls, 4)
        result.cpu_main_percent = round(100.0 * main_used / wall, 1)
        result.cpu_workers_percent = round(100.0 * workers_used / wall, 1)
        intervals = sinks.intervals_ms(window_start, window_end)
        if len(intervals):
            result.interval_p50_ms = round(float(np.percentile(intervals, 50)), 2)
            result.interval_p99_ms = round(float(np.percentile(intervals, 99)), 2)
            result.interval_max_ms = round(float(intervals.max()), 2)
            result.interval_error_p99_ms = round(float(np.percentile(np.abs(intervals - FRAME_MS), 99)), 2)
        else:
            result.notes.append("no echo reached the sampled calls' sockets")
    finally:
        if sinks is not None:
            sinks.close()
        if not server.stop():
            result.notes.append(f"server did not exit cleanly on SIGTERM (rc={server.proc.returncode})")
    result.calls_ok, result.calls_failed = sipp_counts(run_dir)
    setup = sipp_response_times_ms(run_dir)
    if setup:
        result.setup_p50_ms = round(float(np.percentile(setup, 50)), 2)
        result.setup_p95_ms = round(float(np.percentile(setup, 95)), 2)
    add_server_counters(result, server.media_stats(), args.duration)
    events = [e for e in server.log_events() if isinstance(e.get("clock"), dict)]
    stopped = [e for e in events if e.get("event") == "stopped"]
    # With call workers the media clocks are theirs: one each.
    workers = {f"worker {e.get('worker')}": e["clock"] for e in events if e.get("event") == "worker_stopped"}
    if workers or stopped:
        result.media_clock = workers or stopped[-1]["clock"]
    return result


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


def print_result(result: Result) -> None:
    print(
        f"{result.target:9} N={result.calls:4} ok={result.calls_ok}/{result.calls} "
        f"failed={result.calls_failed} "
        f"cpu={result.cpu_percent:6.1f}% ({result.cpu_per_call:.4f}%/call; "
        f"server {result.cpu_main_percent}% + workers {result.cpu_workers_percent}%) "
        f"pps in/out={result.packets_in_per_s:.0f}/{result.packets_out_per_s:.0f} "
        f"interval p50/p99/max={result.interval_p50_ms}/{result.interval_p99_ms}/{result.interval_max_ms} ms "
        f"(err p99 {result.interval_error_p99_ms} ms) lost={result.lost} late={result.late} "
        f"concealed={result.concealed} setup p50/p95={result.setup_p50_ms}/{result.setup_p95_ms} ms"
        + (f" media clock {result.media_clock}" if result.media_clock else "")
        + (f"  notes: {'; '.join(result.notes)}" if result.notes else ""),
        flush=True,
    )


def search(target: str, args: argparse.Namespace, workdir: Path, pcap: Path) -> Result | None:
    """Largest N within budget: grow by x1.5 until a run fails it, then bisect to 10 % precision."""
    best: Result | None = None
    low, high, n = 0, 0, args.search_start
    while True:
        result = run_one(target, n, args, workdir, pcap)
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
        result = run_one(target, n, args, workdir, pcap)
        print_result(result)
        if result.within_budget:
            best, low = result, n
        else:
            high = n
    return best


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--target", choices=("voicegw", "baseline", "both"), default="both")
    parser.add_argument("--calls", default="50,200", help="comma-separated concurrent call counts")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds each call lasts")
    parser.add_argument("--rate", type=int, default=50, help="new calls per second while ramping up")
    parser.add_argument("--search", action="store_true", help="find the largest N within budget")
    parser.add_argument("--search-start", type=int, default=50)
    parser.add_argument("--search-max", type=int, default=1000)
    parser.add_argument("--json", type=Path, help="also write every result here")
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="voicegw's call workers (default: its own, one per core; 0: none)",
    )
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # servers and sinks: 2-3 sockets per call
    targets = ["voicegw", "baseline"] if args.target == "both" else [args.target]
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="voicegw-bench-") as tmp:
        workdir = Path(tmp)
        pcap = speech_pcap(workdir, args.duration + 5)
        for target in targets:
            if args.search:
                best = search(target, args, workdir, pcap)
                print(f"{target}: largest N within budget: {best.calls if best else 'none'}", flush=True)
                results += [best] if best else []
                continue
            for calls in (int(n) for n in args.calls.split(",")):
                result = run_one(target, calls, args, workdir, pcap)
                print_result(result)
                results.append(result)
    by_target = {(r.target, r.calls): r for r in results}
    for (target, calls), result in sorted(by_target.items()):
        baseline = by_target.get(("baseline", calls))
        if target == "voicegw" and baseline and baseline.cpu_per_call:
            ratio = result.cpu_per_call / baseline.cpu_per_call
            print(f"N={calls}: voicegw CPU per call = {ratio:.2f} x baseline", flush=True)
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=2))


if __name__ == "__main__":
    main()
