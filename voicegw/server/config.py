"""`voicegw serve` configuration: one dataclass, read from TOML and the command line, checked once."""

from __future__ import annotations

import ipaddress
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from voicegw.audio.codecs import UnsupportedCodec, codec_for
from voicegw.rtp.srtp import SRTP_MODES
from voicegw.server.allocator import ALLOCATORS
from voicegw.server.webhooks import WebhookSettings
from voicegw.sip import tls
from voicegw.sip.account import SipAccount
from voicegw.sip.digest import NODE_ID_RULE, valid_node_id
from voicegw.sip.policy import AccessLimits
from voicegw.sip.ua import LOCAL_ACCOUNT, SipConfig

DEFAULT_SIP_PORT = 5060
DEFAULT_HTTP_PORT = 8080


class ConfigError(ValueError):
    """The configuration is wrong; the message names the key and the problem."""


DEFAULT_AGENT = "voicegw.server.default_agent:front_desk"
"""The agent of a plain `voicegw serve`: a front desk on the embedded model."""


@dataclass(frozen=True, slots=True)
class Route:
    """Calls whose dialled user matches `to` and caller user matches `caller` go to `agent`."""

    agent: str
    """``module:attribute``: a RealtimeAgent or a factory taking the call's info."""

    to: str = "*"
    caller: str = "*"


@dataclass(frozen=True, slots=True)
class ModelChoice:
    """Which model runs the agents (``auto``: OpenAI when OPENAI_API_KEY is set, else local)."""

    name: str = "auto"
    settings: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments of the model (for ``local``: llm_model_path, base_url, llm_model)."""
    vocabulary: tuple[str, ...] = ()
    """Words the speech-to-text should expect (names, places, products), whichever the model."""


@dataclass(frozen=True, slots=True)
class DigestSettings:
    """``[access.digest]``: callers off the allow-list authenticate with these credentials."""

    users: dict[str, str]
    """User name -> password."""

    realm: str = "voicegw"
    nonce_secret: str | None = None
    """Shared by the nodes behind one dispatcher, so each recognises the others' nonces (and asks
    again with a stale challenge instead of treating them as forged)."""

    node_id: str | None = None
    """Names this node in its nonces (only the node that issued one accepts it); default: the host name."""


@dataclass(frozen=True, slots=True)
class ServerConfig:
    sip: SipConfig = field(default_factory=SipConfig)
    echo: bool = False
    agent: str | None = None
    """``module:attribute`` of the agent that answers calls no route claims (default: DEFAULT_AGENT)."""

    routes: tuple[Route, ...] = ()
    model: ModelChoice = field(default_factory=ModelChoice)
    allow: tuple[str, ...] | None = None
    """Networks that may call (CIDR); None: loopback and private addresses only."""

    digest: DigestSettings | None = None
    """Credentials that let a caller off the allow-list in (a 401 challenge, then the INVITE again)."""

    limits: AccessLimits = field(default_factory=AccessLimits)
    """Request budgets of sources off the allow-list, and lockouts after wrong passwords."""

    no_input_timeout: float = 15.0
    """Seconds of silence from the caller (after the agent stopped speaking) before a reprompt;
    as long again after it and the call ends."""

    no_input_prompt: str = "Are you still there?"
    max_call_duration: float = 3600.0
    """Seconds after which a call is ended, whatever is going on."""

    agent_options: dict[str, Any] = field(default_factory=dict)
    """The ``[agent]`` table: keyword arguments for an agent factory (``operator = "sip:..."``)."""

    drain_timeout: float = 30.0
    """Seconds calls in progress get to finish after SIGTERM."""

    response_timeout: float = 2.0
    """Seconds a model may say nothing while a response is due before the call is apologised for
    and ended (a stalled model); the embedded model gets `EMBEDDED_ALLOWANCE_S` more, its running
    inference step `STEP_IDLE_S` blocked or `STEP_STALL_S` without progress
    (voicegw/server/model_watch.py)."""

    log_level: str = "info"
    workers: int | None = None
    """Worker processes that run the calls (media, sessions, models); None: one per core;
    0: calls run in the server's own process (the library's way, and for debugging)."""

    http: tuple[str, int] | None = None
    """Address of the HTTP endpoint (``GET /health``, ``/healthz``: 200, or 503 while not taking calls;
    ``GET /metrics``: Prometheus); None: off."""

    transcripts_dir: Path | None = None
    """Folder for one JSON-lines transcript per agent call; None: no transcripts."""

    record: bool = False
    """Record every answered call (stereo WAV: caller left, agent right) into `recordings_dir`."""

    recordings_dir: Path | None = None
    cdr_file: Path | None = None
    """File that gets one JSON line per call (its call record); None: records only on the log."""

    webhooks: WebhookSettings | None = None
    """``[server.webhooks]``: URLs told of each call's start, answer and end; None: off."""

    allocator: str = "jemalloc"
    """The server's malloc: ``jemalloc`` (preloaded when installed: RSS levels off under calls) or
    ``system`` (glibc's, whose heap keeps growing under calls)."""


