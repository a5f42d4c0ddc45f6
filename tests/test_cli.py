"""`voicegw` as a user runs it: one-line errors and exit code 2, never a traceback."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from voicegw.audio.amd import AmdDecision, AmdVerdict
from voicegw.cli import amd_exit_status, build_config, main
from voicegw.server.amd import AmdOutcome

ROOT = Path(__file__).resolve().parents[1]


def run_voicegw(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "voicegw", *args], cwd=ROOT, capture_output=True, text=True, timeout=60
    )


def test_help_lists_serve_options() -> None:
    result = CliRunner().invoke(main, ["serve", "--help"])
    assert result.exit_code == 0
    for option in ("--listen", "--echo", "--agent", "--config", "--rtp-ports"):
        assert option in result.output


def test_command_line_overrides_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[sip]\nlisten = '127.0.0.1:5080'\n[rtp]\nports = '30000-30100'\n")
    config = build_config(path, listen="127.0.0.1:5999", echo=True, rtp_ports="31000-31010")
    assert (config.sip.port, config.sip.rtp_ports, config.echo) == (5999, (31000, 31010), True)
    assert config.workers is None  # one per core
    path.write_text("[server]\nworkers = 3\n")
    assert build_config(path).workers == 3
    assert build_config(path, workers=0).workers == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["serve", "--listen", "127.0.0.1:99999"], "voicegw: --listen: port 99999 is out of range"),
        (["serve", "--rtp-ports", "5-3"], "voicegw: --rtp-ports: 5-3 must hold"),
        (["serve", "--agent", "nonexistent_module:agent"], "cannot import module 'nonexistent_module'"),
        (["serve", "--agent", "voicegw:no_such_agent"], "module 'voicegw' has no attribute 'no_such_agent'"),
        (["serve", "--agent", "voicegw"], "'voicegw' is not 'module:attribute'"),
    ],
)
def test_bad_input_fails_at_start_with_one_line(args: list[str], message: str) -> None:
    result = run_voicegw(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.timeout(60)
def test_sip_port_in_use_fails_at_start_with_one_line() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        result = run_voicegw("serve", "--echo", "--listen", f"127.0.0.1:{port}")
    assert result.returncode == 2
    assert f"voicegw: SIP could not start on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_python_dash_m_is_the_same_command() -> None:
    result = run_voicegw("--version")
    assert result.returncode == 0 and "0.1.0" in result.stdout


def test_call_help_lists_its_options_and_exit_statuses() -> None:
    result = CliRunner().invoke(main, ["call", "--help"])
    assert result.exit_code == 0
    for option in (
        "SIP_URI", "--agent", "--config", "--from", "--timeout", "--account", "--header",
        "--amd", "--on-machine", "--voicemail-message",
    ):  # fmt: skip
        assert option in result.output
    lines = [line.strip() for line in result.output.splitlines()]
    for line in (
        "3  busy",
        "4  no answer",
        "5  --amd: a machine answered, the voicemail was left",
        "6  --amd: a machine answered, no voicemail was left",
        "7  --amd: could not tell who answered; the agent talked",
    ):
        assert line in lines, result.output


@pytest.mark.parametrize(
    ("verdict", "left", "status"),
    [("human", False, 0), ("unknown", False, 7), ("machine", True, 5), ("machine", False, 6)],
)
def test_amd_outcomes_have_their_exit_status(verdict: AmdVerdict, left: bool, status: int) -> None:
    outcome = AmdOutcome(AmdDecision(verdict, 1500, "why"), voicemail_left=left)
    assert amd_exit_status(outcome) == status


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--account", "nope"], "voicegw: --account: no account 'nope' in the configuration"),
        (["--header", "no colon"], "voicegw: --header: 'no colon' is not 'Name: value'"),
        (["--agent", "nonexistent_module:agent"], "cannot import module 'nonexistent_module'"),
        (["--on-machine", "hangup"], "voicegw: --on-machine and --voicemail-message need --amd"),
        (
            ["--amd", "--on-machine", "hangup", "--voicemail-message", "Hi"],
            "voicegw: --voicemail-message needs --on-machine leave_voicemail, not hangup",
        ),
        (["--amd", "--voicemail-message", " "], "voicegw: --voicemail-message is empty"),
    ],
)
def test_call_bad_input_fails_before_dialling_with_one_line(args: list[str], message: str) -> None:
    agent = [] if "--agent" in args else ["--agent", "voicegw.testing.agents:greeter"]
    result = run_voicegw("call", "sip:nobody@127.0.0.1:9", *agent, *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
