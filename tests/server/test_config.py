from __future__ import annotations

from pathlib import Path

import pytest

from voicegw.server.config import ConfigError, DigestSettings, load
from voicegw.sip.policy import AccessLimits


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "voicegw.toml"
    path.write_text(text)
    return path


def test_defaults_without_a_file() -> None:
    config = load(None)
    assert (config.sip.host, config.sip.port, config.sip.rtp_ports) == ("0.0.0.0", 5060, (20000, 30000))
    assert config.sip.srtp == "optional"


def test_a_full_file(tmp_path: Path) -> None:
    config = load(
        write(
            tmp_path,
            "[sip]\nlisten = '127.0.0.1:5080'\nmax_calls = 50\ncodecs = ['pcma', 'PCMU']\n"
            "public_address = '203.0.113.7'\n[rtp]\nports = '30000-30100'\nmedia_timeout = 5\n"
            "srtp = 'required'\n"
            "[server]\ndrain_timeout = 12.5\n",
        )
    )
    assert (config.sip.host, config.sip.port, config.sip.max_calls) == ("127.0.0.1", 5080, 50)
    assert config.sip.codecs == ("PCMA", "PCMU") and config.sip.media_address == "203.0.113.7"
    assert config.sip.rtp_ports == (30000, 30100) and config.sip.media_timeout == 5.0
    assert config.drain_timeout == 12.5 and config.sip.srtp == "required"


def test_tls_defaults_are_1_2_and_up_with_forward_secret_suites_and_can_be_set(tmp_path: Path) -> None:
    default = load(None).sip
    assert default.tls_min_version == "1.2"
    assert all(name.startswith(("TLS_", "ECDHE-")) for name in default.tls_ciphers)
    text = "[sip]\ntls_min_version = '1.3'\ntls_ciphers = ['TLS_AES_256_GCM_SHA384']\n"
    config = load(write(tmp_path, text))
    assert (config.sip.tls_min_version, config.sip.tls_ciphers) == ("1.3", ("TLS_AES_256_GCM_SHA384",))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[sip]\nlisten = 'host:notaport'\n", "sip.listen: 'host:notaport' is not HOST:PORT"),
        ("[sip]\nmax_calls = 'many'\n", "sip.max_calls: 'many' has the wrong type"),
        ("[sip]\nmax_calls = 0\n", "sip.max_calls: must be at least 1"),
        ("[sip]\ncodecs = ['GSM']\n", "sip.codecs: codec 'GSM' is not supported"),
        ("[sip]\nlisen = '1.2.3.4'\n", r"\[sip\]: unknown key 'lisen'"),
        ("[rtp]\nports = '30000'\n", "rtp.ports: '30000' is not a range"),
        ("[rtp]\nports = [30001, 30000]\n", "rtp.ports: 30001-30000 must hold"),
        ("[rtp]\nmedia_timeout = true\n", "rtp.media_timeout: True has the wrong type"),
        ("[rtp]\nsrtp = 'yes'\n", "rtp.srtp: 'yes' is not one of off, optional, required"),
        ("[rtp]\nsrtp = true\n", "rtp.srtp: True has the wrong type"),
        ("[server]\nallocator = 'tcmalloc'\n", "server.allocator: 'tcmalloc' is not one of jemalloc, system"),
        ("[sip]\ntls_min_version = '1.1'\n", "sip.tls_min_version: TLS version '1.1' is not one of 1.2, 1.3"),
        ("[sip]\ntls_min_version = 1.2\n", "sip.tls_min_version: 1.2 has the wrong type"),
        ("[sip]\ntls_ciphers = ['NOT-A-SUITE']\n", "sip.tls_ciphers: unknown TLS cipher suite 'NOT-A-SUITE'"),
        ("[sip]\ntls_ciphers = []\n", "sip.tls_ciphers: give at least one cipher suite"),
        (
            "[sip]\ntls_min_version = '1.3'\ntls_ciphers = ['ECDHE-RSA-AES128-GCM-SHA256']\n",
            "sip.tls_ciphers: TLS 1.3 and up needs a TLS 1.3 suite",
        ),
        ("[nope]\n", "top level.*unknown key 'nope'"),
        ("[[routes]]\nto = '1*'\n", r"routes\[0\]: missing 'agent'"),
        ("[[routes]]\nagent = 'a:b'\nnumber = '1'\n", r"\[routes\[0\]\]: unknown key 'number'"),
        ("[model]\nname = 'gpt'\n", "model.name: 'gpt' is not one of auto, local, openai"),
        ("[model]\nname = 'openai'\nbase_url = 'x'\n", "model.base_url: not a setting of the 'openai'"),
        ("[model]\nvocabulary = 'Riverside'\n", "model.vocabulary: 'Riverside' has the wrong type"),
        ("[model]\nvocabulary = ['Riverside', 3]\n", "model.vocabulary: 3 has the wrong type"),
        ("[access]\nallow = ['10.0.0.0/33']\n", "access.allow: '10.0.0.0/33' is not an address"),
        ("[access.digest]\nrealm = 'x'\n", "access.digest.users: give at least one user"),
        ("[access.digest.users]\nalice = ''\n", "access.digest.users.alice: the password is empty"),
        ("[access.digest.users]\nalice = 1234\n", "access.digest.users.alice: 1234 has the wrong type"),
        ("[access.digest]\nusers = {a = 'b'}\nsecret = 'x'\n", r"\[access.digest\]: unknown key 'secret'"),
        ("[server]\nno_input_timeout = 0\n", "server.no_input_timeout: must be more than 0"),
        ("[sip\n", "voicegw.toml"),
    ],
)
def test_bad_config_names_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load(write(tmp_path, text))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the config file"):
        load(tmp_path / "absent.toml")