def agents_in_main(config: ServerConfig) -> bool:
    """Whether an agent is named in the running script (``__main__:...``): only this process has it."""
    names = [config.agent or "", *(route.agent for route in config.routes)]
    return any(name.split(":", 1)[0] == "__main__" for name in names)


def parse_host_port(text: str, *, key: str, default_port: int = DEFAULT_SIP_PORT) -> tuple[str, int]:
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host, port_text = text, str(default_port)
    try:
        port = int(port_text)
    except ValueError:
        raise ConfigError(f"{key}: {text!r} is not HOST:PORT") from None
    if not 0 < port < 65536:
        raise ConfigError(f"{key}: port {port} is out of range")
    return host or "0.0.0.0", port


def parse_port_range(value: Any, *, key: str) -> tuple[int, int]:
    if isinstance(value, str):
        low_text, _, high_text = value.partition("-")
        try:
            value = [int(low_text), int(high_text)]
        except ValueError:
            raise ConfigError(f"{key}: {value!r} is not a range like '20000-30000'") from None
    if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) for v in value)):
        raise ConfigError(f"{key}: expected 'LOW-HIGH' or [LOW, HIGH], got {value!r}")
    low, high = value
    if not 1024 <= low < high < 65536 or high - low < 2:
        raise ConfigError(f"{key}: {low}-{high} must hold at least one even/odd port pair within 1024-65535")
    return low, high


Kind = type | tuple[type, ...]
_SIP_TYPES: dict[str, Kind] = {
    "tcp": bool,
    "tls_port": int,
    "tls_cert": str,
    "tls_key": str,
    "tls_min_version": str,
    "public_address": str,
    "max_calls": int,
    "answer_delay": (int, float),
    "user_agent": str,
    "pjsip_log_level": int,
}
_SERVER_TYPES: dict[str, Kind] = {
    "echo": bool,
    "agent": str,
    "drain_timeout": (int, float),
    "log_level": str,
    "no_input_timeout": (int, float),
    "no_input_prompt": str,
    "max_call_duration": (int, float),
    "response_timeout": (int, float),
    "workers": int,
    "allocator": str,
}
_ROUTE_TYPES: dict[str, Kind] = {"agent": str, "to": str, "from": str}
_MODEL_NAMES = ("auto", "local", "openai")
_MODEL_SETTINGS: dict[str, dict[str, Kind]] = {
    "local": {"llm_model_path": str, "base_url": str, "llm_model": str, "api_key": str},
    "openai": {"model_name": str, "session_limit": (int, float)},
}
_ACCOUNT_TYPES: dict[str, Kind] = {
    "name": str,
    "uri": str,
    "registrar": str,
    "username": str,
    "password": str,
    "realm": str,
    "register": bool,
    "expires": int,
}
_ACCOUNT_KEYS = {"proxy", *_ACCOUNT_TYPES}
_SIP_KEYS = {"listen", "codecs", "tls_ciphers", *_SIP_TYPES}
_RTP_KEYS = {"ports", "media_timeout", "host", "srtp"}
_SERVER_PATHS = ("transcripts_dir", "recordings_dir", "cdr_file")
_SERVER_KEYS = {"http", "record", *_SERVER_PATHS, *_SERVER_TYPES}
_SERVER_TABLES = {"webhooks"}
_WEBHOOK_TYPES: dict[str, Kind] = {"secret": str, "timeout": (int, float), "retries": int, "queue_size": int}


def _take(table: dict[str, Any], allowed: set[str], section: str) -> dict[str, Any]:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError(f"[{section}]: unknown key {unknown[0]!r} (known: {', '.join(sorted(allowed))})")
    return table


def _strings(value: Any, key: str) -> tuple[str, ...]:
    """A TOML array of strings at `key`."""
    return tuple(_typed(item, str, key) for item in _typed(value, list, key))


