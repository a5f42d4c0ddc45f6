"""deploy/: the example configuration loads and documents every key, the systemd unit and the
Kamailio configuration pass their tools' own checks."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from tests.signals import require_tools
from voicegw.server import config as config_module
from voicegw.server.config import load

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def test_example_config_loads_and_mentions_every_key() -> None:
    path = DEPLOY / "voicegw.toml"
    config = load(path)
    assert config.http == ("127.0.0.1", 8080)
    assert config.transcripts_dir == Path("/var/lib/voicegw/transcripts") and not config.record
    text = path.read_text()
    sections = {
        "sip": config_module._SIP_KEYS,
        "rtp": config_module._RTP_KEYS,
        "server": config_module._SERVER_KEYS,
    }
    sections |= {
        "model": {"name", *(key for keys in config_module._MODEL_SETTINGS.values() for key in keys)},
        "server.webhooks": {"urls", *config_module._WEBHOOK_TYPES},
        "access": {"allow"},
        "[routes]": set(config_module._ROUTE_TYPES),
        "[accounts]": config_module._ACCOUNT_KEYS,
    }
    for section, keys in sections.items():
        header = re.search(rf"^(# )?\[{re.escape(section)}\]$", text, re.M)
        assert header, f"deploy/voicegw.toml has no [{section}]"
        body = re.split(r"^(?:# )?\[", text[header.end() :], maxsplit=1, flags=re.M)[0]
        for key in keys:
            # Set, or shown commented out, each under a comment line saying what it does.
            found = re.search(rf"^(#[^\n]*\n)+(# )?{key} = ", body, re.M)
            assert found, f"deploy/voicegw.toml does not document {section}.{key}"


def test_systemd_unit_verifies_and_outlasts_the_drain(tmp_path: Path) -> None:
    require_tools("systemd-analyze")
    unit = (DEPLOY / "voicegw.service").read_text()
    # verify checks that ExecStart exists: point it at a binary this machine has.
    exec_start = re.search(r"^ExecStart=(\S+)", unit, re.M)
    assert exec_start is not None
    copy = tmp_path / "voicegw.service"
    copy.write_text(unit.replace(exec_start[1], shutil.which("true") or "/bin/true"))
    proc = subprocess.run(
        ["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=60
    )
    problems = [line for line in (proc.stdout + proc.stderr).splitlines() if "voicegw.service" in line]
    assert proc.returncode == 0 and problems == [], proc.stdout + proc.stderr
    stop = re.search(r"^TimeoutStopSec=(\d+)$", unit, re.M)
    assert stop is not None and int(stop[1]) > load(DEPLOY / "voicegw.toml").drain_timeout + 5
    assert "ExecReload" not in unit.replace("no ExecReload", "")  # voicegw does not handle SIGHUP
    for setting in ("User=voicegw", "ProtectSystem=strict", "ProtectHome=yes", "NoNewPrivileges=yes",
                    "PrivateTmp=yes", "KillSignal=SIGTERM", "Restart=on-failure"):  # fmt: skip
        assert re.search(rf"^{setting}$", unit, re.M), setting


def test_kamailio_config_passes_kamailio_check() -> None:
    require_tools("kamailio")
    proc = subprocess.run(
        ["kamailio", "-c", "-f", str(DEPLOY / "kamailio" / "kamailio.cfg")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert " ERROR: " not in proc.stderr, proc.stderr[-3000:]