def test_routes_model_access_and_call_limits(tmp_path: Path) -> None:
    config = load(
        write(
            tmp_path,
            "[[routes]]\nto = '100'\nagent = 'pkg.agents:sales'\n"
            "[[routes]]\nfrom = 'alice'\nagent = 'pkg.agents:vip'\n"
            "[model]\nname = 'local'\nbase_url = 'http://127.0.0.1:8000/v1'\nvocabulary = ['Riverside']\n"
            "[access]\nallow = ['54.172.60.0/30', '192.0.2.1']\n"
            "[access.digest]\nrealm = 'desk'\nnonce_secret = 's'\nusers = { alice = 'wonderland' }\n"
            "[server]\nagent = 'pkg.agents:desk'\nno_input_timeout = 8\nmax_call_duration = 600\n",
        )
    )
    assert [(r.to, r.caller, r.agent) for r in config.routes] == [
        ("100", "*", "pkg.agents:sales"),
        ("*", "alice", "pkg.agents:vip"),
    ]
    assert config.model.name == "local" and config.model.settings == {"base_url": "http://127.0.0.1:8000/v1"}
    assert config.model.vocabulary == ("Riverside",) and load(None).model.vocabulary == ()
    assert config.allow == ("54.172.60.0/30", "192.0.2.1") and load(None).allow is None
    assert config.digest == DigestSettings({"alice": "wonderland"}, "desk", "s") and load(None).digest is None
    assert (config.agent, config.no_input_timeout, config.max_call_duration) == ("pkg.agents:desk", 8, 600)


PROFILES = Path(__file__).resolve().parents[2] / "sip_profiles"


def test_the_pbx_profile_loads_as_a_registering_extension() -> None:
    config = load(PROFILES / "pbx.toml")
    (account,) = config.sip.accounts
    assert (account.name, account.uri, account.registrar) == (
        "pbx",
        "sip:1001@pbx.example.com",
        "sip:pbx.example.com",
    )
    assert (account.register, account.expires, account.username, account.realm) == (True, 300, "1001", "*")
    assert account.proxy == () and config.sip.codecs == ("PCMU", "PCMA", "opus")