def _typed(value: Any, kind: Kind, key: str) -> Any:
    if not isinstance(value, kind) or (isinstance(value, bool) and kind in (int, float, (int, float))):
        raise ConfigError(f"{key}: {value!r} has the wrong type")
    return value


def _tls(sip_table: dict[str, Any]) -> dict[str, Any]:
    """`tls_min_version` and `tls_ciphers`, checked against what TLS and OpenSSL offer."""
    changes: dict[str, Any] = {}
    if "tls_min_version" in sip_table:
        try:
            tls.versions_from(sip_table["tls_min_version"])
        except ValueError as exc:
            raise ConfigError(f"sip.tls_min_version: {exc}") from None
    if "tls_ciphers" in sip_table:
        ciphers = _strings(sip_table["tls_ciphers"], "sip.tls_ciphers")
        if not ciphers:
            raise ConfigError("sip.tls_ciphers: give at least one cipher suite")
        try:
            tls.cipher_ids(ciphers)
        except tls.UnknownCipher as exc:
            raise ConfigError(f"sip.tls_ciphers: {exc}") from None
        changes["tls_ciphers"] = ciphers
    try:
        tls.check_suites(
            sip_table.get("tls_min_version", tls.DEFAULT_MIN_VERSION),
            changes.get("tls_ciphers", tls.DEFAULT_CIPHERS),
        )
    except ValueError as exc:
        raise ConfigError(f"sip.tls_ciphers: {exc}") from None
    return changes


def load(path: Path | None = None) -> ServerConfig:
    """Read a TOML file (or the defaults); raises `ConfigError` naming the bad key."""
    if path is None:
        return ServerConfig()
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read the config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    _take(
        data,
        {"sip", "rtp", "server", "agent", "routes", "model", "access", "account", "accounts"},
        "top level",
    )
    sip_table = _take(data.get("sip", {}), _SIP_KEYS, "sip")
    rtp_table = _take(data.get("rtp", {}), _RTP_KEYS, "rtp")
    server_table = _take(data.get("server", {}), _SERVER_KEYS | _SERVER_TABLES, "server")

    sip = SipConfig()
    changes: dict[str, Any] = {}
    if "listen" in sip_table:
        changes["host"], changes["port"] = parse_host_port(
            _typed(sip_table["listen"], str, "sip.listen"), key="sip.listen"
        )
    for key, kind in _SIP_TYPES.items():
        if key in sip_table:
            changes[key] = _typed(sip_table[key], kind, f"sip.{key}")
    if "codecs" in sip_table:
        codecs = _strings(sip_table["codecs"], "sip.codecs")
        try:
            changes["codecs"] = tuple(codec_for(name).name for name in codecs)
        except UnsupportedCodec as exc:
            raise ConfigError(f"sip.codecs: {exc}") from None
    changes.update(_tls(sip_table))
    if "ports" in rtp_table:
        changes["rtp_ports"] = parse_port_range(rtp_table["ports"], key="rtp.ports")
    if "media_timeout" in rtp_table:
        changes["media_timeout"] = float(
            _typed(rtp_table["media_timeout"], (int, float), "rtp.media_timeout")
        )
    if "host" in rtp_table:
        changes["rtp_host"] = _typed(rtp_table["host"], str, "rtp.host")
    if "srtp" in rtp_table:
        mode = _typed(rtp_table["srtp"], str, "rtp.srtp")
        if mode not in SRTP_MODES:
            raise ConfigError(f"rtp.srtp: {mode!r} is not one of {', '.join(SRTP_MODES)}")
        changes["srtp"] = mode
    if changes.get("max_calls", 1) < 1:
        raise ConfigError("sip.max_calls: must be at least 1")
    changes["accounts"] = parse_accounts(data)

    server: dict[str, Any] = {}
    for key, kind in _SERVER_TYPES.items():
        if key in server_table:
            server[key] = _typed(server_table[key], kind, f"server.{key}")
    if "http" in server_table:
        http = _typed(server_table["http"], str, "server.http")
        server["http"] = parse_host_port(http, key="server.http", default_port=DEFAULT_HTTP_PORT)
    for key in ("no_input_timeout", "max_call_duration"):
        if key in server and server[key] <= 0:
            raise ConfigError(f"server.{key}: must be more than 0 seconds")
    if server.get("allocator", ALLOCATORS[0]) not in ALLOCATORS:
        raise ConfigError(f"server.allocator: {server['allocator']!r} is not one of {', '.join(ALLOCATORS)}")
    server.update(_records(server_table))
    if "webhooks" in server_table:
        server["webhooks"] = _webhooks(server_table["webhooks"])
    return ServerConfig(
        sip=replace(sip, **changes),
        routes=_routes(data.get("routes", [])),
        model=_model(data.get("model", {})),
        allow=_allow(data.get("access", {})),
        limits=_limits(data.get("access", {})),
        digest=_digest(data.get("access", {}).get("digest")),
        agent_options=_typed(data.get("agent", {}), dict, "agent"),
        **server,
    )


