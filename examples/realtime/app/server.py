"""A voice agent in the browser: a web page talks to the agent over WebRTC.

    python examples/realtime/app/server.py            # then open http://127.0.0.1:8080

The page (static/, no external assets) sends its microphone to POST /offer as an SDP offer; the
server answers with a `WebRtcTransport` and runs the assistant over it with `RealtimeRunner`. The
session's events (both sides' transcripts, tool calls, the latency of each answer) go back to the
page over the WebRTC data channel. The model is OpenAI Realtime when ``OPENAI_API_KEY`` is set,
else voicegw's embedded offline model. Ctrl-C hangs up every conversation and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path
from typing import Any

import structlog

try:
    from aiohttp import web
except ModuleNotFoundError:  # the "app" extra, which scripts/setup.sh installs
    sys.exit("this example needs aiohttp: .venv/bin/pip install 'voicegw[app]'")

from voicegw.contracts.model import ModelSpeechStopped, ModelTranscriptDelta, ModelUnavailable
from voicegw.models.registry import MODELS
from voicegw.realtime import (
    AssistantMessageItem,
    RealtimeAgentStartEvent,
    RealtimeAudio,
    RealtimeAudioInterrupted,
    RealtimeCallState,
    RealtimeError,
    RealtimeHistoryAdded,
    RealtimeHistoryUpdated,
    RealtimeInputAudioTranscriptionCompleted,
    RealtimeInputAudioTranscriptionDelta,
    RealtimeRawModelEvent,
    RealtimeRunner,
    RealtimeSessionEvent,
    RealtimeToolEnd,
    RealtimeToolStart,
)
from voicegw.rtp.clock import MediaClock
from voicegw.transports.webrtc import WebRtcOfferError, WebRtcTransport

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # examples/realtime: the shared assistant
from assistant import AGENT, configure_logging, make_model

STATIC = Path(__file__).resolve().parent / "static"
DEFAULT_RATE = 24000
MAX_CONVERSATIONS = 8
"""Each conversation holds a model (the embedded one is heavy): more are refused with 503."""

ERROR_GRACE_S = 0.5
LOGGED = ("user", "agent", "tool", "tool_output", "latency")
"""Page messages also printed on stdout (final transcripts only)."""

log = structlog.get_logger()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Talk to a realtime voice agent from a web page (WebRTC).")
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to serve the page on (default 127.0.0.1)"
    )
    parser.add_argument("--port", type=int, default=8080, help="HTTP port (default 8080; 0 picks a free one)")
    parser.add_argument(
        "--model", choices=sorted(MODELS), help="default: openai if OPENAI_API_KEY is set, else local"
    )
    parser.add_argument("--base-url", help="OpenAI Realtime endpoint (a proxy, Azure, a local test server)")
    parser.add_argument("--rate", type=int, default=DEFAULT_RATE, help="the conversation's sample rate")
    parser.add_argument("--greeting", help="a fixed greeting the agent says first")
    parser.add_argument("--verbose", action="store_true", help="show voicegw's log lines (on stderr)")
    return parser.parse_args(argv)


class PageEvents:
    """Session events as the page's JSON messages; also times each answer.

    An answer's latency runs from the end of the caller's turn (the model's speech-stopped, or
    the final transcript when the model reports no turn end) to the agent's first audio.
    """

    def __init__(self, now: Any) -> None:
        self._now = now
        self._turn_ended: float | None = None
        self._timed: set[str] = set()
        self._said: dict[str, str] = {}

    def convert(self, event: RealtimeSessionEvent) -> list[dict[str, Any]]:
        match event:
            case RealtimeAgentStartEvent(agent=agent):
                return [{"type": "status", "text": f"{agent.name} is listening"}]
            case RealtimeRawModelEvent(data=ModelSpeechStopped()):
                self._turn_ended = self._now()
            case RealtimeRawModelEvent(data=ModelTranscriptDelta(item_id=item_id, delta=delta)):
                return [{"type": "agent_delta", "item_id": item_id, "delta": delta}]
            case RealtimeInputAudioTranscriptionDelta(item_id=item_id, transcript=text):
                return [{"type": "user", "item_id": item_id, "text": text, "final": False}]
            case RealtimeInputAudioTranscriptionCompleted(item_id=item_id, transcript=text):
                if self._turn_ended is None:
                    self._turn_ended = self._now()
                return [{"type": "user", "item_id": item_id, "text": text, "final": True}]
            case RealtimeAudio(item_id=item_id) if item_id not in self._timed:
                self._timed.add(item_id)
                if self._turn_ended is not None:
                    ms = round((self._now() - self._turn_ended) * 1000)
                    self._turn_ended = None
                    return [{"type": "latency", "item_id": item_id, "ms": ms}]
            case RealtimeToolStart(tool=tool, arguments=arguments, call_id=call_id):
                return [{"type": "tool", "call_id": call_id, "name": tool.name, "arguments": arguments}]
            case RealtimeToolEnd(tool=tool, output=output, call_id=call_id):
                return [{"type": "tool_output", "call_id": call_id, "name": tool.name, "output": output}]
            case RealtimeAudioInterrupted(item_id=item_id, played_ms=played_ms):
                return [{"type": "interrupted", "item_id": item_id, "played_ms": played_ms}]
            case RealtimeHistoryAdded(item=item):
                return self._agent_said([item])
            case RealtimeHistoryUpdated(history=history):
                return self._agent_said(history)
            case RealtimeCallState(state=state, reason=reason):
                return [{"type": "call", "state": state, "reason": reason}]
            case RealtimeError(message=message):
                return [{"type": "error", "message": message}]
        return []

    def _agent_said(self, items: list[Any]) -> list[dict[str, Any]]:
        """The agent's final text per item, once (a barge-in shortens it to what was heard)."""
        out = []
        for item in items:
            if not isinstance(item, AssistantMessageItem) or item.status == "in_progress":
                continue
            text = " ".join(part.transcript or "" for part in item.content if part.type == "audio").strip()
            if text and self._said.get(item.item_id) != text:
                self._said[item.item_id] = text
                out.append({"type": "agent", "item_id": item.item_id, "text": text, "status": item.status})
        return out