def test_several_accounts_with_proxies(tmp_path: Path) -> None:
    config = load(
        write(
            tmp_path,
            "[[accounts]]\nname = 'pbx'\nuri = 'sip:1001@pbx.test'\nregistrar = 'sip:pbx.test'\n"
            "register = true\nexpires = 120\nusername = '1001'\npassword = 'pw'\n"
            "[[accounts]]\nuri = 'sip:trunk@carrier.test'\n"
            "proxy = ['sip:sbc1.test;lr', 'sip:sbc2.test;lr']\n",
        )
    )
    pbx, trunk = config.sip.accounts
    assert (pbx.name, pbx.expires, pbx.password) == ("pbx", 120, "pw")
    assert (trunk.name, trunk.proxy, trunk.username) == (
        "account1",
        ("sip:sbc1.test;lr", "sip:sbc2.test;lr"),
        None,
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[account]\nregister = true\n", r"account.registrar: needed when register = true"),
        ("[account]\nusername = '1001'\n", r"account.password: username and password go together"),
        ("[account]\nregistrar = 'pbx.test'\n", r"account.registrar: 'pbx.test' is not a SIP URI"),
        ("[account]\nproxy = 5\n", r"account.proxy: 5 has the wrong type"),
        ("[account]\nexpires = 0\n", r"account.expires: 0 is not within 1-86400 seconds"),
        ("[account]\nregister = 'yes'\n", r"account.register: 'yes' has the wrong type"),
        ("[account]\nuser = 'x'\n", r"\[account\]: unknown key 'user'"),
        ("[[accounts]]\nname = 'a'\n[[accounts]]\nname = 'a'\n", r"accounts\[1\].name: 'a' is taken"),
        ("[account]\nname = 'local'\n", r"account.name: 'local' is taken"),
        ("[account]\n[[accounts]]\n", r"\[account\] and \[\[accounts\]\]: use one or the other"),
    ],
)
def test_account_errors_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load(write(tmp_path, text))


def test_transcripts_and_recordings(tmp_path: Path) -> None:
    config = load(
        write(
            tmp_path,
            "[server]\ntranscripts_dir = '/srv/t'\nrecord = true\nrecordings_dir = '/srv/r'\n",
        )
    )
    assert (config.transcripts_dir, config.record, config.recordings_dir) == (
        Path("/srv/t"),
        True,
        Path("/srv/r"),
    )
    assert load(None).transcripts_dir is None and not load(None).record


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[server]\nrecord = 'yes'\n", "server.record: 'yes' has the wrong type"),
        ("[server]\nrecord = true\n", "server.record: true needs server.recordings_dir"),
        ("[server]\ntranscripts_dir = 3\n", "server.transcripts_dir: 3 has the wrong type"),
        ("[server]\nrecordings_dir = ''\n", "server.recordings_dir: must not be empty"),
    ],
)
def test_bad_record_keys_are_named(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load(write(tmp_path, text))


def test_access_limits_and_the_digest_node_id(tmp_path: Path) -> None:
    config = load(
        write(
            tmp_path,
            "[access]\nrate = 2.5\nburst = 20\nmax_failures = 3\nlockout = 30\nmax_lockout = 900\n"
            "[access.digest]\nnode_id = 'node-2'\nusers = { alice = 'wonderland' }\n",
        )
    )
    assert config.limits == AccessLimits(rate=2.5, burst=20, max_failures=3, lockout=30, max_lockout=900)
    assert config.digest is not None and config.digest.node_id == "node-2"
    assert load(None).limits == AccessLimits()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[access]\nrate = 0\n", "access.rate: 0 is not within 0.01-100000"),
        ("[access]\nburst = 2.5\n", "access.burst: 2.5 has the wrong type"),
        ("[access]\nburst = 0\n", "access.burst: 0 is not within 1-100000"),
        ("[access]\nmax_failures = 0\n", "access.max_failures: 0 is not within 1-1000"),
        ("[access]\nlockout = true\n", "access.lockout: True has the wrong type"),
        ("[access]\nlockout = 600\nmax_lockout = 60\n", "access.max_lockout: 60 is shorter than"),
        ("[access]\npike = 1\n", r"\[access\]: unknown key 'pike'"),
        (
            "[access.digest]\nrealm = 'a\"b'\nusers = {a = 'b'}\n",
            "access.digest.realm: 'a\"b' must be printable",
        ),
        ('[access.digest]\nrealm = "a\\tb"\nusers = {a = "b"}\n', "access.digest.realm: .* must be"),
        ("[access.digest]\nnode_id = 'a:b'\nusers = {a = 'b'}\n", "access.digest.node_id: 'a:b' is not 1-64"),
    ],
)
def test_bad_access_limits_are_named(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load(write(tmp_path, text))
