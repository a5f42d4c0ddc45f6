"""Soak: N concurrent echo calls, re-placed as they end, for D minutes; then short calls.

Against `voicegw serve --echo`, SIPp (scripts/sipp/uac_echo_pcap.xml, one media port per call)
keeps `--calls` calls up: each plays speech for `--call-seconds` and hangs up, and SIPp places the
next at once. Then `--short-calls` calls of `--short-seconds` each, as fast as `--calls` allow.
Prints, one line each: the RSS and open descriptors of the server's processes (summed over the
server and any worker process it started; each process on its own line when there are several)
at the start, at the end of every minute, at the end of the short calls and after everything
(calls over, idle), the highest RSS of each phase (sampled every second), their CPU, calls placed
and failed, RTP packets echoed (the server's own counters), ERROR lines and tracebacks in its log,
and RSS growth from the end of the first minute to the end of the long calls. The server runs on
jemalloc, as `voicegw serve` does by default; `--allocator system` shows why (docs/architecture.md,
"Memory"), `--malloc-conf` tries other jemalloc options.

    .venv/bin/python scripts/soak.py --calls 20 --minutes 2 --short-calls 100
    .venv/bin/python scripts/soak.py --calls 100 --minutes 30 --short-calls 1000 --json soak.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from voicegw.testing.soak import Soak, SoakPlan, soak  # noqa: E402


def report(result: Soak) -> None:
    print("\nsoak figures")
    for phase in result.phases:
        print(f"  {phase.name} calls: {phase.placed} placed, {phase.failed} failed, {phase.wall_s:.0f} s")
    print(f"  calls closed by the server: {result.calls_closed}")
    print(f"  RTP packets echoed: {result.packets_echoed} (received {result.packets_received})")
    start, after = result.samples[0], result.samples[-1]
    print(f"  RSS: start {start.rss_mb} MB, after {after.rss_mb} MB")
    for phase in result.phases:
        print(f"  RSS peak during the {phase.name} calls: {phase.peak_rss_mb} MB")
    if result.rss_growth_pct is not None:
        print(f"  RSS growth, end of minute 1 to end of the long calls: {result.rss_growth_pct:+.2f} %")
    print(f"  fds: start {start.fds}, after {after.fds} (back to baseline: {result.fds_back_to_baseline})")
    busy, cpu = after.at_s - start.at_s, after.cpu_s - start.cpu_s
    print(f"  CPU: {cpu:.1f} s over {busy:.0f} s ({100 * cpu / busy:.1f} % of one core)")
    print(f"  ERROR lines in the log: {result.error_lines}, tracebacks: {result.tracebacks}")
    for line in result.first_errors:
        print(f"    {line}")
    print(f"  server exited cleanly on SIGTERM: {result.exited_cleanly}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=20, help="concurrent calls")
    parser.add_argument("--minutes", type=float, default=2.0, help="how long the long calls go on")
    parser.add_argument("--call-seconds", type=float, default=20.0, help="length of each long call")
    parser.add_argument("--short-calls", type=int, default=100, help="short calls after the long ones")
    parser.add_argument("--short-seconds", type=float, default=1.0)
    parser.add_argument("--rate", type=int, default=20, help="new calls per second at most")
    parser.add_argument(
        "--allocator", choices=("jemalloc", "system"), default="jemalloc",
        help="the server's [server] allocator (system: glibc's malloc)",
    )  # fmt: skip
    parser.add_argument("--malloc-conf", help="jemalloc's MALLOC_CONF instead of the server's own")
    parser.add_argument(
        "--workers", type=int, help="the server's worker processes (0: calls in the server process)"
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    plan = SoakPlan(
        args.calls, args.minutes, args.call_seconds, args.short_calls, args.short_seconds, args.rate,
        args.allocator, args.malloc_conf, args.workers,
    )  # fmt: skip
    print(f"{plan}", flush=True)
    with tempfile.TemporaryDirectory(prefix="voicegw-soak-") as tmp:
        result = soak(plan, Path(tmp))
    report(result)
    if args.json:
        args.json.write_text(json.dumps(asdict(result), indent=1) + "\n")


if __name__ == "__main__":
    main()
