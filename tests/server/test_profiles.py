"""The shipped SIP profiles (sip_profiles/*.toml) load, and hold what their comments promise."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from voicegw.server.config import load
from voicegw.sip.policy import SourcePolicy

PROFILES = Path(__file__).resolve().parents[2] / "sip_profiles"
# The lines a user uncomments for Twilio's Secure Trunking (TLS signalling, SRTP media).
SECURE_TRUNKING = re.compile(r'^# (tls_port = |tls_cert = |tls_key = |srtp = "required")', re.M)


def test_every_profile_loads() -> None:
    names = sorted(path.stem for path in PROFILES.glob("*.toml"))
    assert {"linphone", "pbx", "twilio"} <= set(names)
    for name in names:
        load(PROFILES / f"{name}.toml")


def test_twilio_origination_takes_calls_from_twilio_only() -> None:
    config = load(PROFILES / "twilio.toml")
    assert (config.sip.host, config.sip.port, config.sip.tcp) == ("0.0.0.0", 5060, True)
    assert config.sip.codecs[0] == "PCMU" and set(config.sip.codecs) == {"PCMU", "PCMA"}
    assert config.sip.public_address == "203.0.113.10"  # the placeholder the comments say to replace
    assert config.sip.tls_port is None and config.sip.srtp == "optional"
    assert config.allow is not None and "54.172.60.0/30" in config.allow and len(config.allow) == 8
    policy = SourcePolicy(config.allow)
    # One address of each edge's range is a Twilio gateway; the LAN and loopback are not.
    for twilio_gateway in ("54.172.60.1", "54.244.51.3", "35.156.191.129", "177.71.206.194"):
        assert policy.allows(twilio_gateway), twilio_gateway
    for stranger in ("127.0.0.1", "192.168.1.20", "54.172.60.4", "8.8.8.8"):
        assert not policy.allows(stranger), stranger


def test_twilio_termination_dials_through_the_trunk_with_digest_credentials() -> None:
    (account,) = load(PROFILES / "twilio.toml").sip.accounts
    assert account.name == "twilio" and account.register is False and account.registrar is None
    assert account.uri.startswith("sip:+") and account.uri.endswith(".pstn.twilio.com")
    (proxy,) = account.proxy
    assert re.fullmatch(r"sip:[\w-]+\.pstn\.twilio\.com;lr", proxy), proxy
    assert account.has_credentials and (account.username, account.realm) == ("voicegw", "*")


def test_twilio_secure_trunking_block_turns_on_tls_and_requires_srtp(tmp_path: Path) -> None:
    text = (PROFILES / "twilio.toml").read_text()
    assert len(SECURE_TRUNKING.findall(text)) == 4
    secure = tmp_path / "twilio-tls.toml"
    secure.write_text(SECURE_TRUNKING.sub(r"\1", text).replace('srtp = "optional"\n', "", 1))
    config = load(secure)
    assert (config.sip.tls_port, config.sip.srtp) == (5061, "required")
    assert config.sip.tls_cert and config.sip.tls_key


def test_linphone_answers_the_lan_without_auth_opus_first() -> None:
    config = load(PROFILES / "linphone.toml")
    assert config.sip.codecs == ("opus", "G722", "PCMU", "PCMA")
    assert config.sip.accounts == () and config.allow is None and config.agent is None
    policy = SourcePolicy(config.allow)
    for neighbour in ("127.0.0.1", "192.168.1.20", "10.0.0.7"):
        assert policy.allows(neighbour), neighbour
    assert not policy.allows("203.0.113.5")


@pytest.mark.parametrize("name", ["twilio", "linphone"])
def test_profiles_mark_what_to_fill_in(name: str) -> None:
    assert "FILL IN" in (PROFILES / f"{name}.toml").read_text()
