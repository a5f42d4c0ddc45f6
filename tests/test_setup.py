"""scripts/setup.sh in a scratch copy of the repository, with a stand-in pjsua2 build: one line per
step, the full output in the log, and on a failing step the end of that log and what to do."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def scratch_repository(tmp_path: Path, build: str) -> tuple[Path, dict[str, str]]:
    """A folder with scripts/setup.sh, `build` as scripts/build_pjsua2.sh, a .venv whose python is
    ours, and a `dpkg` that finds every system package installed (no apt-get is run)."""
    root = tmp_path / "repo"
    (root / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "setup.sh", root / "scripts" / "setup.sh")
    (root / "scripts" / "build_pjsua2.sh").write_text(f"#!/usr/bin/env bash\nset -euo pipefail\n{build}\n")
    (root / ".venv" / "bin").mkdir(parents=True)
    (root / ".venv" / "bin" / "python").symlink_to(sys.executable)
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "dpkg").write_text("#!/bin/sh\nexit 0\n")
    (tools / "dpkg").chmod(0o755)
    return root, {**os.environ, "PATH": f"{tools}:{os.environ['PATH']}"}


def run_setup(root: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(root / "scripts" / "setup.sh")], capture_output=True, text=True, timeout=60, env=env
    )


def test_a_failing_step_prints_the_end_of_its_log_and_what_to_do(tmp_path: Path) -> None:
    root, env = scratch_repository(tmp_path, 'echo "compiling pjlib" >&2\necho "error: no swig" >&2\nexit 3')
    result = run_setup(root, env)
    log = root / ".venv" / "setup.log"
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0] == f"setup: the full output of every step goes to {log}"
    # Its time is whole seconds: on a loaded machine even a step with nothing to do may show 1 s.
    assert re.fullmatch(r"\[1/5\] system packages .* \.\.\. all present \(\d+ s\)", lines[1]), lines[1]
    assert lines[2].startswith("[2/5] Python virtual environment (.venv) ... present")
    assert lines[3] == "[3/5] building pjsua2 (about 10 min, cached afterwards) ... failed"
    assert "error: no swig" in result.stdout  # the end of the log
    assert "setup: the pjsua2 build failed" in result.stdout
    assert "the steps already done are skipped" in result.stdout
    assert "error: no swig" in log.read_text()


def test_a_failing_command_inside_a_step_stops_it(tmp_path: Path) -> None:
    # The build prints a wheel and fails: only `set -e` inside the step stops it from going on.
    root, env = scratch_repository(tmp_path, "echo /nowhere/pjsua2.whl\nexit 1")
    result = run_setup(root, env)
    assert result.returncode == 1
    assert "building pjsua2 (about 10 min, cached afterwards) ... failed" in result.stdout
    assert "installing voicegw" not in result.stdout
    assert "wheel: /nowhere" not in (root / ".venv" / "setup.log").read_text()
