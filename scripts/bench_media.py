#!/usr/bin/env python3
"""Per-call media cost: N RtpEndpoints in one process, paired on loopback, all echoing.

Each endpoint reads its caller frames and plays them straight back (the echo path: jitter
buffer, decode, resample, playout, encode, RTP out), paced by one MediaClock. One side of
each pair starts with a tone so real audio circulates. A few extra endpoints send to plain
sockets read by a child process, which timestamps arrivals: the outbound packet interval
as the wire sees it.

    .venv/bin/python scripts/bench_media.py --calls 50 200 --seconds 5
    .venv/bin/python scripts/bench_media.py --rate 8000          # no resampling
    .venv/bin/python scripts/bench_media.py --codec opus --payload-type 111
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import multiprocessing
import selectors
import socket
import struct
import time
from multiprocessing.connection import Connection

import numpy as np
import structlog
from figures import print_markdown

from voicegw.rtp.clock import MediaClock
from voicegw.rtp.endpoint import RtpEndpoint
from voicegw.server.loop import EVENT_LOOP
from voicegw.server.loop import run as run_loop

HOST = "127.0.0.1"
PORT_RANGE = (30000, 39999)
PROBES = 4


SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
"""Linux: the kernel stamps each datagram on arrival, so the reader's scheduling is irrelevant."""


def _kernel_timestamp(ancillary: list[tuple[int, int, bytes]]) -> float:
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
            seconds, nanoseconds = struct.unpack("qq", data[:16])
            return seconds + nanoseconds / 1e9
    raise RuntimeError("datagram without kernel timestamp")


def _probe_main(conn: Connection, count: int) -> None:
    """Child process: bind `count` sockets, report their ports, collect kernel arrival times."""
    socks = []
    for _ in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        sock.bind((HOST, 0))
        socks.append(sock)
    conn.send([s.getsockname()[1] for s in socks])
    conn.recv()  # start measuring
    arrivals: list[list[float]] = [[] for _ in socks]
    selector = selectors.DefaultSelector()
    for i, sock in enumerate(socks):
        selector.register(sock, selectors.EVENT_READ, data=i)
    while not conn.poll():
        for key, _ in selector.select(timeout=0.05):
            ready = socks[key.data]
            with contextlib.suppress(BlockingIOError):
                while True:
                    _, ancillary, _, _ = ready.recvmsg(2048, 64, socket.MSG_DONTWAIT)
                    arrivals[key.data].append(_kernel_timestamp(ancillary))
    conn.send([np.diff(a).tolist() for a in arrivals])
    for sock in socks:
        sock.close()


class Probe:
    """Plain UDP sockets in a child process: wire arrival times of a few outbound streams."""

    def __init__(self, count: int) -> None:
        self._conn, child = multiprocessing.Pipe()
        self._process = multiprocessing.Process(target=_probe_main, args=(child, count), daemon=True)
        self._process.start()
        self.ports: list[int] = self._conn.recv()

    def start(self) -> None:
        self._conn.send("start")

    def intervals_ms(self) -> np.ndarray:
        self._conn.send("stop")
        per_socket = self._conn.recv()
        self._process.join()
        return np.concatenate([np.array(d) * 1000 for d in per_socket])

    def close(self) -> None:
        if self._process.is_alive():
            self._process.kill()
            self._process.join()


def tone(seconds: float, rate: int) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    return (8000 * np.sin(2 * np.pi * 440 * t)).astype("<i2").tobytes()


async def echo(endpoint: RtpEndpoint) -> None:
    async for frame in endpoint.frames():
        endpoint.play(frame, "echo")


