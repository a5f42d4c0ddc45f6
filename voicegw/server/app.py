"""The `voicegw serve` process: the media clock, the SIP user agent, a handler per call, drain.

Shutdown follows uvicorn: the first SIGTERM/SIGINT stops taking calls (new INVITEs get 503) and
lets calls in progress finish for up to `drain_timeout`; a second signal hangs up at once.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import signal
from typing import Any

import structlog

from voicegw.rtp.clock import MediaClock
from voicegw.server.config import ConfigError, ServerConfig
from voicegw.server.http import HealthServer
from voicegw.sip.call import SipCall
from voicegw.sip.ua import CallHandler, SipUserAgent
from voicegw.transports.sip_call import SipCallTransport

log = structlog.get_logger(__name__)

HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


async def echo(call: SipCall) -> None:
    """The classic telephony echo test: the caller hears itself, after our whole media path."""
    transport = SipCallTransport(call)
    async for frame in transport.frames():
        await transport.play(frame.pcm, item_id="echo")


def load_object(path: str) -> Any:
    """Import ``module:attribute``; raises `ConfigError` saying which half is wrong."""
    module_name, sep, attribute = path.partition(":")
    if not sep or not module_name or not attribute:
        raise ConfigError(f"agent: {path!r} is not 'module:attribute'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"agent: cannot import module {module_name!r}: {exc}") from None
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise ConfigError(f"agent: module {module_name!r} has no attribute {attribute!r}") from None


def agent_handler(agent_path: str, options: dict[str, Any] | None = None) -> CallHandler:
    """Run a realtime agent (or a factory taking the call's info and `options`) on each call."""
    from voicegw.models.registry import create_model
    from voicegw.realtime import RealtimeAgent, RealtimeRunner, RealtimeSession

    target = load_object(agent_path)
    if not isinstance(target, RealtimeAgent) and not callable(target):
        raise ConfigError(f"agent: {agent_path!r} is neither a RealtimeAgent nor a factory")
    if options and isinstance(target, RealtimeAgent):
        raise ConfigError(f"[agent]: options are for agent factories; {agent_path!r} is an agent")
    try:  # wrong [agent] options fail at start, not on every call
        _ = options and inspect.signature(target).bind(None, **options)
    except TypeError as exc:
        raise ConfigError(f"[agent]: {exc}") from None
    create_model()  # fail at start, not on the first call, when the model is missing

    async def run(call: SipCall) -> None:
        agent = target if isinstance(target, RealtimeAgent) else target(call.info, **(options or {}))
        session = RealtimeSession(SipCallTransport(call), model=create_model())
        result = await RealtimeRunner.run(agent, session=session, context=call.info)
        call.log.info("session_ended", end_reason=result.end_reason, agent=result.final_agent.name)

    return run


class Server:
    """One `voicegw serve` process."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.should_exit = asyncio.Event()
        self.force_exit = False
        self.clock = MediaClock()
        if config.agent and not config.echo:
            self.handler = agent_handler(config.agent, config.agent_options)
            self.mode = "agent"
        else:
            self.handler = echo
            self.mode = "echo"
        self.ua = SipUserAgent(config.sip, self.clock, self.handler)
        self.http = HealthServer(*config.http, self.health) if config.http else None

    def health(self) -> tuple[bool, dict[str, Any]]:
        """What ``GET /health`` reports: taking calls unless draining."""
        return not self.ua.draining, {"mode": self.mode, "active_calls": self.ua.active_calls}

    def handle_exit(self, sig: signal.Signals) -> None:
        if self.should_exit.is_set():
            log.warning("force_exit", signal=sig.name)
            self.force_exit = True
        else:
            log.info("draining", signal=sig.name, active_calls=self.ua.active_calls)
        self.ua.draining = True
        self.should_exit.set()

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in HANDLED_SIGNALS:
            loop.add_signal_handler(sig, self.handle_exit, sig)
        await self.clock.start()
        try:
            await self.ua.start()
            if self.http is not None:
                await self.http.start()
            log.info(
                "serving",
                mode=self.mode,
                listen=f"{self.config.sip.host}:{self.config.sip.port}",
                http=f"{self.config.http[0]}:{self.http.port}" if self.config.http and self.http else None,
                note=self._mode_note(),
            )
            await self.should_exit.wait()
            await self._drain()
        finally:
            if self.http is not None:
                await self.http.stop()
            await self.ua.stop()
            await self.clock.stop()
            for sig in HANDLED_SIGNALS:
                loop.remove_signal_handler(sig)
        log.info("stopped", clock=self.clock.stats)

    def _mode_note(self) -> str:
        if self.mode != "echo":
            return ""
        if self.config.echo:
            return "echo mode: every caller hears itself"
        return "no agent configured (--agent): answering in echo mode, every caller hears itself"

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.drain_timeout
        while self.ua.active_calls and not self.force_exit and loop.time() < deadline:
            await asyncio.sleep(0.1)
        if self.ua.active_calls:
            log.warning("drain_timeout", active_calls=self.ua.active_calls)


def run(config: ServerConfig) -> None:
    """Serve until a signal says stop."""
    asyncio.run(Server(config).serve())
