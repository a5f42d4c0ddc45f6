"""The `voicegw serve` process: the media clock, the SIP user agent, a handler per call, drain.

Shutdown follows uvicorn: the first SIGTERM/SIGINT stops taking calls (new INVITEs get 503) and
lets calls in progress finish for up to `drain_timeout`; a second signal hangs up at once.
"""

from __future__ import annotations

import asyncio
import functools
import signal
import weakref
from typing import TYPE_CHECKING, Any

import structlog

from voicegw.models.base import RealtimeModel
from voicegw.rtp.clock import MediaClock
from voicegw.server.admission import access_policy
from voicegw.server.config import DEFAULT_AGENT, ServerConfig
from voicegw.server.http import HealthServer
from voicegw.server.metrics import Metrics
from voicegw.server.observe import CallWatch
from voicegw.server.routing import Router
from voicegw.server.supervisor import CallSupervisor
from voicegw.sip.call import CallInfo, Rejection, SipCall
from voicegw.sip.ua import SipUserAgent
from voicegw.transports.sip_call import SipCallTransport

if TYPE_CHECKING:
    from voicegw.realtime import RealtimeRunConfig

log = structlog.get_logger(__name__)

HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM)
MODEL_BUSY = Rejection(503, "Agent busy", retry=True)


async def echo(call: SipCall) -> None:
    """The classic telephony echo test: the caller hears itself, after our whole media path."""
    transport = SipCallTransport(call)
    async for frame in transport.frames():
        await transport.play(frame.pcm, item_id="echo")


class AgentCalls:
    """Runs the routed agent on each call, on a model of the configured kind.

    While the model reports itself saturated, new calls get 503 (the calls in progress keep their
    share).
    """

    def __init__(self, config: ServerConfig, watch: CallWatch | None = None) -> None:
        from voicegw.models.registry import create_model

        self.config = config
        self.watch = watch
        self.router = Router(config.routes, config.agent or DEFAULT_AGENT, config.agent_options)
        name = None if config.model.name == "auto" else config.model.name
        self._new_model = functools.partial(create_model, name, **config.model.settings)
        self._models: weakref.WeakSet[RealtimeModel] = weakref.WeakSet()
        self._probe = self.new_model()  # fail at start, not on the first call, when it is missing
        vocabulary = list(config.model.vocabulary)
        self._run_config: RealtimeRunConfig = (
            {"model_settings": {"vocabulary": vocabulary}} if vocabulary else {}
        )

    def new_model(self) -> RealtimeModel:
        """A model for one call, watched for saturation while it lives."""
        model = self._new_model()
        self._models.add(model)
        return model

    async def prepare(self) -> None:
        """Load the model's files before the first call comes (the embedded model's take seconds)."""
        await self._probe.prepare()

    def admit(self, info: CallInfo) -> Rejection | None:
        """503 while the model is saturated."""
        return MODEL_BUSY if any(model.saturated for model in self._models) else None

    async def __call__(self, call: SipCall) -> None:
        from voicegw.realtime import RealtimeResult, RealtimeRunner, RealtimeSession

        match = self.router.resolve(call.info)
        log = call.log.bind(agent=match.agent.name)
        record = self.watch.session(call, match.agent.name) if self.watch is not None else None
        transport = SipCallTransport(call)
        model = self.new_model()
        session = RealtimeSession(transport, model=model, config=self._run_config)
        supervisor = CallSupervisor(
            session.say,
            transport.hang_up,
            no_input_timeout=self.config.no_input_timeout,
            prompt=self.config.no_input_prompt,
            max_duration=self.config.max_call_duration,
        )
        log.info("agent_start", route=match.path)
        run: asyncio.Future[RealtimeResult] = asyncio.ensure_future(
            RealtimeRunner.run(match.agent, session=session, context=call.info)
        )
        watch = asyncio.create_task(supervisor.run())
        try:
            async for event in session:
                supervisor.on_event(event)
                if record is not None:
                    record.on_event(event)
            result = await run
        finally:
            for task in (run, watch):
                task.cancel()
            await asyncio.gather(run, watch, return_exceptions=True)
            if record is not None:
                await record.finish(session)
        ended_by = watch.result() if watch.done() and not watch.cancelled() else None
        log.info(
            "session_ended", end_reason=result.end_reason, supervisor=ended_by, agent=result.final_agent.name
        )


class Server:
    """One `voicegw serve` process."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.should_exit = asyncio.Event()
        self.force_exit = False
        self.clock = MediaClock()
        self.metrics = Metrics(lambda: self.ua.active_calls)
        self.watch = CallWatch(
            self.metrics,
            transcripts_dir=config.transcripts_dir,
            recordings_dir=config.recordings_dir if config.record else None,
        )
        self.agents = None if config.echo else AgentCalls(config, self.watch)
        self.mode = "echo" if self.agents is None else "agent"
        self.access = access_policy(config)
        self.ua = SipUserAgent(
            config.sip,
            self.clock,
            self.watch.wrap(echo, agent="echo") if self.agents is None else self.watch.wrap(self.agents),
            self.admit,
            guard=self.access,
        )
        self.ua.observers.append(self.metrics)
        self.metrics.count_refusals(self.access.refused)
        self.http = HealthServer(*config.http, self.health, self.metrics.render) if config.http else None

    def admit(self, info: CallInfo) -> Rejection | None:
        """Whether the model has room (503); who may call is the guard's (`access_policy`)."""
        return self.agents.admit(info) if self.agents else None

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
            if self.agents is not None:
                await self.agents.prepare()
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
            await self.watch.close()
            await self.clock.stop()
            for sig in HANDLED_SIGNALS:
                loop.remove_signal_handler(sig)
        log.info("stopped", clock=self.clock.stats)

    def _mode_note(self) -> str:
        if self.agents is None:
            return "echo mode: every caller hears itself"
        if not self.config.agent and not self.config.routes:
            return "no agent configured (--agent): the default front-desk agent answers"
        return ""

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
