"""Floods of requests a stranger sends `voicegw serve --echo`: all refused, memory flat, nothing sent out.

From 127.0.0.1 against a server with ``[access] allow = []`` (so 127.0.0.1 is a stranger), in
batches whose answers are awaited: INVITEs (403), MESSAGEs (405), SUBSCRIBEs whose Contact names a
third socket (405; that socket must receive nothing, no NOTIFY). Prints, per method, requests sent,
responses by status, the rate, and voicegw's resident memory before and after; then the datagrams
the third socket got and the calls pjsua saw. ``--budget default`` keeps the default per-source
budget, so most of the flood gets 503 from the rate limit instead.

    .venv/bin/python scripts/flood_refused.py       # 100k INVITEs, 100k MESSAGEs, 20k SUBSCRIBEs
    .venv/bin/python scripts/flood_refused.py --count 5000 --subscribes 2000
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.harness import EchoServer  # noqa: E402
from tests.sip.raw_peer import MESSAGE, QUIET_S, SUBSCRIBE, Peer, rss_kb  # noqa: E402

WIDE_BUDGET = "rate = 100000\nburst = 100000\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=100_000, help="INVITEs, and as many MESSAGEs")
    parser.add_argument("--subscribes", type=int, default=20_000)
    parser.add_argument(
        "--batch", type=int, default=100, help="requests sent before their answers are awaited"
    )
    parser.add_argument("--budget", choices=("wide", "default"), default="wide")
    args = parser.parse_args()

    config = "[access]\nallow = []\n" + (WIDE_BUDGET if args.budget == "wide" else "")
    report: dict[str, Any] = {"methods": {}}
    with tempfile.TemporaryDirectory() as workdir:
        server = EchoServer("voicegw", Path(workdir), config=config)
        server.wait_ready()
        peer, victim = Peer(server.port), Peer(server.port)
        try:
            peer.flood("INVITE", 500, batch=args.batch)  # warm-up
            peer.flood("MESSAGE", 500, extra=MESSAGE, batch=args.batch)
            report["rss_start_kb"] = rss_kb(server.proc.pid)
            for method, count, extra in (
                ("INVITE", args.count, ""),
                ("MESSAGE", args.count, MESSAGE),
                ("SUBSCRIBE", args.subscribes, SUBSCRIBE),
            ):
                before = rss_kb(server.proc.pid)
                started = time.monotonic()
                statuses = peer.flood(method, count, extra=extra, batch=args.batch, contact_port=victim.port)
                elapsed = time.monotonic() - started
                report["methods"][method] = {
                    "sent": count,
                    "responses": dict(sorted(statuses.items())),
                    "per_s": round(count / elapsed),
                    "rss_before_kb": before,
                    "rss_after_kb": rss_kb(server.proc.pid),
                }
            late = peer.collect()
            report["rss_end_kb"] = rss_kb(server.proc.pid)
            report["late_or_repeated_responses"] = len(late)
            report["datagrams_to_contact_addresses"] = len(victim.collect(QUIET_S))
            report["calls_seen_by_pjsua"] = sum(
                1 for event in server.log_events() if event.get("event") == "call_incoming"
            )
        finally:
            peer.close()
            victim.close()
            report["exit_clean"] = server.stop()
            report["exit_code"] = server.returncode
            if not report["exit_clean"]:
                print(server.output()[-3000:], file=sys.stderr)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
