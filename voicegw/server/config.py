"""`voicegw serve` configuration: one dataclass, read from TOML and the command line, checked once."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from voicegw.audio.codecs import UnsupportedCodec, codec_for
from voicegw.sip.ua import SipConfig

DEFAULT_SIP_PORT = 5060
DEFAULT_HTTP_PORT = 8080


class ConfigError(ValueError):
    """The configuration is wrong; the message names the key and the problem."""


@dataclass(frozen=True, slots=True)
class ServerConfig:
    sip: SipConfig = field(default_factory=SipConfig)
    echo: bool = False
    agent: str | None = None
    """``module:attribute`` of the agent that answers calls."""

    agent_options: dict[str, Any] = field(default_factory=dict)
    """The ``[agent]`` table: keyword arguments for an agent factory (``operator = "sip:..."``)."""

    drain_timeout: float = 30.0
    """Seconds calls in progress get to finish after SIGTERM."""

    log_level: str = "info"
    http: tuple[str, int] | None = None
    """Address of the HTTP health endpoint (``GET /health``: 200, or 503 while draining); None: off."""


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
    "public_address": str,
    "max_calls": int,
    "answer_delay": (int, float),
    "user_agent": str,
    "pjsip_log_level": int,
}
_SERVER_TYPES: dict[str, Kind] = {"echo": bool, "agent": str, "drain_timeout": (int, float), "log_level": str}
_SIP_KEYS = {"listen", "codecs", *_SIP_TYPES}
_RTP_KEYS = {"ports", "media_timeout", "host"}
_SERVER_KEYS = {"http", *_SERVER_TYPES}


def _take(table: dict[str, Any], allowed: set[str], section: str) -> dict[str, Any]:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError(f"[{section}]: unknown key {unknown[0]!r} (known: {', '.join(sorted(allowed))})")
    return table


def _typed(value: Any, kind: Kind, key: str) -> Any:
    if not isinstance(value, kind) or (isinstance(value, bool) and kind in (int, float, (int, float))):
        raise ConfigError(f"{key}: {value!r} has the wrong type")
    return value


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
    _take(data, {"sip", "rtp", "server", "agent"}, "top level")
    sip_table = _take(data.get("sip", {}), _SIP_KEYS, "sip")
    rtp_table = _take(data.get("rtp", {}), _RTP_KEYS, "rtp")
    server_table = _take(data.get("server", {}), _SERVER_KEYS, "server")

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
        codecs = _typed(sip_table["codecs"], list, "sip.codecs")
        try:
            changes["codecs"] = tuple(codec_for(_typed(name, str, "sip.codecs")).name for name in codecs)
        except UnsupportedCodec as exc:
            raise ConfigError(f"sip.codecs: {exc}") from None
    if "ports" in rtp_table:
        changes["rtp_ports"] = parse_port_range(rtp_table["ports"], key="rtp.ports")
    if "media_timeout" in rtp_table:
        changes["media_timeout"] = float(
            _typed(rtp_table["media_timeout"], (int, float), "rtp.media_timeout")
        )
    if "host" in rtp_table:
        changes["rtp_host"] = _typed(rtp_table["host"], str, "rtp.host")
    if changes.get("max_calls", 1) < 1:
        raise ConfigError("sip.max_calls: must be at least 1")

    server: dict[str, Any] = {}
    for key, kind in _SERVER_TYPES.items():
        if key in server_table:
            server[key] = _typed(server_table[key], kind, f"server.{key}")
    if "http" in server_table:
        http = _typed(server_table["http"], str, "server.http")
        server["http"] = parse_host_port(http, key="server.http", default_port=DEFAULT_HTTP_PORT)
    server["agent_options"] = _typed(data.get("agent", {}), dict, "agent")
    return ServerConfig(sip=replace(sip, **changes), **server)
