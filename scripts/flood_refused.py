"""What a stranger can make `voicegw serve --echo` do: floods refused with memory flat and nothing
sent out, and password guessing cut short by the lockout.

From 127.0.0.1 against servers with ``[access] allow = []`` (so 127.0.0.1 is a stranger), in
batches whose answers are awaited:

1. INVITEs (403), MESSAGEs (405), SUBSCRIBEs whose Contact names a third socket (405; that socket
   must receive nothing, no NOTIFY): per method, requests sent, responses by status, the rate and
   voicegw's resident memory before and after; then the datagrams the third socket got and the
   calls pjsua saw. ``--budget default`` keeps the default per-source budget, so most of the flood
   gets 503 from the rate limit instead.
2. ``--guesses`` wrong digest passwords (challenge, answer), then the right one: responses by
   status, how many answers voicegw actually checked (the rest met the lockout), and whether the
   right password got in.

    .venv/bin/python scripts/flood_refused.py    # 100k INVITEs and MESSAGEs, 20k SUBSCRIBEs, 1,000 guesses
    .venv/bin/python scripts/flood_refused.py --count 5000 --subscribes 2000 --guesses 100
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from voicegw.testing.harness import EchoServer  # noqa: E402
from voicegw.testing.raw_peer import MESSAGE, QUIET_S, SUBSCRIBE, Peer, rss_kb  # noqa: E402
from voicegw.testing.raw_sip import digest_answer  # noqa: E402

CLOSED = "[access]\nallow = []\n"
WIDE_BUDGET = "rate = 100000\nburst = 100000\n"
DIGEST = '[access.digest]\nrealm = "voicegw"\n[access.digest.users]\nalice = "wonderland"\n'
WARM_UP = 500


def floods(workdir: Path, args: argparse.Namespace) -> dict[str, Any]:
    report: dict[str, Any] = {"methods": {}}
    server = EchoServer("voicegw", workdir, config=CLOSED + (WIDE_BUDGET if args.budget == "wide" else ""))
    peer, victim = Peer(server.port), Peer(server.port)
    try:
        server.wait_ready()
        peer.flood("INVITE", WARM_UP, batch=args.batch)
        peer.flood("MESSAGE", WARM_UP, extra=MESSAGE, batch=args.batch)
        report["rss_start_kb"] = rss_kb(server.proc.pid)
        for method, count, extra in (
            ("INVITE", args.count, ""),
            ("MESSAGE", args.count, MESSAGE),
            ("SUBSCRIBE", args.subscribes, SUBSCRIBE),
        ):
            before = rss_kb(server.proc.pid)
            started = time.monotonic()
            statuses = peer.flood(method, count, extra=extra, batch=args.batch, contact_port=victim.port)
            report["methods"][method] = {
                "sent": count,
                "responses": dict(sorted(statuses.items())),
                "per_s": round(count / (time.monotonic() - started)),
                "rss_before_kb": before,
                "rss_after_kb": rss_kb(server.proc.pid),
            }
        report["late_or_repeated_responses"] = len(peer.collect())
        report["rss_end_kb"] = rss_kb(server.proc.pid)
        report["datagrams_to_contact_addresses"] = len(victim.collect(QUIET_S))
        report["calls_seen_by_pjsua"] = count_events(server, "call_incoming")
    finally:
        peer.close()
        victim.close()
        stop(server, report)
    return report


def guesses(workdir: Path, count: int) -> dict[str, Any]:
    report: dict[str, Any] = {"guesses": count}
    server = EchoServer("voicegw", workdir, config=CLOSED + WIDE_BUDGET + DIGEST)
    peer = Peer(server.port)
    uri = f"sip:echo@127.0.0.1:{server.port}"
    statuses: Counter[int] = Counter()

    def attempt(password: str) -> int:
        peer.send("INVITE")
        (first,) = peer.responses(1)
        if first.status != 401:
            return first.status
        answer = digest_answer(first.headers["www-authenticate"], "alice", password, uri=uri)
        peer.send("INVITE", extra=f"Authorization: {answer}\r\n")
        while (response := peer.responses(1)[0]).status < 200:
            pass
        return response.status

    try:
        server.wait_ready()
        started = time.monotonic()
        for n in range(count):
            statuses[attempt(f"guess-{n}")] += 1
        report["per_s"] = round(count / (time.monotonic() - started))
        report["responses"] = dict(sorted(statuses.items()))
        report["answers_checked"] = count_events(server, "digest_failed")
        report["lockouts"] = count_events(server, "digest_lockout")
        report["right_password_then"] = attempt("wonderland")
    finally:
        peer.close()
        stop(server, report)
    return report


def count_events(server: EchoServer, name: str) -> int:
    return sum(1 for event in server.log_events() if event.get("event") == name)


def stop(server: EchoServer, report: dict[str, Any]) -> None:
    report["exit_clean"] = server.stop()
    if not report["exit_clean"]:
        print(server.output()[-3000:], file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=100_000, help="INVITEs, and as many MESSAGEs")
    parser.add_argument("--subscribes", type=int, default=20_000)
    parser.add_argument("--guesses", type=int, default=1000, help="wrong digest passwords")
    parser.add_argument(
        "--batch", type=int, default=100, help="requests sent before their answers are awaited"
    )
    parser.add_argument("--budget", choices=("wide", "default"), default="wide")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        report = {"floods": floods(Path(workdir), args), "digest": guesses(Path(workdir), args.guesses)}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