def pct(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else float("nan")


async def run(calls: int, seconds: float, codec: str, payload_type: int, rate: int) -> dict[str, float]:
    clock = MediaClock()
    await clock.start()
    endpoints: list[RtpEndpoint] = []
    probe = Probe(PROBES)
    tasks: list[asyncio.Task[None]] = []
    try:
        for _ in range(calls // 2):
            a = await RtpEndpoint.open(host=HOST, port_range=PORT_RANGE, clock=clock)
            b = await RtpEndpoint.open(host=HOST, port_range=PORT_RANGE, clock=clock)
            endpoints += [a, b]
            for x, y in ((a, b), (b, a)):
                x.start(
                    codec=codec,
                    payload_type=payload_type,
                    remote=(HOST, y.local_port),
                    sample_rate=rate,
                )
            a.play(tone(1.0, rate), "tone")
        for port in probe.ports:
            endpoint = await RtpEndpoint.open(host=HOST, port_range=PORT_RANGE, clock=clock)
            endpoints.append(endpoint)
            endpoint.start(codec=codec, payload_type=payload_type, remote=(HOST, port), sample_rate=rate)
            endpoint.play(tone(seconds + 2, rate), "tone")
        tasks = [asyncio.create_task(echo(e)) for e in endpoints[: calls // 2 * 2]]
        await asyncio.sleep(1.0)  # warm-up: jitter buffers prime, resamplers settle
        clock_before = clock.stats
        cpu0, wall0 = time.process_time(), time.monotonic()
        probe.start()
        await asyncio.sleep(seconds)
        cpu = (time.process_time() - cpu0) / (time.monotonic() - wall0) * 100
        clock_stats = clock.stats
        intervals = probe.intervals_ms()
        stats = [e.stats for e in endpoints[: calls // 2 * 2]]
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*(e.close() for e in endpoints))
        await clock.stop()
        probe.close()
    packets_in = sum(s["packets_in"] for s in stats)
    return {
        "calls": calls,
        "cpu_pct": cpu,
        "cpu_pct_per_call": cpu / max(1, calls),
        "pps_in": packets_in / (seconds + 1.0),
        "tick_p50_ms": clock_stats["lateness_p50_ms"],
        "tick_p99_ms": clock_stats["lateness_p99_ms"],
        "tick_max_ms": clock_stats["lateness_max_ms"],
        "skipped_ticks": clock_stats["skipped_ticks"] - clock_before["skipped_ticks"],
        "send_phase_p99_ms": clock_stats["send_phase_p99_ms"],
        "tick_work_p99_ms": clock_stats["tick_work_p99_ms"],
        "interval_p50_ms": pct(intervals, 50),
        "interval_p99_ms": pct(intervals, 99),
        "interval_max_ms": float(intervals.max()) if len(intervals) else float("nan"),
        "interval_p99_err_ms": pct(np.abs(intervals - 20), 99),
        "lost": sum(max(0, s["lost"]) for s in stats),
        "late": sum(s["late"] for s in stats),
        "concealed": sum(s["frames_concealed"] for s in stats),
        "frames_dropped": sum(s["frames_dropped"] for s in stats),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, nargs="+", default=[50, 200], help="endpoints per run (even)")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--codec", default="PCMU")
    parser.add_argument("--payload-type", type=int, default=0)
    parser.add_argument(
        "--rate", type=int, default=16000, help="agent-side PCM rate (resampled to the codec's)"
    )
    parser.add_argument("--markdown", action="store_true", help="also print the figures as a Markdown table")
    args = parser.parse_args()
    # Per-call start/stop lines would drown the figures.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    results = []
    for calls in args.calls:
        r = run_loop(run(calls, args.seconds, args.codec, args.payload_type, args.rate))
        results.append(r)
        print(
            f"N={r['calls']:4d} {args.codec} agent {args.rate} Hz on {EVENT_LOOP}:"
            f" CPU {r['cpu_pct']:.1f}% ({r['cpu_pct_per_call']:.3f}%/endpoint)"
            f"  pkts in/s {r['pps_in']:.0f}"
            f"  tick lateness p50/p99/max {r['tick_p50_ms']:.2f}/{r['tick_p99_ms']:.2f}/"
            f"{r['tick_max_ms']:.2f} ms"
            f" (skipped {r['skipped_ticks']}; send phase p99 {r['send_phase_p99_ms']:.2f},"
            f" whole tick p99 {r['tick_work_p99_ms']:.2f} ms)"
            f"  outbound interval p50/p99/max {r['interval_p50_ms']:.2f}/{r['interval_p99_ms']:.2f}/"
            f"{r['interval_max_ms']:.2f} ms (p99 |err| {r['interval_p99_err_ms']:.2f})"
            f"  lost {r['lost']} late {r['late']} concealed {r['concealed']} dropped {r['frames_dropped']}",
            flush=True,
        )

    if args.markdown:
        print_markdown(
            f"The RTP stack alone: echoing endpoints, one process ({args.codec}, agent at {args.rate} Hz)",
            [
                "endpoints",
                "CPU (one core = 100 %)",
                "per endpoint",
                "clock tick late p99",
                "send interval p99",
            ],
            [
                (
                    str(r["calls"]),
                    f"{r['cpu_pct']:.1f} %",
                    f"{r['cpu_pct_per_call']:.3f} %",
                    f"{r['tick_p99_ms']:.2f} ms",
                    f"{r['interval_p99_ms']:.2f} ms",
                )
                for r in results
            ],
            [f"{args.seconds:g} s a run after 1 s of warm-up; no SIP, no model (calls: the capacity table)."],
        )


if __name__ == "__main__":
    main()
