"""Mutation fuzzer for voicegw's SIP listener (UDP, TCP, TLS) during live echo calls.

Seeds: a valid request of every method (INVITE with SDP, OPTIONS, REGISTER, SUBSCRIBE, MESSAGE,
BYE, CANCEL, ACK, INFO, UPDATE, REFER, NOTIFY, PUBLISH, PRACK, an unknown one) and our own
message for each class of case of RFC 4475 (voicegw/testing/fuzz/sip_seeds.py). Mutations: bit flips,
byte insertions and deletions, a header repeated up to 1,000 times, huge headers, the blank
line dropped, truncation, two messages spliced, boundary numbers in Content-Length, CSeq,
Max-Forwards, Expires and ports, invalid UTF-8, NULs (voicegw/testing/fuzz/sip_mutate.py).

By default it starts `voicegw serve --echo` itself, inside a network namespace of its own with
only the loopback interface (`unshare -n`, as root): a mutated Via, Contact or Route can name
any address, and whatever the server sends there must not leave the machine. It places
`--calls` echo calls, measures their echo for `--phase` seconds, sends `--count` messages at
`--rate` per second while an OPTIONS probe runs every 0.25 s, and measures again. It prints
the seed first (`--seed` replays a run's messages exactly), then a JSON report: messages sent,
responses by status code, requests the server sent, OPTIONS probes answered, each call's echo
ratio (share of its 20 ms frames that came back) before, during and after, the server's CPU and
RSS before and after, and a crash (exit code or signal). A crash is minimised against fresh
servers (delta debugging) and saved under tests/sip/fuzz_cases/, which
tests/fuzz/test_fuzz_cases.py replays.

    .venv/bin/python scripts/fuzz_sip.py --count 20000                      # UDP + TCP
    .venv/bin/python scripts/fuzz_sip.py --count 1000000 --calls 2 --tls    # + TLS
    .venv/bin/python scripts/fuzz_sip.py --seed 1234 --count 5000           # replay a run
    .venv/bin/python scripts/fuzz_sip.py --target 127.0.0.1:5080 --pid 4242 # a running server

Exit status: 0 clean, 1 the server crashed, 2 it survived but a call or a probe suffered.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from voicegw.testing.fuzz.sip_fuzzer import CASES_DIR, FuzzOptions, SipFuzzer, report_json  # noqa: E402
from voicegw.testing.fuzz.target import Target  # noqa: E402

INSIDE_NAMESPACE = "VOICEGW_FUZZ_NAMESPACE"
SERVER_PORT = 5060
"""The server's port inside the namespace (free there): fixed, so a seed replays the same bytes."""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seed", type=int, help="replay this run (default: a fresh seed, printed)")
    parser.add_argument("--count", type=int, default=20_000, help="messages to send")
    parser.add_argument("--rate", type=float, default=2500.0, help="messages per second (at most)")
    parser.add_argument("--calls", type=int, default=1, help="live echo calls during the run")
    parser.add_argument("--phase", type=float, default=4.0, help="seconds of echo measured before and after")
    parser.add_argument("--batch", type=int, default=500, help="messages between two looks at the server")
    parser.add_argument("--transports", default="UDP,TCP", help="comma-separated: UDP, TCP, TLS")
    parser.add_argument(
        "--tls", action="store_true", help="start the server with a TLS listener and fuzz it too"
    )
    parser.add_argument(
        "--config", type=Path, help="more TOML for the server it starts (not a [sip] table with --tls)"
    )
    parser.add_argument("--target", help="HOST:PORT of a running server (no restart, no minimising)")
    parser.add_argument("--pid", type=int, help="with --target: its process, for CPU and RSS")
    parser.add_argument("--no-minimise", action="store_true", help="on a crash, do not minimise")
    parser.add_argument("--budget", type=int, default=300, help="fresh-server tests the minimiser may spend")
    parser.add_argument("--cases", type=Path, default=CASES_DIR, help="where a minimised crash is saved")
    parser.add_argument("--json", type=Path, help="also write the report to this file")
    parser.add_argument("--workdir", type=Path, help="keep the server's log and files here")
    parser.add_argument(
        "--no-namespace", action="store_true", help="run here, not in a new network namespace"
    )
    return parser.parse_args()


def enter_namespace() -> None:
    """Run this script again in a network namespace of its own, with only loopback up."""
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("ip") is None:
        sys.exit("fuzz_sip.py needs root, unshare and ip for its network namespace (or --no-namespace)")
    os.environ[INSIDE_NAMESPACE] = "1"
    os.execvp(
        "unshare",
        ["unshare", "-n", "--", "sh", "-c", 'ip link set lo up && exec "$0" "$@"', sys.executable, *sys.argv],
    )


def main() -> None:
    args = parse_args()
    if args.target is None and not args.no_namespace and os.environ.get(INSIDE_NAMESPACE) != "1":
        if args.seed is None:
            # Chosen and printed before the namespace, so the first line is the same either way.
            args.seed = secrets.randbits(32)
            sys.argv += ["--seed", str(args.seed)]
        print(f"seed {args.seed}", flush=True)
        enter_namespace()
    seed = args.seed if args.seed is not None else secrets.randbits(32)
    if os.environ.get(INSIDE_NAMESPACE) != "1":
        print(f"seed {seed}", flush=True)
    transports = tuple(t.strip().upper() for t in args.transports.split(",") if t.strip())
    if args.tls and "TLS" not in transports:
        transports += ("TLS",)
    options = FuzzOptions(
        seed=seed, count=args.count, rate=args.rate, transports=transports, calls=args.calls,
        phase_s=args.phase, batch=args.batch, minimise=not args.no_minimise,
        minimise_budget=args.budget, cases_dir=args.cases,
    )  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="fuzz-sip-") as scratch:
        workdir = args.workdir or Path(scratch)
        workdir.mkdir(parents=True, exist_ok=True)
        if args.target:
            host, _, port = args.target.rpartition(":")
            if host not in ("127.0.0.1", "localhost"):
                sys.exit("--target must be on 127.0.0.1: mutated messages may make it send anywhere")
            target = Target(workdir, port=int(port), external=True, pid=args.pid)
        else:
            port = SERVER_PORT if os.environ.get(INSIDE_NAMESPACE) == "1" else 0
            config = args.config.read_text() if args.config else ""
            target = Target(workdir, port=port, tls=args.tls, config=config)
        report = SipFuzzer(target, options, log=lambda line: print(line, flush=True)).run()
    text = report_json(report)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    sys.exit(0 if report.ok else 1 if report.crash else 2)


if __name__ == "__main__":
    main()