def _routes(value: Any) -> tuple[Route, ...]:
    if not isinstance(value, list):
        raise ConfigError("routes: expected [[routes]] tables")
    routes = []
    for index, table in enumerate(value):
        key = f"routes[{index}]"
        if not isinstance(table, dict):
            raise ConfigError(f"{key}: expected a table with agent, to, from")
        _take(table, set(_ROUTE_TYPES), key)
        if "agent" not in table:
            raise ConfigError(f"{key}: missing 'agent' (module:attribute)")
        fields = {
            name: _typed(table[name], kind, f"{key}.{name}")
            for name, kind in _ROUTE_TYPES.items()
            if name in table
        }
        routes.append(Route(fields["agent"], to=fields.get("to", "*"), caller=fields.get("from", "*")))
    return tuple(routes)


def _model(table: Any) -> ModelChoice:
    if not isinstance(table, dict):
        raise ConfigError("model: expected a table")
    name = _typed(table.get("name", "auto"), str, "model.name")
    if name not in _MODEL_NAMES:
        raise ConfigError(f"model.name: {name!r} is not one of {', '.join(_MODEL_NAMES)}")
    allowed = {key for settings in _MODEL_SETTINGS.values() for key in settings}
    _take(table, {"name", "vocabulary", *allowed}, "model")
    vocabulary = _strings(table.get("vocabulary", []), "model.vocabulary")
    kinds = _MODEL_SETTINGS.get(name, {})
    settings = {}
    for key, value in table.items():
        if key in ("name", "vocabulary"):
            continue
        if key not in kinds:
            raise ConfigError(f"model.{key}: not a setting of the {name!r} model")
        settings[key] = _typed(value, kinds[key], f"model.{key}")
    return ModelChoice(name, settings, vocabulary)


def _allow(table: Any) -> tuple[str, ...] | None:
    if not isinstance(table, dict):
        raise ConfigError("access: expected a table")
    _take(table, {"allow", "digest", *_LIMITS}, "access")
    if "allow" not in table:
        return None
    networks = _strings(table["allow"], "access.allow")
    for net in networks:
        try:
            ipaddress.ip_network(net, strict=False)
        except ValueError:
            raise ConfigError(f"access.allow: {net!r} is not an address or CIDR network") from None
    return networks


_LIMITS: dict[str, tuple[Kind, float, float]] = {
    "rate": ((int, float), 0.01, 100_000),
    "burst": (int, 1, 100_000),
    "max_failures": (int, 1, 1000),
    "lockout": ((int, float), 1, 86_400),
    "max_lockout": ((int, float), 1, 7 * 86_400),
}
"""``[access]`` limits: type, lowest and highest value."""


def _limits(table: dict[str, Any]) -> AccessLimits:
    values: dict[str, Any] = {}
    for key, (kind, low, high) in _LIMITS.items():
        if key in table:
            value = _typed(table[key], kind, f"access.{key}")
            if not low <= value <= high:
                raise ConfigError(f"access.{key}: {value} is not within {low:g}-{high:g}")
            values[key] = value
    limits = AccessLimits(**values)
    if limits.max_lockout < limits.lockout:
        raise ConfigError(
            f"access.max_lockout: {limits.max_lockout:g} is shorter than access.lockout ({limits.lockout:g})"
        )
    return limits


