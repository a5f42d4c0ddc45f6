"""Request guard benchmark: N requests refused by the native request guard or by pjsua, or let through.

A `SipUserAgent` runs in this process on 127.0.0.1. `--mode guard` refuses every request with 403
in the request guard (stateless, before pjsip's transaction layer); `--mode admit` refuses every
INVITE with 403 from the `admit` callback (pjsua has created a transaction, a dialog and a call
first); `--mode pass` installs a guard that lets everything through and `--mode none` no guard
(with `--method OPTIONS`, their difference is what the guard costs a request that passes).
A sender process (this script with `--flood`, so that its memory and CPU are not the server's)
paces N requests from one UDP socket, never ACKing (as a flood would), and counts those that got
a final response. Printed: requests sent and answered, the achieved rate, the pump's time on the
event loop per request, calls left in the user agent, and the process's RSS before, right after
and `--settle` seconds after the flood.

    .venv/bin/python scripts/bench_request_guard.py --mode guard --count 100000 --rate 5000
    .venv/bin/python scripts/bench_request_guard.py --mode admit --count 5000 --rate 1000
    .venv/bin/python scripts/bench_request_guard.py --mode pass --method OPTIONS --count 20000
    .venv/bin/python scripts/bench_request_guard.py --mode none --method OPTIONS --count 20000
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import socket
import sys
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from voicegw.rtp.clock import MediaClock  # noqa: E402
from voicegw.sip.call import CallInfo, Rejection, SipCall  # noqa: E402
from voicegw.sip.guard import IncomingRequest, Refusal  # noqa: E402
from voicegw.sip.ua import SipConfig, SipUserAgent  # noqa: E402
from voicegw.testing.harness import HOST, free_udp_port  # noqa: E402
from voicegw.testing.raw_sip import offer_sdp, parse_response  # noqa: E402

RTP_PORTS = (47000, 47100)
REFUSAL = Refusal(403, "Forbidden")
RECEIVE_IDLE_S = 2.0
MAX_RUN_S = 600.0


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def refuse_all(request: IncomingRequest, now: float) -> Refusal | None:
    return REFUSAL


def let_through(request: IncomingRequest, now: float) -> Refusal | None:
    return None


GUARDS = {"guard": refuse_all, "pass": let_through}


def refuse_call(info: CallInfo) -> Rejection:
    return Rejection(403, "Forbidden")


async def wait_for_hang_up(call: SipCall) -> None:
    await call.wait_ended()


def flood(port: int, method: str, count: int, rate: float) -> dict[str, float]:
    """Send `count` requests at `rate`/s; how many got a final response, and the rate achieved."""
    answered: set[str] = set()
    done = threading.Event()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, 0))
        sock.settimeout(RECEIVE_IDLE_S)
        local = sock.getsockname()[1]
        sdp = offer_sdp(local + 2) if method == "INVITE" else ""
        content_type = "Content-Type: application/sdp\r\n" if sdp else ""

        def receive() -> None:
            while True:
                try:
                    data = sock.recv(65535)
                except TimeoutError:
                    if done.is_set():
                        return
                    continue
                response = parse_response(data)
                if response is not None and response.status >= 200:
                    answered.add(response.headers.get("call-id", ""))

        receiver = threading.Thread(target=receive)
        receiver.start()
        started = time.monotonic()
        for n in range(count):
            delay = started + n / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            tag = uuid.uuid4().hex[:12]
            sock.sendto(
                (
                    f"{method} sip:echo@{HOST}:{port} SIP/2.0\r\n"
                    f"Via: SIP/2.0/UDP {HOST}:{local};branch=z9hG4bK{tag};rport\r\n"
                    f"From: <sip:flood@{HOST}>;tag={tag}\r\nTo: <sip:echo@{HOST}>\r\nCall-ID: {tag}\r\n"
                    f"CSeq: 1 {method}\r\nContact: <sip:flood@{HOST}:{local}>\r\nMax-Forwards: 70\r\n"
                    f"{content_type}Content-Length: {len(sdp)}\r\n\r\n{sdp}"
                ).encode(),
                (HOST, port),
            )
        elapsed = time.monotonic() - started
        done.set()
        receiver.join(MAX_RUN_S)
    return {"answered": len(answered), "rate_per_s": round(count / max(elapsed, 1e-9))}


async def run(mode: str, method: str, count: int, rate: float, settle: float) -> dict[str, object]:
    clock = MediaClock()
    await clock.start()
    config = SipConfig(host=HOST, port=free_udp_port(), tcp=False, rtp_ports=RTP_PORTS, max_calls=1000)
    ua = SipUserAgent(
        config,
        clock,
        wait_for_hang_up,
        admit=refuse_call if mode == "admit" else None,
        guard=GUARDS.get(mode),
    )
    await ua.start()
    try:
        gc.collect()
        before = rss_mb()
        pump_before = ua.pump_stats.total_s
        sender = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--flood", str(ua.port), "--method", method,
            "--count", str(count), "--rate", str(rate),
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        output, _ = await asyncio.wait_for(sender.communicate(), MAX_RUN_S)
        flooded = json.loads(output)
        pump_s = ua.pump_stats.total_s - pump_before
        after = rss_mb()
        await asyncio.sleep(settle)
        gc.collect()
        settled = rss_mb()
        calls_left = len(ua.calls)
    finally:
        await ua.stop()
        await clock.stop()
    return {
        "mode": mode,
        "method": method,
        "sent": count,
        **flooded,
        "pump_us_per_request": round(pump_s / count * 1e6, 1),
        "calls_left": calls_left,
        "rss_mb_before": round(before, 1),
        "rss_mb_after": round(after, 1),
        "rss_mb_settled": round(settled, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mode", choices=("guard", "admit", "pass", "none"), default="guard")
    parser.add_argument("--method", choices=("INVITE", "OPTIONS"), default="INVITE")
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=2000.0, help="requests per second")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds before the last RSS reading")
    parser.add_argument("--flood", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not 0 < args.count <= 1_000_000 or not 0 < args.rate <= 50_000:
        parser.error("--count must be 1-1000000 and --rate 1-50000")
    if args.flood:
        print(json.dumps(flood(args.flood, args.method, args.count, args.rate)))
    else:
        print(json.dumps(asyncio.run(run(args.mode, args.method, args.count, args.rate, args.settle))))


if __name__ == "__main__":
    main()
