"""A whole `ServerConfig` checked before anything starts: numbers in range, files loadable,
options consistent with each other. `validate` raises `ConfigError` naming the key.

`config.load` checks each key's type as it reads the file; what it cannot know there (a range
that depends on the build, a certificate's content, two keys that go together, the command
line's overrides) is checked here, once, on the configuration the server would run.
Each number has one line in `validate`, with the helpers below, so that a new key adds one line.
"""

from __future__ import annotations

import math
import ssl
from pathlib import Path

from voicegw.server.config import ConfigError, ServerConfig, agents_in_main
from voicegw.server.http_post import check_url
from voicegw.sip.ua import PJSUA_MAX_CALLS

MAX_PORT = 65535
PJSIP_MAX_LOG_LEVEL = 6
LOG_LEVELS = ("debug", "info", "warning", "error")
MAX_WEBHOOK_RETRIES = 10
MAX_WORKERS = 64


def within(key: str, value: float | None, low: float, high: float = math.inf, *, unit: str = "") -> None:
    """`value` (None: not set) must lie in [low, high]."""
    if value is None or low <= value <= high:
        return
    bound = f"at least {low:g}" if high == math.inf else f"within {low:g}-{high:g}"
    raise ConfigError(f"{key}: {value:g} is out of range (must be {bound}{unit})")


def more_than(key: str, value: float | None, low: float, *, unit: str = "") -> None:
    """`value` (None: not set) must be above `low` (a duration that cannot be zero)."""
    if value is not None and not value > low:
        raise ConfigError(f"{key}: {value:g} is out of range (must be more than {low:g}{unit})")


def loadable_certificate(cert_key: str, key_key: str, cert: str, key: str) -> None:
    """The PEM certificate and private key parse and belong together (what the TLS listener needs)."""
    for name, path in ((cert_key, cert), (key_key, key)):
        if not Path(path).is_file():
            raise ConfigError(f"{name}: no such file {path!r}")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key)
    except ssl.SSLError as exc:
        raise ConfigError(
            f"{cert_key}/{key_key}: {cert!r} and {key!r} are not a usable PEM pair: {exc.reason}"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{cert_key}: cannot read {cert!r} or {key!r}: {exc.strerror}") from None


def validate(config: ServerConfig) -> ServerConfig:
    """`config` unchanged if the server can run it; else `ConfigError` naming the first bad key."""
    sip = config.sip
    within("sip.listen", sip.port, 0, MAX_PORT)
    within("sip.tls_port", sip.tls_port, 1, MAX_PORT)
    within("sip.max_calls", sip.max_calls, 1, PJSUA_MAX_CALLS, unit=": the build's PJSUA_MAX_CALLS")
    within("sip.answer_delay", sip.answer_delay, 0, unit=" seconds")
    within("sip.pjsip_log_level", sip.pjsip_log_level, 0, PJSIP_MAX_LOG_LEVEL)
    more_than("rtp.media_timeout", sip.media_timeout, 0, unit=" seconds")
    within("server.drain_timeout", config.drain_timeout, 0, unit=" seconds")
    more_than("server.no_input_timeout", config.no_input_timeout, 0, unit=" seconds")
    more_than("server.max_call_duration", config.max_call_duration, 0, unit=" seconds")
    more_than("server.response_timeout", config.response_timeout, 0, unit=" seconds")
    more_than("model.session_limit", config.model.settings.get("session_limit"), 0, unit=" seconds")
    within("server.workers", config.workers, 0, MAX_WORKERS)
    if config.workers and agents_in_main(config):
        raise ConfigError(
            f"server.workers: {config.workers} worker processes cannot import an agent of the running "
            "script (__main__): set workers = 0, or name the agent by its module"
        )
    if config.log_level.lower() not in LOG_LEVELS:
        raise ConfigError(f"server.log_level: {config.log_level!r} is not one of {', '.join(LOG_LEVELS)}")
    _check_tls(config)
    _check_paths(config)
    _check_webhooks(config)
    return config


def _check_webhooks(config: ServerConfig) -> None:
    hooks = config.webhooks
    if hooks is None:
        return
    if not hooks.urls:
        raise ConfigError("server.webhooks.urls: give at least one URL (or drop [server.webhooks])")
    for url in hooks.urls:
        try:
            check_url(url)
        except ValueError as exc:
            raise ConfigError(f"server.webhooks.urls: {exc}") from None
    if not hooks.secret:
        raise ConfigError("server.webhooks.secret: missing (the key receivers check signatures with)")
    more_than("server.webhooks.timeout", hooks.timeout, 0, unit=" seconds")
    within("server.webhooks.retries", hooks.retries, 0, MAX_WEBHOOK_RETRIES)
    within("server.webhooks.queue_size", hooks.queue_size, 1)


def _check_tls(config: ServerConfig) -> None:
    sip = config.sip
    if sip.tls_port is None:
        for key, value in (("sip.tls_cert", sip.tls_cert), ("sip.tls_key", sip.tls_key)):
            if value is not None:
                raise ConfigError(f"{key}: given without sip.tls_port, the TLS listener it is for")
        return
    if sip.tls_cert is None or sip.tls_key is None:
        missing = "sip.tls_cert" if sip.tls_cert is None else "sip.tls_key"
        raise ConfigError(f"{missing}: sip.tls_port needs a certificate and its key (PEM files)")
    if sip.tls_port == sip.port and sip.tcp:
        raise ConfigError(f"sip.tls_port: {sip.tls_port} is the SIP port, where TCP listens already")
    loadable_certificate("sip.tls_cert", "sip.tls_key", sip.tls_cert, sip.tls_key)


def _check_paths(config: ServerConfig) -> None:
    model_path = config.model.settings.get("llm_model_path")
    if model_path is not None and not Path(model_path).is_file():
        raise ConfigError(f"model.llm_model_path: no such file {model_path!r}")
    for key, folder in (
        ("transcripts_dir", config.transcripts_dir),
        ("recordings_dir", config.recordings_dir),
    ):
        if folder is not None and folder.exists() and not folder.is_dir():
            raise ConfigError(f"server.{key}: {str(folder)!r} is not a folder")
    if config.cdr_file is not None and config.cdr_file.is_dir():
        raise ConfigError(f"server.cdr_file: {str(config.cdr_file)!r} is a folder, not a file")
