"""Coverage-guided fuzzing (atheris, libFuzzer) of voicegw's own parsers.

Targets (voicegw/testing/fuzz/parser_targets.py): sdp (parse, negotiate, answer), sip_message (the request
reader and INFO DTMF), digest (Authorization through the verifier), rtp (RTP, RTCP, RFC 4733
parsing), rtp_session (a call's receive path), twilio (Media Streams messages), openai (Realtime
server events through the stateful decoder). A crash is any exception but the parser's
documented error types, or one input running past --timeout seconds (a hang).

Each target runs in a child process (libFuzzer owns the process it runs in), seeded with
tests/fuzz/corpus/<target>/ and the wire fixtures of the other tests; what it learns goes to a
scratch corpus, never into the repository. Prints, per target, executions and crashes, and the
input and traceback of a crash (saved under --workdir).

    .venv/bin/python scripts/fuzz_parsers.py --target sdp --seconds 60
    .venv/bin/python scripts/fuzz_parsers.py --seconds 30               # every target in turn
    .venv/bin/python scripts/fuzz_parsers.py --seconds 30 --jobs 2      # two at a time
    .venv/bin/python scripts/fuzz_parsers.py --target rtp --runs 100000  # a number of inputs
    .venv/bin/python scripts/fuzz_parsers.py --target openai --seed 1234  # replay a printed seed

Exit status: 0 when no target crashed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

EXECUTIONS = re.compile(r"stat::number_of_executed_units: (\d+)")
SEED = re.compile(r"INFO: Seed: (\d+)")
CRASH_MARKS = ("Uncaught Python exception", "ERROR: libFuzzer", "==ERROR:", "ALARM: working on the last Unit")
MAX_LEN = 16384


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--target", action="append", help="a target name (repeatable; default: all)")
    parser.add_argument("--seconds", type=int, default=60, help="fuzzing time per target")
    parser.add_argument("--runs", type=int, help="stop each target after this many inputs instead")
    parser.add_argument("--timeout", type=int, default=10, help="seconds one input may take (else: a hang)")
    parser.add_argument("--seed", type=int, help="libFuzzer's seed, to replay a run (default: a fresh one)")
    parser.add_argument("--jobs", type=int, default=1, help="targets fuzzed at once (one core each)")
    parser.add_argument("--workdir", type=Path, help="keep scratch corpora and crash inputs here")
    parser.add_argument("--list", action="store_true", help="print the target names")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    return parser.parse_args()


def run_child(name: str, args: argparse.Namespace) -> None:
    """Inside the child: libFuzzer takes over this process and exits it when done."""
    import atheris

    with atheris.instrument_imports(include=["voicegw"]):
        from voicegw.testing.fuzz.parser_targets import TARGETS
    target = TARGETS[name]
    assert args.workdir is not None
    scratch = args.workdir / name / "corpus"
    scratch.mkdir(parents=True, exist_ok=True)
    seeds = [str(d) for d in (target.own_corpus, *target.corpus) if d.is_dir()]
    limit = f"-runs={args.runs}" if args.runs is not None else f"-max_total_time={args.seconds}"
    seed = [f"-seed={args.seed}"] if args.seed is not None else []
    libfuzzer = [
        sys.argv[0], limit, *seed, f"-timeout={args.timeout}", f"-max_len={MAX_LEN}", "-print_final_stats=1",
        "-rss_limit_mb=2048", f"-artifact_prefix={args.workdir / name}/", str(scratch), *seeds,
    ]  # fmt: skip
    atheris.Setup(libfuzzer, target.check)
    atheris.Fuzz()


def fuzz_target(name: str, args: argparse.Namespace, workdir: Path) -> tuple[bool, str]:
    """Run one target in a child: True when it found no crash, and its report to print."""
    command = [
        sys.executable, __file__, "--child", name, "--seconds", str(args.seconds),
        "--timeout", str(args.timeout), "--workdir", str(workdir),
    ]  # fmt: skip
    if args.runs is not None:
        command += ["--runs", str(args.runs)]
    if args.seed is not None:
        command += ["--seed", str(args.seed)]
    limit = args.seconds * 2 + 120 if args.runs is None else None
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=limit)
    output = proc.stdout + proc.stderr
    executions = sum(int(n) for n in EXECUTIONS.findall(output))
    artifacts = sorted(p for p in (workdir / name).glob("*-*") if p.is_file())
    crashed = proc.returncode != 0 or any(mark in output for mark in CRASH_MARKS) or bool(artifacts)
    seed = seed_found.group(1) if (seed_found := SEED.search(output)) else "?"
    report = [
        f"{name}: {executions} executions, {1 if crashed else 0} crashes (exit {proc.returncode}), "
        f"seed {seed} (replay: --target {name} --seed {seed} --seconds {args.seconds})"
    ]
    if crashed:
        # The traceback comes before libFuzzer's closing stats: print both, and the input itself,
        # since a CI machine's artifacts are gone by the time anyone reads its log.
        report.append(output[-1500:])
        if (traceback := output.find("Uncaught Python exception")) >= 0:
            report.append(output[traceback : traceback + 3000])
        for artifact in artifacts:
            data = artifact.read_bytes()
            report.append(f"  crash input: {artifact} ({len(data)} bytes): {data[:1500]!r}")
    return not crashed, "\n".join(report)


def main() -> None:
    args = parse_args()
    if args.child:
        run_child(args.child, args)
        return
    from voicegw.testing.fuzz.parser_targets import TARGETS

    if args.list:
        print("\n".join(TARGETS))
        return
    try:
        import atheris  # noqa: F401
    except ModuleNotFoundError:
        sys.exit("fuzz_parsers.py needs atheris, of the dev extra: bash scripts/setup.sh dev,local")
    names = args.target or list(TARGETS)
    unknown = [n for n in names if n not in TARGETS]
    if unknown:
        sys.exit(f"unknown target(s) {', '.join(unknown)}; known: {', '.join(TARGETS)}")
    with tempfile.TemporaryDirectory(prefix="fuzz-parsers-") as scratch:
        workdir = args.workdir or Path(scratch)
        # Each child is one process on one core: --jobs 2 fuzzes two targets at once on two cores.
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            results = []
            for ok, report in pool.map(lambda name: fuzz_target(name, args, workdir), names):
                print(report, flush=True)
                results.append(ok)
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
