"""The `voicegw` command: parse, configure, hand over to the server; errors become one line."""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.metadata
import sys
from pathlib import Path
from typing import TYPE_CHECKING

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
from voicegw.server.loop import run as run_loop
from voicegw.server.workers.pool import WorkerStartError
from voicegw.sip.call import Busy, CallFailed, NoAnswer
from voicegw.sip.ua import DIAL_TIMEOUT_S, SipStartError

if TYPE_CHECKING:
    from voicegw.server.amd import AmdOptions, AmdOutcome

EXIT_FAILED = 1
"""`voicegw call`: the call was rejected or failed (any final status but busy and no answer)."""
EXIT_CONFIG = 2
"""Bad configuration or arguments, or SIP/HTTP could not start."""
EXIT_BUSY = 3
EXIT_NO_ANSWER = 4
EXIT_VOICEMAIL_LEFT = 5
"""`voicegw call --amd`: a machine answered and the message was left after its beep."""
EXIT_MACHINE = 6
"""`voicegw call --amd`: a machine answered and no message was left (``--on-machine hangup``,
or the machine hung up or the model failed before the message was out)."""
EXIT_AMD_UNKNOWN = 7
"""`voicegw call --amd`: detection could not tell (a silent line); the agent talked."""
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
@click.option(
    "--workers",
    type=int,
    default=None,
    help="Call worker processes; 0: calls run in this one. [default: one per core]",
)
@click.option("--check", is_flag=True, help="Check the configuration (and load the agents), then exit.")
def serve(
    config_path: Path | None,
    listen: str | None,
    echo: bool,
    agent: str | None,
    http: str | None,
    rtp_ports: str | None,
    log_level: str | None,
    workers: int | None,
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
            workers=workers,
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
    except (ConfigError, SipStartError, HttpStartError, ModelUnavailable, WorkerStartError) as exc:
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
@click.option("--amd", is_flag=True, help="Detect an answering machine before the agent talks.")
@click.option(
    "--on-machine",
    type=click.Choice(["leave_voicemail", "hangup"]),
    help="With --amd, what a machine gets. [default: leave_voicemail]",
)
@click.option(
    "--voicemail-message", help="With --amd, the voicemail to leave word for word. [default: the agent's own]"
)
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
    amd: bool,
    on_machine: str | None,
    voicemail_message: str | None,
    log_level: str | None,
) -> None:
    """Dial SIP_URI and run the agent when answered.

    With --amd the first seconds of the callee's audio say who answered: a person gets the
    agent; a machine gets, after its greeting and beep, the agent's voicemail (or
    --voicemail-message), or a hang-up with --on-machine hangup.

    \b
    Exit status:
      0  the call completed (with --amd: a person answered and talked with the agent)
      1  the call was rejected or failed
      2  bad configuration or arguments
      3  busy
      4  no answer
      5  --amd: a machine answered, the voicemail was left
      6  --amd: a machine answered, no voicemail was left
      7  --amd: could not tell who answered; the agent talked
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
        options = amd_options(amd, on_machine, voicemail_message)
        configure_logging(log_level or config.log_level)
        dial = call_out(
            config, uri, account=account, headers=parse_headers(headers), ring_timeout=timeout, amd=options
        )
        result = run_loop(dial)
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
    if result.amd is not None:
        status = amd_exit_status(result.amd)
        click.echo(f"voicegw: answered by: {describe_amd(result.amd)}", err=True)
        sys.exit(status)


def amd_options(amd: bool, on_machine: str | None, voicemail_message: str | None) -> AmdOptions | None:
    """`--amd` and its options as `AmdOptions` (None without `--amd`); `ConfigError` if they clash."""
    from voicegw.server.amd import AmdOptions

    if not amd:
        if on_machine or voicemail_message is not None:
            raise ConfigError("--on-machine and --voicemail-message need --amd")
        return None
    if on_machine == "hangup" and voicemail_message is not None:
        raise ConfigError("--voicemail-message needs --on-machine leave_voicemail, not hangup")
    if voicemail_message is not None and not voicemail_message.strip():
        raise ConfigError("--voicemail-message is empty")
    return AmdOptions(
        on_machine="hangup" if on_machine == "hangup" else "leave_voicemail",
        voicemail_message=voicemail_message,
    )


def amd_exit_status(outcome: AmdOutcome) -> int:
    """The exit status of a completed call placed with `--amd`."""
    match outcome.decision.verdict:
        case "human":
            return 0
        case "unknown":
            return EXIT_AMD_UNKNOWN
        case "machine":
            return EXIT_VOICEMAIL_LEFT if outcome.voicemail_left else EXIT_MACHINE


def describe_amd(outcome: AmdOutcome) -> str:
    """One line on who answered and what was done (the last line `voicegw call --amd` prints)."""
    decision = outcome.decision
    said = f"{decision.verdict} ({decision.cause}, decided {decision.at_ms} ms after the answer)"
    if decision.verdict != "machine":
        return said
    if outcome.voicemail_left and outcome.recording is not None:
        return f"{said}; voicemail left after the {outcome.recording.cause} at {outcome.recording.at_ms} ms"
    return f"{said}; no voicemail left"


@main.command()
@click.option("--config", "config_path", type=click.Path(path_type=Path), help="TOML configuration file.")
@click.option("--listen", help="SIP address HOST:PORT to check. [default: the config's, else 0.0.0.0:5060]")
@click.option("--http", help="HTTP address HOST:PORT to check. [default: the config's]")
@click.option("--rtp-ports", help="RTP port range LOW-HIGH to check. [default: the config's]")
def doctor(config_path: Path | None, listen: str | None, http: str | None, rtp_ports: str | None) -> None:
    """Check this machine for the configured server: pjsua2's build, codecs, model files, ports,
    addresses, the OpenAI key, jemalloc. Exit status 0 when nothing is wrong, else 1."""
    from voicegw.server.doctor import diagnose, report

    click.echo(f"voicegw doctor: voicegw {importlib.metadata.version('voicegw')}, {describe(config_path)}")
    try:
        config = build_config(config_path, listen=listen, rtp_ports=rtp_ports, http=http)
    except ConfigError as exc:
        click.echo(f"  PROBLEM  configuration: {exc}")
        sys.exit(EXIT_FAILED)
    findings = diagnose(config)
    for line in report(findings):
        click.echo(line)
    if any(finding.status == "problem" for finding in findings):
        sys.exit(EXIT_FAILED)


def describe(config_path: Path | None) -> str:
    return f"configuration {config_path}" if config_path else "the default configuration"


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
    workers: int | None = None,
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
            workers=config.workers if workers is None else workers,
        )
    )
