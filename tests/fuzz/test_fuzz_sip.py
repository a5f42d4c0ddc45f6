"""The bounded SIP fuzz pass of every CI run: 20,000 mutated messages over UDP, TCP and TLS with a
fresh seed at `voicegw serve --echo` during a live echo call (scripts/fuzz_sip.py, in a network
namespace of its own). It fails on a crash, a pjsip assertion, an OPTIONS probe left unanswered,
the call's echo falling during or after the fuzzing, or an unclean exit; the failure message
gives the command that replays the run.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
COUNT = int(os.environ.get("VOICEGW_FUZZ_SIP_COUNT", "20000"))


@pytest.mark.timeout(COUNT // 100 + 240)
def test_mutated_sip_messages_harm_neither_the_server_nor_its_call(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.fail("the SIP fuzzer runs the server in a network namespace of its own: run as root")
    seed = secrets.randbits(32)
    replay = f".venv/bin/python scripts/fuzz_sip.py --seed {seed} --count {COUNT} --tls"
    print(f"SIP fuzz seed {seed}; replay: {replay}")
    report_path = tmp_path / "report.json"
    proc = subprocess.run(
        [sys.executable, "scripts/fuzz_sip.py", "--seed", str(seed), "--count", str(COUNT), "--tls",
         "--no-minimise", "--json", str(report_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=COUNT // 100 + 180,
    )  # fmt: skip
    assert report_path.exists(), f"seed {seed}, replay: {replay}\n{proc.stdout[-4000:]}{proc.stderr[-4000:]}"
    report = json.loads(report_path.read_text())
    summary = {k: v for k, v in report.items() if k not in ("responses", "crash")}
    print(json.dumps(summary))
    assert report["total_sent"] == COUNT and report["ok"], (
        f"seed {seed}, replay: {replay}\n{json.dumps(report, indent=1)[-6000:]}"
    )
    assert proc.returncode == 0
