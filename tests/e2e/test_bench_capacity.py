"""scripts/bench_capacity.py runs end to end, in both modes, and prints complete figures.

A smoke run with a handful of short calls, so that the benchmark cannot rot between the runs
that matter; its figures are not checked against targets (tests make no timed assertions).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from voicegw.testing.harness import ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]
CALLS = 3


def test_bench_capacity_smoke_in_both_modes(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    command = [
        sys.executable, str(ROOT / "scripts" / "bench_capacity.py"), "--mode", "both", "--target", "both",
        "--calls", str(CALLS), "--duration", "12", "--json", str(out), "--markdown",
    ]  # fmt: skip
    # 12 s: the steady window then holds a talkspurt's start of every agent call, which is what
    # the outbound gateway latency times.
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=280)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    results = {(r["mode"], r["target"]): r for r in json.loads(out.read_text())}
    assert set(results) == {("echo", "voicegw"), ("echo", "baseline"), ("agent", "voicegw")}
    for result in results.values():
        assert result["calls_ok"] == CALLS and result["calls_failed"] == 0, result
        # Every echo is heard; an agent may still be waiting for its model on a busy machine.
        assert result["calls_audible"] >= (CALLS if result["mode"] == "echo" else 1), result
        assert result["cpu_percent"] > 0 and result["rss_mb"] > 0, result
        assert result["interval_p50_ms"] > 0 and result["setup_p95_ms"] >= result["setup_p50_ms"] >= 0
        # Only the short run's own remark: no missing figure, no unclean server exit.
        assert all(note.startswith("steady window only") for note in result["notes"]), result
    for key in ("echo", "voicegw"), ("agent", "voicegw"):
        assert results[key]["event_loop"] == "uvloop" and results[key]["packets_out_per_s"] > 0
    agent = results["agent", "voicegw"]
    assert agent["latency_in_p50_ms"] > 0 and agent["latency_out_p50_ms"] > 0, agent
    assert f"echo N={CALLS}: voicegw CPU per call = " in run.stdout
    assert "| mode | server | loop | N |" in run.stdout and "Machine: " in run.stdout