def _digest(value: Any) -> DigestSettings | None:
    if value is None:
        return None
    table = _take(
        _typed(value, dict, "access.digest"), {"users", "realm", "nonce_secret", "node_id"}, "access.digest"
    )
    users = _typed(table.get("users", {}), dict, "access.digest.users")
    if not users:
        raise ConfigError('access.digest.users: give at least one user = "password"')
    for name, password in users.items():
        if not _typed(password, str, f"access.digest.users.{name}"):
            raise ConfigError(f"access.digest.users.{name}: the password is empty")
    realm = _typed(table.get("realm", "voicegw"), str, "access.digest.realm")
    if not realm or not realm.isprintable() or set(realm) & {'"', "\\"}:
        # It goes into the challenge as a quoted string, on a header line.
        raise ConfigError(
            f"access.digest.realm: {realm!r} must be printable text without quotes or backslashes"
        )
    secret = table.get("nonce_secret")
    node_id = table.get("node_id")
    if node_id is not None and not valid_node_id(_typed(node_id, str, "access.digest.node_id")):
        raise ConfigError(f"access.digest.node_id: {node_id!r} is not {NODE_ID_RULE}")
    return DigestSettings(
        dict(users),
        realm,
        None if secret is None else _typed(secret, str, "access.digest.nonce_secret"),
        node_id,
    )


def _sip_uri(value: Any, key: str) -> str:
    uri = _typed(value, str, key)
    if not uri.startswith(("sip:", "sips:")) or len(uri.split(":", 1)[1]) == 0:
        raise ConfigError(f"{key}: {uri!r} is not a SIP URI like 'sip:pbx.example.com'")
    return uri


def parse_accounts(data: dict[str, Any]) -> tuple[SipAccount, ...]:
    """``[account]`` (one) or ``[[accounts]]`` (several): PBX extensions and trunks."""
    if "account" in data and "accounts" in data:
        raise ConfigError("[account] and [[accounts]]: use one or the other")
    if "account" in data:
        tables = [(_typed(data["account"], dict, "account"), "account")]
    else:
        listed = _typed(data.get("accounts", []), list, "accounts")
        tables = [(_typed(t, dict, f"accounts[{i}]"), f"accounts[{i}]") for i, t in enumerate(listed)]
    accounts: list[SipAccount] = []
    for table, section in tables:
        account = _parse_account(_take(table, _ACCOUNT_KEYS, section), section, len(accounts))
        if account.name in {a.name for a in accounts} | {LOCAL_ACCOUNT}:
            raise ConfigError(f"{section}.name: {account.name!r} is taken")
        accounts.append(account)
    return tuple(accounts)


def _parse_account(table: dict[str, Any], section: str, index: int) -> SipAccount:
    values: dict[str, Any] = {"name": "default" if index == 0 else f"account{index}"}
    for key, kind in _ACCOUNT_TYPES.items():
        if key in table:
            values[key] = _typed(table[key], kind, f"{section}.{key}")
    for key in ("uri", "registrar"):
        if key in values:
            values[key] = _sip_uri(values[key], f"{section}.{key}")
    if "proxy" in table:
        proxies = table["proxy"] if isinstance(table["proxy"], list) else [table["proxy"]]
        values["proxy"] = tuple(_sip_uri(p, f"{section}.proxy") for p in proxies)
    if values.get("register") and "registrar" not in values:
        raise ConfigError(f"{section}.registrar: needed when register = true")
    if ("username" in values) != ("password" in values):
        missing = "password" if "username" in values else "username"
        raise ConfigError(f"{section}.{missing}: username and password go together")
    if not 0 < values.get("expires", 1) <= 86400:
        raise ConfigError(f"{section}.expires: {values['expires']} is not within 1-86400 seconds")
    return SipAccount(**values)


def _records(table: dict[str, Any]) -> dict[str, Any]:
    """The transcript and recording keys of [server]; a recording needs its folder."""
    values: dict[str, Any] = {}
    for key in _SERVER_PATHS:
        if key in table:
            text = _typed(table[key], str, f"server.{key}")
            if not text:
                raise ConfigError(f"server.{key}: must not be empty")
            values[key] = Path(text)
    if "record" in table:
        values["record"] = _typed(table["record"], bool, "server.record")
    if values.get("record") and "recordings_dir" not in values:
        raise ConfigError("server.record: true needs server.recordings_dir, the folder to record into")
    return values


def _webhooks(value: Any) -> WebhookSettings:
    """``[server.webhooks]``: each key's type; ranges, URLs and the secret are `checks.validate`'s."""
    table = _take(_typed(value, dict, "server.webhooks"), {"urls", *_WEBHOOK_TYPES}, "server.webhooks")
    values = {
        key: _typed(table[key], kind, f"server.webhooks.{key}")
        for key, kind in _WEBHOOK_TYPES.items()
        if key in table
    }
    return WebhookSettings(
        urls=_strings(table.get("urls", []), "server.webhooks.urls"),
        secret=values.pop("secret", ""),
        **values,
    )