class App:
    """The web app: the page, the offers, and every conversation it started (each an owned task)."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.agent = AGENT.clone(greeting=args.greeting) if args.greeting else AGENT
        self.clock = MediaClock()
        self.conversations: dict[asyncio.Task[None], WebRtcTransport] = {}

    def routes(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/", self.index)
        app.router.add_post("/offer", self.offer)
        app.router.add_static("/static/", STATIC)
        return app

    async def index(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "index.html")

    async def offer(self, request: web.Request) -> web.Response:
        if len(self.conversations) >= MAX_CONVERSATIONS:
            return web.json_response({"error": "too many conversations, try again later"}, status=503)
        try:
            body = await request.json()
            sdp = body["sdp"]
            if not isinstance(sdp, str):
                raise TypeError(f"sdp is {type(sdp).__name__}")
        except (ValueError, KeyError, TypeError, RecursionError):  # RecursionError: nested too deep
            return web.json_response({"error": 'expected JSON {"sdp": ..., "type": "offer"}'}, status=400)
        await self.clock.start()
        transport = WebRtcTransport(sample_rate=self.args.rate, clock=self.clock)
        try:
            answer = await transport.accept(sdp)
        except WebRtcOfferError as exc:
            await transport.close()
            return web.json_response({"error": str(exc)}, status=400)
        task = asyncio.create_task(self.converse(transport), name=transport.call_id)
        self.conversations[task] = transport
        task.add_done_callback(self._forget)
        return web.json_response({"sdp": answer, "type": "answer", "call_id": transport.call_id})

    def _forget(self, task: asyncio.Task[None]) -> None:
        self.conversations.pop(task, None)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("conversation_failed", call_id=task.get_name(), error=repr(exc))

    async def converse(self, transport: WebRtcTransport) -> None:
        """One conversation, from the answered offer to the hang-up."""
        page = PageEvents(asyncio.get_running_loop().time)
        print(f"[{transport.call_id}] connected", flush=True)
        try:
            runner = RealtimeRunner(self.agent, model=make_model(self.args.model, self.args.base_url))
            async with await runner.run(transport=transport) as session:
                async for event in session.all_events():
                    for message in page.convert(event):
                        transport.send_message(message)
                        if message["type"] in LOGGED and message.get("final", True):
                            print(f"[{transport.call_id}] {message}", flush=True)
            print(f"[{transport.call_id}] ended: {session.result.end_reason}", flush=True)
        except (SystemExit, ModelUnavailable, ConnectionError, TimeoutError) as exc:
            # The model is missing or unreachable: the page says so, the server goes on.
            transport.send_message({"type": "error", "message": f"the model could not start: {exc}"})
            print(f"[{transport.call_id}] the model could not start: {exc}", file=sys.stderr, flush=True)
            await asyncio.sleep(ERROR_GRACE_S)  # let the message reach the page before hanging up
        finally:
            await transport.close()

    async def close(self) -> None:
        """Hang up every conversation and wait for them to end."""
        tasks = list(self.conversations)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.clock.stop()


async def serve(args: argparse.Namespace) -> int:
    app = App(args)
    runner = web.AppRunner(app.routes(), handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, args.host, args.port)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await site.start()
        port = runner.addresses[0][1]
        print(f"listening on http://{args.host}:{port}/ (Ctrl-C to stop)", flush=True)
        await stop.wait()
        print("[stopping]", flush=True)
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        await app.close()
        await runner.cleanup()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging(args.verbose)
    return asyncio.run(serve(args))


if __name__ == "__main__":
    sys.exit(main())
