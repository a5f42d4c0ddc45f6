"""Bad configurations never start: `voicegw serve --check` (and `serve` itself) gives one line
naming the key and exit status 2; a good one passes the check and serves nothing."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from voicegw.cli import EXIT_CONFIG, main
from voicegw.server.checks import loadable_certificate, more_than, validate, within
from voicegw.server.config import ConfigError, ServerConfig
from voicegw.sip.ua import PJSUA_MAX_CALLS
from voicegw.testing.harness import self_signed_certificate

ROOT = Path(__file__).resolve().parents[2]
MAX = PJSUA_MAX_CALLS


@pytest.fixture(scope="module")
def pem(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A certificate and its key, another key, and a file that is no PEM at all."""
    directory = tmp_path_factory.mktemp("pem")
    cert, key = self_signed_certificate(directory)
    (directory / "other").mkdir()
    _, other_key = self_signed_certificate(directory / "other")
    garbage = directory / "garbage.pem"
    garbage.write_text("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
    return {"cert": cert, "key": key, "other_key": other_key, "garbage": garbage}


def tls(cert: object, key: object, port: int = 5061) -> str:
    return f"[sip]\nlisten = '127.0.0.1:5080'\ntls_port = {port}\ntls_cert = '{cert}'\ntls_key = '{key}'\n"


# (TOML, the start of the one line it must give); {cert}, {key}, {other_key}, {garbage} are filled
# in; MAX is the build's call limit. The first seven started and kept running before these checks.
BAD = [
    (tls("/nonexistent/cert.pem", "{key}"), "voicegw: sip.tls_cert: no such file '/nonexistent/cert.pem'"),
    (tls("{cert}", "/nonexistent/key.pem"), "voicegw: sip.tls_key: no such file '/nonexistent/key.pem'"),
    ("[sip]\ntls_port = 5061\n", "voicegw: sip.tls_cert: sip.tls_port needs a certificate"),
    ("[rtp]\nmedia_timeout = -5\n", "voicegw: rtp.media_timeout: -5 is out of range (must be more"),
    ("[server]\ndrain_timeout = -1\n", "voicegw: server.drain_timeout: -1 is out of range"),
    ("[sip]\nanswer_delay = -3\n", "voicegw: sip.answer_delay: -3 is out of range (must be at least 0"),
    ("[sip]\nmax_calls=100000\n", f"voicegw: sip.max_calls: 100000 is out of range (must be within 1-{MAX}:"),
    (tls("{garbage}", "{key}"), "voicegw: sip.tls_cert/sip.tls_key:"),
    (tls("{cert}", "{other_key}"), "voicegw: sip.tls_cert/sip.tls_key:"),
    (tls("{cert}", "{garbage}"), "voicegw: sip.tls_cert/sip.tls_key:"),
    ("[sip]\ntls_cert = '{cert}'\ntls_key = '{key}'\n", "voicegw: sip.tls_cert: given without sip.tls_port"),
    ("[sip]\ntls_key = '{key}'\n", "voicegw: sip.tls_key: given without sip.tls_port"),
    (tls("{cert}", "{key}", 70000), "voicegw: sip.tls_port: 70000 is out of range"),
    (tls("{cert}", "{key}", 5080), "voicegw: sip.tls_port: 5080 is the SIP port"),
    ("[sip]\npjsip_log_level = 9\n", "voicegw: sip.pjsip_log_level: 9 is out of range (must be within 0-6)"),
    ("[sip]\nmax_calls = 0\n", "voicegw: sip.max_calls: must be at least 1"),
    ("[sip]\nlisten = '127.0.0.1:99999'\n", "voicegw: sip.listen: port 99999 is out of range"),
    ("[rtp]\nmedia_timeout = 0\n", "voicegw: rtp.media_timeout: 0 is out of range"),
    ("[rtp]\nports = '30010-30000'\n", "voicegw: rtp.ports: 30010-30000 must hold"),
    ("[server]\nno_input_timeout = -2\n", "voicegw: server.no_input_timeout: must be more than 0 seconds"),
    ("[server]\nmax_call_duration = 0\n", "voicegw: server.max_call_duration: must be more than 0 seconds"),
    ("[server]\nresponse_timeout = 0\n", "voicegw: server.response_timeout: 0 is out of range"),
    ("[server]\nworkers = -1\n", "voicegw: server.workers: -1 is out of range (must be within 0-64)"),
    ("[server]\nworkers = 'many'\n", "voicegw: server.workers:"),
    ("[server]\nlog_level = 'loud'\n", "voicegw: server.log_level: 'loud' is not one of debug"),
    ("[server]\nhttp = '127.0.0.1:0'\n", "voicegw: server.http: port 0 is out of range"),
    ("[server]\ntranscripts_dir = '{cert}'\n", "voicegw: server.transcripts_dir: '{cert}' is not a folder"),
    ("[model]\nname = 'local'\nllm_model_path = '/nonexistent/model.gguf'\n",
     "voicegw: model.llm_model_path: no such file '/nonexistent/model.gguf'"),
    ("[server]\nrecord = true\n", "voicegw: server.record: true needs server.recordings_dir"),
    ("[[accounts]]\nuri = 'sip:a@pbx'\nexpires = 0\n", "voicegw: accounts[0].expires: 0 is not"),
    ("[[routes]]\nagent = 'no_such_module:agent'\n", "voicegw: routes[0].agent: cannot import"),
    ("[server.webhooks]\nurls = ['ftp://hooks.example']\nsecret = 's'\n",
     "voicegw: server.webhooks.urls: 'ftp://hooks.example' is not an http:// or https:// URL"),
    ("[server.webhooks]\nurls = ['http://:80/x']\nsecret = 's'\n",
     "voicegw: server.webhooks.urls: 'http://:80/x' has no host"),
    ("[server.webhooks]\nurls = ['http://hooks.example:99999/']\nsecret = 's'\n",
     "voicegw: server.webhooks.urls: 'http://hooks.example:99999/': Port out of range"),
    ("[server.webhooks]\nurls = ['https://hooks.example/calls']\n",
     "voicegw: server.webhooks.secret: missing"),
    ("[server.webhooks]\nsecret = 's'\n", "voicegw: server.webhooks.urls: give at least one URL"),
    ("[server.webhooks]\nurls = ['http://h/']\nsecret = 's'\ntimeout = 0\n",
     "voicegw: server.webhooks.timeout: 0 is out of range"),
    ("[server.webhooks]\nurls = ['http://h/']\nsecret = 's'\nretries = 50\n",
     "voicegw: server.webhooks.retries: 50 is out of range (must be within 0-10)"),
    ("[server.webhooks]\nurls = ['http://h/']\nsecret = 's'\nsigned = true\n",
     "voicegw: [server.webhooks]: unknown key 'signed'"),
    ("[model]\nname = 'openai'\nsession_limit = 0\n", "voicegw: model.session_limit: 0 is out of range"),
    ("[server]\ncdr_file = '/'\n", "voicegw: server.cdr_file: '/' is a folder, not a file"),
]  # fmt: skip


def fill(text: str, pem: dict[str, Path]) -> str:
    return text.format(**{name: str(path) for name, path in pem.items()})


@pytest.mark.parametrize(("text", "line"), BAD, ids=[f"bad{i:02d}" for i in range(len(BAD))])
def test_bad_configuration_gives_one_line_naming_the_key_and_exit_2(
    tmp_path: Path, pem: dict[str, Path], text: str, line: str
) -> None:
    config = tmp_path / "voicegw.toml"
    config.write_text(fill(text, pem))
    echo = [] if "[[routes]]" in text else ["--echo"]  # a route is checked by loading its agent
    result = CliRunner().invoke(main, ["serve", "--check", *echo, "--config", str(config)])
    assert result.exit_code == EXIT_CONFIG, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(fill(line, pem)), result.stderr
    assert "Traceback" not in result.output


def test_at_least_21_kinds_of_bad_configuration_are_checked() -> None:
    assert len(BAD) >= 21


def test_a_good_tls_configuration_passes_the_check_and_serves_nothing(
    tmp_path: Path, pem: dict[str, Path]
) -> None:
    config = tmp_path / "voicegw.toml"
    config.write_text(
        tls(pem["cert"], pem["key"]) + "max_calls = 1024\nanswer_delay = 0\n[rtp]\nsrtp = 'required'\n"
        "media_timeout = 0.5\n[server]\ndrain_timeout = 0\n"
    )
    result = CliRunner().invoke(main, ["serve", "--check", "--echo", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert result.stdout == "voicegw: the configuration is valid (echo mode)\n"


def test_the_serve_command_itself_refuses_a_bad_configuration(tmp_path: Path) -> None:
    config = tmp_path / "voicegw.toml"
    config.write_text("[rtp]\nmedia_timeout = -5\n")
    result = subprocess.run(
        [sys.executable, "-m", "voicegw", "serve", "--echo", "--config", str(config)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == EXIT_CONFIG
    assert result.stderr.splitlines() == [
        "voicegw: rtp.media_timeout: -5 is out of range (must be more than 0 seconds)"
    ]


def test_command_line_overrides_are_checked_with_the_file(tmp_path: Path, pem: dict[str, Path]) -> None:
    config = tmp_path / "voicegw.toml"
    config.write_text(tls(pem["cert"], pem["key"], 5099))
    result = CliRunner().invoke(
        main, ["serve", "--check", "--echo", "--config", str(config), "--listen", "127.0.0.1:5099"]
    )
    assert result.exit_code == EXIT_CONFIG
    assert result.stderr.startswith("voicegw: sip.tls_port: 5099 is the SIP port")
    result = CliRunner().invoke(main, ["serve", "--check", "--echo", "--log-level", "chatty"])
    assert result.stderr.startswith("voicegw: server.log_level: 'chatty' is not one of")
    result = CliRunner().invoke(main, ["serve", "--check", "--echo", "--workers", "65"])
    assert result.stderr.startswith("voicegw: server.workers: 65 is out of range (must be within 0-64)")


def test_range_helpers_for_new_keys() -> None:
    within("x.port", None, 1, 65535)  # not set: nothing to check
    within("x.port", 65535, 1, 65535)
    more_than("x.timeout", 0.1, 0)
    with pytest.raises(ConfigError, match=r"^x.port: 0 is out of range \(must be within 1-65535\)$"):
        within("x.port", 0, 1, 65535)
    with pytest.raises(ConfigError, match=r"^x.delay: -1 is out of range \(must be at least 0 s\)$"):
        within("x.delay", -1, 0, unit=" s")
    with pytest.raises(ConfigError, match=r"^x.timeout: 0 is out of range \(must be more than 0\)$"):
        more_than("x.timeout", 0, 0)


def test_certificate_check_reads_real_pem(pem: dict[str, Path]) -> None:
    loadable_certificate("c", "k", str(pem["cert"]), str(pem["key"]))
    with pytest.raises(ConfigError, match=r"^c/k: .* are not a usable PEM pair"):
        loadable_certificate("c", "k", str(pem["cert"]), str(pem["other_key"]))


def test_an_agent_of_the_running_script_keeps_the_calls_in_process() -> None:
    from voicegw.server.app import worker_count

    script_agent = ServerConfig(agent="__main__:AGENT")
    assert worker_count(script_agent) == 0  # a worker process could not import it
    assert worker_count(ServerConfig(agent="voicegw.testing.agents:assistant")) >= 1
    assert worker_count(ServerConfig(workers=3)) == 3
    validate(dataclasses.replace(script_agent, workers=0))
    with pytest.raises(ConfigError, match=r"^server.workers: 2 worker processes cannot import an agent of"):
        validate(dataclasses.replace(script_agent, workers=2))
