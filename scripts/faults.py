"""Faults and what a caller notices of each: prints one line per fault.

Model faults (`voicegw serve --agent` on the OpenAI protocol, played by the local test server):
the handshake hanging, refused (HTTP 503), the connection dropping once, dropping for good, the
model stalling mid-response, and a task of ours raising; then the embedded model with its LLM step
blocked (`local_inference_hangs`) or computing without end (`local_inference_spins`), each after
one call that warms it up. For each: answered or refused (and the
status), the model's audio heard, the longest silence (dead air), whether the apology was heard,
when the call ended after the answer, and the server's log line naming the cause. Then the caller
vanishing (SIGKILL, no BYE: the media timeout ends the call) and SIGTERM with calls up (they
finish, a new INVITE gets 503 with Retry-After, the process exits 0).

    .venv/bin/python scripts/faults.py
    .venv/bin/python scripts/faults.py --only stall_mid_response --json faults.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from voicegw.testing.faults import FAULTS, caller_vanishes, play_fault, sigterm_with_live_calls  # noqa: E402

SERVER_FAULTS = ("caller_vanishes", "sigterm_with_live_calls")


def model_line(summary: dict[str, Any]) -> str:
    if not summary["answered"]:
        heard = f"refused {summary['final_status']} before answering"
    else:
        heard = (
            f"answered; model audio {summary['tone_heard_s']:.1f} s, longest silence "
            f"{summary['longest_silence_s']:.2f} s, apology {'yes' if summary['apology'] else 'no'}, "
            f"ended {summary['ended_after_answer_s']:.1f} s after the answer"
        )
    cause = next((e for e in summary["log"] if e["event"] == "model_fault"), None)
    logged = f"{cause['event']} cause={cause['cause']}: {cause['detail']}" if cause else "(no fault logged)"
    replaced = summary["restarted_worker"]
    worker = "" if replaced is None else f"; worker replaced {'yes' if replaced else 'no'}"
    if (health := summary["health_after"]) is not None:
        worker += f"; /health after the call: {health['http_status']} {health['status']}"
        worker += f" (model {health.get('model', 'ok')})"
    return f"{summary['fault']:<32} {heard}; log: {logged}; ERROR lines {summary['error_lines']}{worker}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", action="append", choices=[*FAULTS, *SERVER_FAULTS], help="repeatable")
    parser.add_argument(
        "--media-timeout", type=float, default=5.0, help="for caller_vanishes (default 30 in serve)"
    )
    parser.add_argument("--live-calls", type=int, default=5, help="calls up at SIGTERM")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    chosen = args.only or [*FAULTS, *SERVER_FAULTS]
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="voicegw-faults-") as tmp:
        for name in chosen:
            workdir = Path(tmp) / name
            if name == "caller_vanishes":
                result = caller_vanishes(workdir, args.media_timeout)
                print(
                    f"{name:<32} hung up (BYE) {result['hung_up_after_kill_s']} s after the kill "
                    f"(media_timeout {args.media_timeout:g} s), over after {result['ended_after_kill_s']} s, "
                    f"reason {result['end_reason']!r}; "
                    f"log: {result['log']}; ERROR lines {result['error_lines']}",
                    flush=True,
                )
            elif name == "sigterm_with_live_calls":
                result = sigterm_with_live_calls(workdir, args.live_calls, 6.0)
                print(
                    f"{name:<32} {result['finished_by_caller']}/{result['calls']} calls finished by their "
                    f"callers (all played: {result['all_played']}); late INVITE: {result['late_invite']}; "
                    f"exit {result['exit_code']} after {result['exited_after_s']} s",
                    flush=True,
                )
            else:
                result = asyncio.run(play_fault(name, workdir)).summary()
                print(model_line(result), flush=True)
            results.append(result)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
