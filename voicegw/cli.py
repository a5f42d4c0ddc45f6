"""The `voicegw` command: parse, configure, hand over to the server; errors become one line."""

from __future__ import annotations

import asyncio
import dataclasses
import sys
from pathlib import Path

import click

from voicegw.contracts.model import ModelUnavailable
from voicegw.server.allocator import use_configured_allocator
from voicegw.server.checks import validate
from voicegw.server.config import (
    DEFAULT_HTTP_PORT,
    ConfigError,
    ServerConfig,
    load,
    parse_host_port,
    parse_port_range,
)
from voicegw.server.http import HttpStartError
from voicegw.server.logging import configure_logging
from voicegw.sip.call import Busy, CallFailed, NoAnswer
from voicegw.sip.ua import DIAL_TIMEOUT_S, SipStartError

EXIT_FAILED = 1
"""`voicegw call`: the call was rejected or failed (any final status but busy and no answer)."""
EXIT_CONFIG = 2
"""Bad configuration or arguments, or SIP/HTTP could not start."""
EXIT_BUSY = 3
EXIT_NO_ANSWER = 4
EXIT_CANCELLED = 130


@click.group()
@click.version_option(package_name="voicegw")
def main() -> None:
    """voicegw: a telephony-first voice agent server."""


@main.command()
@click.option("--config", "config_path", type=click.Path(path_type=Path), help="TOML configuration file.")
@click.option("--listen", help="SIP address HOST:PORT (UDP and TCP). [default: 0.0.0.0:5060]")
@click.option("--echo", is_flag=True, help="Play each caller's audio back, with no model.")
@click.option("--agent", help="The agent answering calls, as module:attribute.")
@click.option("--http", help="HTTP health endpoint HOST:PORT (GET /health). [default: off]")
@click.option("--rtp-ports", help="RTP port range LOW-HIGH. [default: 20000-30000]")
@click.option("--log-level", default=None, help="debug, info, warning or error.")
@click.option("--check", is_flag=True, help="Check the configuration (and load the agents), then exit.")
def serve(
    config_path: Path | None,
    listen: str | None,
    echo: bool,
    agent: str | None,
    http: str | None,
    rtp_ports: str | None,
    log_level: str | None,
    check: bool,
) -> None:
    """Answer SIP calls and run an agent (or the echo test) on each."""
    try:
        config = build_config(
            config_path,
            listen=listen,
            echo=echo,
            agent=agent,
            rtp_ports=rtp_ports,
            http=http,
            log_level=log_level,
        )
        if not check:
            configure_logging(config.log_level)
            use_configured_allocator(config.allocator)  # may execute the server again, on jemalloc
        from voicegw.server.app import AgentCalls, run

        if check:
            if not config.echo:
                AgentCalls(config)  # imports every agent, builds the model: what a start would do
            click.echo(f"voicegw: the configuration is valid ({'echo' if config.echo else 'agent'} mode)")
            return
        run(config)
    except (ConfigError, SipStartError, HttpStartError, ModelUnavailable) as exc:
        click.echo(f"voicegw: {exc}", err=True)
        sys.exit(EXIT_CONFIG)


@main.command()
@click.argument("uri", metavar="SIP_URI")
@click.option(
    "--agent", help="The agent that talks once answered, as module:attribute. [default: the config's]"
)
@click.option("--config", "config_path", type=click.Path(path_type=Path), help="TOML configuration file.")
@click.option("--account", help="Which [[accounts]] entry dials. [default: the first]")
@click.option("--from", "from_uri", help="Our identity (the From URI), e.g. sip:1001@pbx.example.com.")
@click.option(
    "--timeout",
    type=float,
    default=DIAL_TIMEOUT_S,
    show_default=True,
    help="Seconds to let it ring before cancelling.",
)
@click.option("--header", "headers", multiple=True, help="Extra INVITE header 'Name: value' (repeatable).")
@click.option("--listen", help="Local SIP address HOST:PORT. [default: the config's, else any free port]")
@click.option("--log-level", default=None, help="debug, info, warning or error.")
def call(
    uri: str,
    agent: str | None,
    config_path: Path | None,
    account: str | None,
    from_uri: str | None,
    timeout: float,
    headers: tuple[str, ...],
    listen: str | None,
    log_level: str | None,
) -> None:
    """Dial SIP_URI and run the agent when answered.

    Exit status: 0 after a completed call, 3 busy, 4 no answer, 1 any other failure,
    2 bad configuration.
    """
    from voicegw.server.dialer import call_out, with_caller_id

    try:
        config = build_config(config_path, listen=listen, agent=agent)
        if not listen and not config_path:
            # A dialler needs no well-known port: any free one (5060 may be a server's).
            config = dataclasses.replace(config, sip=dataclasses.replace(config.sip, port=0))
        known = [a.name for a in config.sip.accounts]
        if account and account not in known:
            raise ConfigError(f"--account: no account {account!r} in the configuration (known: {known})")
        if from_uri:
            config = dataclasses.replace(config, sip=with_caller_id(config.sip, from_uri, account))
        configure_logging(log_level or config.log_level)
        dial = call_out(config, uri, account=account, headers=parse_headers(headers), ring_timeout=timeout)
        asyncio.run(dial)
    except (ConfigError, SipStartError, ModelUnavailable) as exc:
        click.echo(f"voicegw: {exc}", err=True)
        sys.exit(EXIT_CONFIG)
    except Busy as exc:
        click.echo(f"voicegw: busy: {exc}", err=True)
        sys.exit(EXIT_BUSY)
    except NoAnswer as exc:
        click.echo(f"voicegw: no answer: {exc}", err=True)
        sys.exit(EXIT_NO_ANSWER)
    except CallFailed as exc:
        click.echo(f"voicegw: call failed: {exc}", err=True)
        sys.exit(EXIT_FAILED)
    except (KeyboardInterrupt, asyncio.CancelledError):
        click.echo("voicegw: call cancelled", err=True)
        sys.exit(EXIT_CANCELLED)


def parse_headers(lines: tuple[str, ...]) -> dict[str, str]:
    """``Name: value`` options into headers; raises `ConfigError` for a line without a colon."""
    headers = {}
    for line in lines:
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            raise ConfigError(f"--header: {line!r} is not 'Name: value'")
        headers[name.strip()] = value.strip()
    return headers


def build_config(
    path: Path | None,
    *,
    listen: str | None = None,
    echo: bool = False,
    agent: str | None = None,
    rtp_ports: str | None = None,
    http: str | None = None,
    log_level: str | None = None,
) -> ServerConfig:
    """The file's configuration with the command line's options on top, validated as a whole."""
    config = load(path)
    sip = config.sip
    if listen:
        host, port = parse_host_port(listen, key="--listen")
        sip = dataclasses.replace(sip, host=host, port=port)
    if rtp_ports:
        sip = dataclasses.replace(sip, rtp_ports=parse_port_range(rtp_ports, key="--rtp-ports"))
    if http:
        config = dataclasses.replace(
            config, http=parse_host_port(http, key="--http", default_port=DEFAULT_HTTP_PORT)
        )
    return validate(
        dataclasses.replace(
            config,
            sip=sip,
            echo=echo or config.echo,
            agent=agent or config.agent,
            log_level=log_level or config.log_level,
        )
    )
