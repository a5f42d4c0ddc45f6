"""A phone number answered by a realtime agent, through Twilio Media Streams.

    python examples/realtime/twilio/server.py --port 8080 --public-host abc123.ngrok.app

One port serves both halves of the integration:

- ``GET /twiml``: the TwiML Twilio runs when the number is called,
  ``<Response><Connect><Stream url="wss://PUBLIC_HOST/media-stream"/></Connect></Response>``
  (without ``--public-host``, the host Twilio used to reach us: the request's ``Host``);
- ``/media-stream``: the WebSocket Twilio then opens; each stream runs the agent over a
  `TwilioStreamTransport` (8 kHz μ-law in and out, barge-in through ``clear`` and marks).

The model is OpenAI Realtime when ``OPENAI_API_KEY`` is set, else voicegw's embedded offline
model (``--model`` chooses; ``OPENAI_BASE_URL`` or ``--base-url`` points the OpenAI model
elsewhere). Ctrl-C ends the calls in progress and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import logging
import os
import signal
import sys
from typing import Any
from xml.sax.saxutils import quoteattr

import structlog
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from voicegw.contracts.model import ModelUnavailable, RealtimeModel
from voicegw.models.registry import MODELS, create_model, default_model_name
from voicegw.realtime import (
    RealtimeAgent,
    RealtimeAudioInterrupted,
    RealtimeCallState,
    RealtimeDtmf,
    RealtimeError,
    RealtimeInputAudioTranscriptionCompleted,
    RealtimeRunner,
    RealtimeSession,
    RealtimeSessionEvent,
    function_tool,
)
from voicegw.transports.twilio_protocol import TwilioProtocolError
from voicegw.transports.twilio_stream import TwilioStreamTransport

TWIML_PATH = "/twiml"
STREAM_PATH = "/media-stream"


@function_tool
def get_time() -> str:
    """The current local time."""
    return datetime.datetime.now().strftime("%H:%M")


AGENT = RealtimeAgent(
    name="Phone Assistant",
    instructions=(
        "You are a helpful assistant on a phone line. Answer in one or two short spoken sentences. "
        "Use get_time for the time."
    ),
    tools=[get_time],
    greeting="Hello! How can I help you?",
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Answer Twilio calls with a realtime voice agent (Media Streams over WebSocket)."
    )
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on (default: 0.0.0.0)")
    parser.add_argument("--port", type=int, default=8080, help="port to listen on (default: 8080; 0: any)")
    parser.add_argument(
        "--public-host",
        default=os.environ.get("PUBLIC_HOST"),
        help="host name Twilio reaches this server at, for the TwiML's wss:// URL "
        "(default: $PUBLIC_HOST, else the Host header of the TwiML request)",
    )
    parser.add_argument(
        "--model", choices=sorted(MODELS), help="default: openai if OPENAI_API_KEY is set, else local"
    )
    parser.add_argument("--base-url", help="OpenAI Realtime endpoint (a proxy, Azure, a local test server)")
    parser.add_argument("--verbose", action="store_true", help="show voicegw's log lines (on stderr)")
    args = parser.parse_args(argv)
    if args.base_url and (args.model or default_model_name()) != "openai":
        parser.error("--base-url is for the openai model")
    return args


def twiml(public_host: str) -> str:
    """The TwiML that connects a call to this server's media stream."""
    url = quoteattr(f"wss://{public_host}{STREAM_PATH}")
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Response><Connect><Stream url={url}/></Connect></Response>\n"
    )


class TwilioAgentServer:
    """Serves the TwiML and runs the agent on every media stream."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.calls = 0

    def make_model(self) -> RealtimeModel:
        settings: dict[str, Any] = {"base_url": self.args.base_url} if self.args.base_url else {}
        return create_model(self.args.model or default_model_name(), **settings)

    def route(self, connection: ServerConnection, request: Request) -> Response | None:
        """HTTP before the WebSocket handshake: the TwiML, or 404; None lets the stream through."""
        path = request.path.split("?", 1)[0]
        if path == STREAM_PATH:
            return None
        if path != TWIML_PATH:
            return connection.respond(404, f"no such path {path}\n")
        host = self.args.public_host or request.headers.get("Host", "localhost")
        body = twiml(host).encode()
        headers = Headers([("Content-Type", "text/xml"), ("Content-Length", str(len(body)))])
        return Response(200, "OK", headers, body)

    async def handle(self, ws: ServerConnection) -> None:
        """One call: the agent over the stream until the caller hangs up (or we stop)."""
        try:
            transport = await TwilioStreamTransport.accept(ws)
        except (TwilioProtocolError, TimeoutError) as exc:
            print(f"[stream] refused: {exc}", file=sys.stderr)
            return
        self.calls += 1
        call = transport.call_id
        print(f"[call {call}] connected")
        session = RealtimeSession(transport, model=self.make_model())

        async def show_events() -> None:
            async for event in session.all_events():
                show(call, event)

        events = asyncio.create_task(show_events())
        try:
            result = await RealtimeRunner.run(AGENT, session=session)
            await events
        except (ModelUnavailable, ConnectionError, TimeoutError) as exc:
            print(f"[call {call}] the model could not start: {exc}", file=sys.stderr)
            return
        finally:
            events.cancel()
            await session.close()
        print(f"[call {call}] ended: {result.end_reason}")


def show(call: str, event: RealtimeSessionEvent) -> None:
    match event:
        case RealtimeInputAudioTranscriptionCompleted(transcript=transcript):
            print(f"[call {call}] caller: {transcript}")
        case RealtimeAudioInterrupted(played_ms=played_ms):
            print(f"[call {call}] agent interrupted after {played_ms} ms")
        case RealtimeDtmf(digit=digit):
            print(f"[call {call}] key {digit}")
        case RealtimeError(message=message):
            print(f"[call {call}] error: {message}", file=sys.stderr)
        case RealtimeCallState(state="ended", reason=reason):
            print(f"[call {call}] hung up: {reason}")


async def run(args: argparse.Namespace) -> int:
    server = TwilioAgentServer(args)
    try:
        await server.make_model().close()  # a missing model fails now, not on the first call
    except ModelUnavailable as exc:
        print(exc, file=sys.stderr)
        return 1
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        async with serve(server.handle, args.host, args.port, process_request=server.route) as ws_server:
            port = next(iter(ws_server.sockets)).getsockname()[1]
            public = args.public_host or f"{args.host}:{port}"
            listening = f"http://{args.host}:{port}{TWIML_PATH} -> wss://{public}{STREAM_PATH}"
            print(f"[listening] {listening}", flush=True)
            await stop.wait()
            print("[stopping]", flush=True)
            # Leaving `serve` closes every stream: each call's session ends and its handler returns.
    except OSError as exc:
        print(f"cannot listen on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)
        return 1
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
    print(f"[done] {server.calls} call(s)")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.INFO if args.verbose else logging.WARNING
        ),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
