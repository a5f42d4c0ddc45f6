"""What call records and webhooks cost the event loop, and how fast webhooks go out.

    .venv/bin/python scripts/bench_call_records.py [--calls 2000] [--rate 200]

Calls start and end at `--rate` a second. Per call, on the loop: the record built from its
signalling (`CallRecords`: started, answered, ended) with the CDR line queued for the writer
thread and three webhook deliveries queued (`CallReports`), in microseconds (p50, p99, max); and
how the deliveries went to a local receiver (aiohttp, answering 204). Then the same while the
receiver hangs (every delivery times out after 0.5 s): a slow receiver must not cost a call
anything, and what does not fit in the queue is dropped and counted.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import tempfile
import time
from pathlib import Path

import structlog
from aiohttp import web

from voicegw.contracts.transport import CallInfo, EndReason
from voicegw.server.call_reports import CallReports
from voicegw.server.metrics import Metrics
from voicegw.server.webhooks import WebhookSettings
from voicegw.sip.call import SipCall
from voicegw.sip.state import CallTrigger

SECRET = "bench"
TIME_LIMIT_S = 60.0


def a_call(n: int) -> SipCall:
    info = CallInfo(f"bench-{n}@127.0.0.1", "<sip:caller@x>", "<sip:agent@y>", ("127.0.0.1", 5060))
    return SipCall(info, hang_up=lambda status, reason: None, transfer=lambda target: None)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def one_run(calls: int, rate: float, url: str, cdr: Path, metrics: Metrics) -> list[float]:
    """Loop cost of each call's records, in µs; returns once every delivery has an outcome (or
    the queue's leftovers were dropped at close)."""
    reports = CallReports(
        cdr_file=cdr, webhooks=WebhookSettings((url,), SECRET, timeout=0.5, retries=0), metrics=metrics
    )
    reports.start()
    costs = []
    try:
        for n in range(calls):
            call = a_call(n)
            started = time.perf_counter()
            reports.records.call_started(call)
            spent = time.perf_counter() - started
            call.move(CallTrigger.RING)
            call.move(CallTrigger.ANSWER)
            started = time.perf_counter()
            reports.records.call_answered(call)
            spent += time.perf_counter() - started
            call.move(CallTrigger.DISCONNECT, "caller hung up", EndReason.CALLER_HUNG_UP)
            started = time.perf_counter()
            reports.records.call_ended(call, 200)
            costs.append((spent + time.perf_counter() - started) * 1e6)  # the call's own moves not counted
            await asyncio.sleep(1 / rate)
        async with asyncio.timeout(TIME_LIMIT_S):  # the last deliveries, unless they hang
            while sum(outcomes(metrics).values()) < 3 * calls and outcomes(metrics).get("delivered"):
                await asyncio.sleep(0.05)
    finally:
        await reports.close()
    return costs


def outcomes(metrics: Metrics) -> dict[str, int]:
    counts: dict[str, int] = {}
    for family in metrics.registry.collect():
        if family.name == "voicegw_webhook_deliveries":
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    outcome = sample.labels["outcome"]
                    counts[outcome] = counts.get(outcome, 0) + int(sample.value)
    return counts


async def main(calls: int, rate: float) -> None:
    # Thousands of webhook_failed warnings from the hanging run say nothing more than the counts.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    hang = asyncio.Event()

    async def receive(request: web.Request) -> web.Response:
        await request.read()
        if hang.is_set():
            await asyncio.sleep(3600)
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hooks", receive)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/hooks"
    try:
        with tempfile.TemporaryDirectory() as folder:
            for label in ("receiver answering", "receiver hanging"):
                if label == "receiver hanging":
                    hang.set()
                metrics = Metrics()
                started = time.perf_counter()
                costs = await asyncio.wait_for(
                    one_run(calls, rate, url, Path(folder) / "calls.jsonl", metrics), TIME_LIMIT_S
                )
                elapsed = time.perf_counter() - started
                counts = outcomes(metrics)
                print(
                    f"{label}: {calls} calls, loop cost per call p50 {percentile(costs, 0.5):.0f} µs, "
                    f"p99 {percentile(costs, 0.99):.0f} µs, max {max(costs):.0f} µs; "
                    f"{sum(counts.values())} deliveries in {elapsed:.2f} s "
                    f"outcomes {counts}"
                )
            lines = len((Path(folder) / "calls.jsonl").read_text().splitlines())
            print(f"CDR file: {lines} lines for {2 * calls} calls")
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=2000, help="calls per run (bounded: 1-20000)")
    parser.add_argument("--rate", type=float, default=200.0, help="calls a second (bounded: 1-2000)")
    args = parser.parse_args()
    asyncio.run(main(max(1, min(args.calls, 20000)), max(1.0, min(args.rate, 2000.0))))
