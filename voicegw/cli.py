"""The `voicegw` command: parse, configure, hand over to the server; errors become one line."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import click

from voicegw.models.base import ModelUnavailable
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
from voicegw.sip.ua import SipStartError


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
def serve(
    config_path: Path | None,
    listen: str | None,
    echo: bool,
    agent: str | None,
    http: str | None,
    rtp_ports: str | None,
    log_level: str | None,
) -> None:
    """Answer SIP calls and run an agent (or the echo test) on each."""
    try:
        config = build_config(
            config_path, listen=listen, echo=echo, agent=agent, rtp_ports=rtp_ports, http=http
        )
        if log_level:
            config = dataclasses.replace(config, log_level=log_level)
        configure_logging(config.log_level)
        from voicegw.server.app import run

        run(config)
    except (ConfigError, SipStartError, HttpStartError, ModelUnavailable) as exc:
        click.echo(f"voicegw: {exc}", err=True)
        sys.exit(2)


def build_config(
    path: Path | None,
    *,
    listen: str | None = None,
    echo: bool = False,
    agent: str | None = None,
    rtp_ports: str | None = None,
    http: str | None = None,
) -> ServerConfig:
    """The file's configuration with the command line's options on top."""
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
    return dataclasses.replace(config, sip=sip, echo=echo or config.echo, agent=agent or config.agent)
