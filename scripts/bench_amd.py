#!/usr/bin/env python3
"""Answering-machine detection on a synthetic set of callees: accuracy, decision time, beep timing.

Makes the set itself (voicegw/testing/callees.py: espeak-ng pickups and voicemail greetings in six
voices and speeds, with and without line noise and a beep at 500-1,900 Hz, and silent lines),
runs `AnsweringMachineDetector` over each recording as a call would feed it (20 ms frames, from
the answer), and prints the accuracy, the decision time p50/p95 for people and machines (stream
time from the answer: the figures do not depend on the machine's load), the error of the beep's
end, the delay from the end of the greeting to the moment to speak when there is no beep, and
every recording decided wrongly.

    .venv/bin/python scripts/bench_amd.py
    .venv/bin/python scripts/bench_amd.py --markdown     # the README's table
    .venv/bin/python scripts/bench_amd.py --variants 0   # the tuning set alone
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from voicegw.audio.amd import AmdDecision, AmdSettings, AnsweringMachineDetector, VoicemailReady  # noqa: E402
from voicegw.audio.format import BYTES_PER_SAMPLE, FRAME_MS  # noqa: E402
from voicegw.testing.callees import RATE, Callee, callee_set  # noqa: E402


@dataclass(frozen=True)
class Outcome:
    callee: Callee
    decision: AmdDecision | None
    ready: VoicemailReady | None
    fed_ms: int
    """Audio the detector took before it was done."""

    cpu_s: float

    @property
    def correct(self) -> bool:
        return self.decision is not None and self.decision.verdict == self.callee.expected


def detect(callee: Callee, settings: AmdSettings) -> Outcome:
    detector = AnsweringMachineDetector(RATE, settings)
    frame = RATE * FRAME_MS // 1000 * BYTES_PER_SAMPLE
    started = time.process_time()
    for start in range(0, len(callee.pcm), frame):
        detector.feed(callee.pcm[start : start + frame])
        if detector.done:
            break
    cpu_s = time.process_time() - started
    return Outcome(callee, detector.decision, detector.ready, detector.position_ms, cpu_s)


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def figures(outcomes: list[Outcome]) -> dict[str, str]:
    """The headline figures, as text."""
    correct = sum(o.correct for o in outcomes)
    share = correct / len(outcomes)
    rows: dict[str, str] = {
        "recordings": f"{len(outcomes)}",
        "correct (target ≥ 95 %)": f"{correct}/{len(outcomes)} ({share:.1%})",
    }
    for kind in ("human", "machine", "unknown"):
        of_kind = [o for o in outcomes if o.callee.expected == kind]
        right = sum(o.correct for o in of_kind)
        rows[f"{kind} recordings decided right"] = f"{right}/{len(of_kind)}"
    for kind in ("human", "machine"):
        times = [
            float(o.decision.at_ms)
            for o in outcomes
            if o.correct and o.callee.expected == kind and o.decision
        ]
        target = " (target p95 ≤ 3000)" if kind == "human" else ""
        longest = max(times, default=float("nan"))
        rows[f"{kind} decision ms after the answer, p50 / p95 / max{target}"] = (
            f"{percentile(times, 50):.0f} / {percentile(times, 95):.0f} / {longest:.0f}"
        )
    beep_errors = [
        abs(o.ready.at_ms - o.callee.beep_end_ms)
        for o in outcomes
        if o.ready is not None and o.ready.cause == "beep" and o.callee.beep_end_ms is not None
    ]
    beeps = sum(o.callee.beep_end_ms is not None for o in outcomes)
    rows["beeps found (end within 50 ms)"] = f"{sum(e <= 50 for e in beep_errors)}/{beeps}"
    rows["beep end error ms, mean / max"] = (
        f"{statistics.fmean(beep_errors):.1f} / {max(beep_errors):.0f}" if beep_errors else "n/a"
    )
    waits = [
        o.ready.at_ms - o.callee.greeting_end_ms
        for o in outcomes
        if o.ready is not None and o.ready.cause != "beep" and o.callee.greeting_end_ms is not None
    ]
    rows["no beep: ms from the greeting's end to speaking, mean"] = (
        f"{statistics.fmean(waits):.0f}" if waits else "n/a"
    )
    frames = sum(o.fed_ms for o in outcomes) / FRAME_MS
    rows["detector CPU µs per 20 ms frame (load-dependent)"] = (
        f"{sum(o.cpu_s for o in outcomes) / frames * 1e6:.0f}"
    )
    return rows


def confusions(outcomes: list[Outcome]) -> list[str]:
    lines = []
    for o in outcomes:
        wrong_beep = (
            o.callee.beep_end_ms is not None
            and o.correct
            and (o.ready is None or o.ready.cause != "beep" or abs(o.ready.at_ms - o.callee.beep_end_ms) > 50)
        )
        if o.correct and not wrong_beep:
            continue
        said = (
            f"{o.decision.verdict} at {o.decision.at_ms} ms ({o.decision.cause})" if o.decision else "nothing"
        )
        ready = f"; ready: {o.ready.cause} at {o.ready.at_ms} ms" if o.ready else ""
        beep = f", beep ends at {o.callee.beep_end_ms} ms" if o.callee.beep_end_ms else ""
        lines.append(f"{o.callee.name}: expected {o.callee.expected}{beep}, got {said}{ready}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", action="store_true", help="print the figures as a Markdown table")
    parser.add_argument(
        "--variants",
        type=int,
        nargs="+",
        default=[0, 1, 2, 3],
        help="sets to run: 0 is the one the thresholds were tuned on, the others pair the same "
        "texts with other voices, timings, beeps and noise (a check of the tuning)",
    )
    parser.add_argument("--workdir", type=Path, help="keep the synthesized speech here (default: a temp dir)")
    args = parser.parse_args()
    settings = AmdSettings()
    columns: dict[str, dict[str, str]] = {}
    wrong: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        for variant in args.variants:
            started = time.perf_counter()
            callees = callee_set(args.workdir or Path(tmp), variant)
            made_s = time.perf_counter() - started
            outcomes = [detect(callee, settings) for callee in callees]
            name = f"set {variant}" + (" (tuning)" if variant == 0 else "")
            columns[name] = figures(outcomes)
            wrong += [f"{name}: {line}" for line in confusions(outcomes)]
            if not args.markdown:
                print(f"{name}: made in {made_s:.1f} s")
    rows = list(next(iter(columns.values())))
    if args.markdown:
        print(f"| `scripts/bench_amd.py` | {' | '.join(columns)} |")
        print(f"|---|{'---|' * len(columns)}")
        for row in rows:
            print(f"| {row} | {' | '.join(column[row] for column in columns.values())} |")
    else:
        width = max(map(len, rows))
        for name, column in columns.items():
            print(f"\n{name}")
            for row in rows:
                print(f"  {row:<{width}}  {column[row]}")
    print("\nWrong decisions and missed beeps:" if wrong else "\nNo wrong decision, no missed beep.")
    for line in wrong:
        print(f"- {line}")


if __name__ == "__main__":
    main()
