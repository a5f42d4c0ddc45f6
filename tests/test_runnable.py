"""Every example and script starts after the README's set-up (its default extras): `--help` in a
subprocess where the modules of other extras cannot be imported, with no traceback; and one that
needs an extra says which, in one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROGRAMS = sorted([*ROOT.glob("scripts/*.py"), *ROOT.glob("examples/**/*.py")])
NOT_INSTALLED_BY_DEFAULT = ("pytest", "_pytest", "pytest_asyncio", "pytest_timeout", "atheris", "sounddevice")
"""The dev and audio extras: scripts/setup.sh installs "local,app" unless told otherwise."""

RUN_WITHOUT = """
import os, runpy, sys
blocked = set(sys.argv[1].split(","))
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, Block())
sys.argv = sys.argv[2:]
sys.path[0] = os.path.dirname(sys.argv[0])
runpy.run_path(sys.argv[0], run_name="__main__")
"""
"""Runs a program as `python PROGRAM ARGS` would, with the modules named in argv[1] missing."""


def run_without(blocked: tuple[str, ...], program: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", RUN_WITHOUT, ",".join(blocked), str(program), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_every_program_is_checked() -> None:
    names = {path.relative_to(ROOT).as_posix() for path in PROGRAMS}
    assert {"scripts/bench_latency.py", "examples/realtime/app/server.py", "scripts/soak.py"} <= names


@pytest.mark.parametrize("program", PROGRAMS, ids=lambda path: path.relative_to(ROOT).as_posix())
def test_help_runs_with_the_default_extras(program: Path) -> None:
    result = run_without(NOT_INSTALLED_BY_DEFAULT, program, "--help")
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert result.returncode == 0, result.stderr[-3000:]
    if "argparse" in program.read_text():
        assert "usage:" in result.stdout


@pytest.mark.parametrize(
    "program",
    [ROOT / "examples/realtime/app/server.py", ROOT / "examples/realtime/twilio_sip/openai_connector.py"],
)
def test_an_example_without_its_extra_names_it_in_one_line(program: Path) -> None:
    result = run_without(("aiohttp",), program, "--help")
    assert result.returncode == 1
    assert result.stderr.strip() == "this example needs aiohttp: .venv/bin/pip install 'voicegw[app]'"


def test_the_parser_fuzzer_without_the_dev_extra_names_it_in_one_line() -> None:
    result = run_without(("atheris",), ROOT / "scripts/fuzz_parsers.py", "--seconds", "1")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "fuzz_parsers.py needs atheris, of the dev extra: bash scripts/setup.sh dev,local"
    )
