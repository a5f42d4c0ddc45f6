"""A phone number answered by a realtime agent, over a Twilio Elastic SIP Trunk.

    python examples/realtime/twilio_sip/server.py --public-address 203.0.113.10

Twilio sends each call to the trunk's origination URI (``sip:YOUR-PUBLIC-IP:5060``) as a plain
SIP INVITE; voicegw's SIP server answers it and runs the agent below on the call's RTP audio.
The settings come from ``sip_profiles/twilio.toml`` (Twilio's signalling addresses as the
allow-list, PCMU first, the termination account for outbound calls); the options here override
the few a first run needs. README.md next to this file sets up the trunk.

The model is OpenAI Realtime when ``OPENAI_API_KEY`` is set (``OPENAI_BASE_URL`` points it
elsewhere), else voicegw's embedded offline model (``--model`` chooses). Ctrl-C stops taking
calls, lets the calls in progress finish (a second Ctrl-C hangs up at once) and exits.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import ipaddress
import sys
from pathlib import Path

from voicegw.cli import build_config
from voicegw.contracts.model import ModelUnavailable
from voicegw.models.registry import default_model_name
from voicegw.realtime import RealtimeAgent, function_tool
from voicegw.server.app import run
from voicegw.server.config import ConfigError, ModelChoice, ServerConfig
from voicegw.server.http import HttpStartError
from voicegw.server.logging import configure_logging
from voicegw.sip.ua import SipStartError

PROFILE = Path(__file__).resolve().parents[3] / "sip_profiles" / "twilio.toml"
MODELS = ("auto", "local", "openai")


@function_tool
def get_time() -> str:
    """The current local time."""
    return datetime.datetime.now().strftime("%H:%M")


AGENT = RealtimeAgent(
    name="Phone Agent",
    instructions=(
        "You answer phone calls. Be concise: one or two short spoken sentences, no lists, no "
        "markdown. Use get_time for the time. When the caller says goodbye, say goodbye."
    ),
    tools=[get_time],
    greeting="Hello! How can I help you?",
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Answer calls from a Twilio Elastic SIP Trunk with a realtime voice agent."
    )
    parser.add_argument(
        "--config", type=Path, default=PROFILE, help=f"voicegw TOML configuration (default: {PROFILE.name})"
    )
    parser.add_argument("--listen", help="SIP address HOST:PORT, UDP and TCP (default: the config's)")
    parser.add_argument(
        "--public-address",
        help="the public IP address Twilio reaches this server at, for SDP and Contact "
        "(default: the config's public_address)",
    )
    parser.add_argument(
        "--allow",
        action="append",
        metavar="CIDR",
        help="replace the config's allow-list of caller networks (repeatable); for trying it "
        "from a softphone or a test, e.g. --allow 127.0.0.1/32",
    )
    parser.add_argument("--rtp-ports", help="RTP port range LOW-HIGH (default: the config's)")
    parser.add_argument(
        "--model", choices=MODELS, default="auto", help="auto: openai if OPENAI_API_KEY is set, else local"
    )
    parser.add_argument(
        "--verbose", action="store_true", help="voicegw's log lines at info level (on stderr)"
    )
    return parser.parse_args(argv)


def make_config(args: argparse.Namespace) -> ServerConfig:
    """The profile, this file's agent, and the command line on top; `ConfigError` if wrong."""
    config = build_config(args.config, listen=args.listen, agent="__main__:AGENT", rtp_ports=args.rtp_ports)
    sip = config.sip
    if args.public_address:
        sip = dataclasses.replace(sip, public_address=args.public_address)
    allow = config.allow
    if args.allow:
        for net in args.allow:
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError:
                raise ConfigError(f"--allow: {net!r} is not an address or CIDR network") from None
        allow = tuple(args.allow)
    model = config.model if args.model == "auto" else ModelChoice(args.model)
    return dataclasses.replace(config, sip=sip, allow=allow, model=model)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        config = make_config(args)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    configure_logging("info" if args.verbose else "warning")
    allowed = "loopback and LAN" if config.allow is None else f"{len(config.allow)} network(s)"
    model = default_model_name() if config.model.name == "auto" else config.model.name
    print(
        f"[answering] sip:{config.sip.host}:{config.sip.port} (public {config.sip.media_address}), "
        f"callers from {allowed}, model {model}",
        flush=True,
    )
    try:
        run(config)
    except (ConfigError, SipStartError, HttpStartError, ModelUnavailable) as exc:
        print(exc, file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C before the server's own handler was in place
        pass
    print("[done]", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
