"""The `voicegw serve` process: the media clock, the SIP user agent, a handler per call, drain.

Shutdown follows uvicorn: the first SIGTERM/SIGINT stops taking calls (new INVITEs get 503) and
lets calls in progress finish for up to `drain_timeout`; a second signal hangs up at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import signal
import time
import weakref
from typing import TYPE_CHECKING, Any

import structlog

from voicegw.contracts.model import ModelUnavailable, RealtimeModel, RealtimeModelConfig
from voicegw.contracts.transport import EndReason, TransportClosed
from voicegw.models.local.workers import shared_model_stuck
from voicegw.rtp.clock import MediaClock
from voicegw.server.admission import access_policy
from voicegw.server.apology import Apology
from voicegw.server.call_reports import CallReports
from voicegw.server.config import DEFAULT_AGENT, ServerConfig, agents_in_main
from voicegw.server.heap import freeze_start_up
from voicegw.server.http import HealthServer
from voicegw.server.loop import EVENT_LOOP
from voicegw.server.loop import run as run_loop
from voicegw.server.metrics import Metrics
from voicegw.server.model_watch import (
    EMBEDDED_ALLOWANCE_S,
    READY_TIMEOUT_S,
    Preconnectable,
    ResponseWatch,
)
from voicegw.server.observe import CallWatch
from voicegw.server.routing import Match, Router
from voicegw.server.supervisor import CallSupervisor
from voicegw.server.workers.pool import WorkerPool
from voicegw.sip.call import CallInfo, Rejection, SipCall
from voicegw.sip.ua import CallHandler, Readiness, SipUserAgent
from voicegw.transports.sip_call import SipCallTransport

if TYPE_CHECKING:
    from voicegw.realtime import RealtimeRunConfig, RealtimeSession

log = structlog.get_logger(__name__)

HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM)
MODEL_BUSY = Rejection(503, "Agent busy", retry=True)
MODEL_UNAVAILABLE = Rejection(503, "Agent unavailable", retry=True)
AGENT_FAILED = Rejection(500, "Agent failed")


async def echo(call: SipCall) -> None:
    """The classic telephony echo test: the caller hears itself, after our whole media path."""
    transport = SipCallTransport(call)
    # The caller may hang up between a frame coming in and its echo going out: a normal end.
    with contextlib.suppress(TransportClosed):
        async for frame in transport.frames():
            await transport.play(frame.pcm, item_id="echo")


class _AgentCallTransport(SipCallTransport):
    """The session's transport: closing the session leaves the call up, for `AgentCalls` to end
    (after an apology, when the model failed)."""

    async def close(self) -> None:
        return None


class AgentCalls:
    """Runs the routed agent on each call, on a model of the configured kind.

    A call is answered only once its model can serve it: while the model reports itself
    saturated, new calls get 503 at once; a remote model is connected while the call rings, and
    one that cannot be had within `READY_TIMEOUT_S` means 503 with Retry-After. When the model
    fails once the call is up (lost for good, stalled while a response is due) or the session
    breaks, the caller hears an apology that needs no model, and the call ends.
    """

    def __init__(self, config: ServerConfig, watch: CallWatch | None = None) -> None:
        from voicegw.models.registry import create_model, default_model_name

        self.config = config
        self.watch = watch
        self.router = Router(config.routes, config.agent or DEFAULT_AGENT, config.agent_options)
        name = None if config.model.name == "auto" else config.model.name
        self._local = (name or default_model_name()) == "local"
        self._new_model = functools.partial(create_model, name, **config.model.settings)
        self._models: weakref.WeakSet[RealtimeModel] = weakref.WeakSet()
        self._probe = self.new_model()  # fail at start, not on the first call, when it is missing
        vocabulary = list(config.model.vocabulary)
        self._run_config: RealtimeRunConfig = (
            {"model_settings": {"vocabulary": vocabulary}} if vocabulary else {}
        )
        self.apology = Apology.shipped()
        self._ready: dict[SipCall, tuple[Match, RealtimeModel]] = {}
        """Each ringing call's agent and model (connected), until its handler takes them (or it ends)."""
        self._closing: set[asyncio.Task[None]] = set()

    def new_model(self) -> RealtimeModel:
        """A model for one call, watched for saturation while it lives."""
        model = self._new_model()
        self._models.add(model)
        return model

    async def prepare(self) -> None:
        """Load the model's files before the first call comes (the embedded model's take seconds),
        and the apology, in the embedded model's voice when that is the agents' model."""
        await self._probe.prepare()
        if self._local:
            self.apology = await Apology.spoken()
        log.info("apology_ready", source=self.apology.source)

    def admit(self, info: CallInfo) -> Rejection | None:
        """503 while the model is saturated."""
        return MODEL_BUSY if any(model.saturated for model in self._models) else None

    async def ready(self, call: SipCall) -> Rejection | None:
        """While `call` rings: connect a remote model for it (None), or 503 if it cannot be had."""
        try:
            match = self.router.resolve(call.info)
        except Exception:  # the agent factory's bug: refuse the call, never leave it ringing
            call.log.exception("agent_failed")
            return AGENT_FAILED
        # Bound here, the agent's name reaches the model's own tasks, started now.
        structlog.contextvars.bind_contextvars(agent=match.agent.name)
        model = self.new_model()
        if isinstance(model, Preconnectable):
            try:
                await asyncio.wait_for(
                    model.preconnect(RealtimeModelConfig(sample_rate=call.sample_rate)), READY_TIMEOUT_S
                )
            except (TimeoutError, ConnectionError, ModelUnavailable) as exc:
                await model.close()
                timed_out = isinstance(exc, TimeoutError)
                cause = "model_connect_timeout" if timed_out else "model_unreachable"
                detail = f"no connection within {READY_TIMEOUT_S:g} s" if timed_out else str(exc)
                self._fault(call.log, cause, detail)
                return MODEL_UNAVAILABLE
        self._ready[call] = (match, model)
        return None

    def call_ended(self, call: SipCall, status: int) -> None:
        """`CallObserver`: a call that ended before its handler took its model closes the model."""
        ready = self._ready.pop(call, None)
        if ready is not None:
            task = asyncio.get_running_loop().create_task(ready[1].close())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    def call_started(self, call: SipCall) -> None:
        """`CallObserver`: nothing to do (`ready` runs when it rings)."""

    def call_rejected(self, call: SipCall, status: int) -> None:
        """`CallObserver`: nothing to do (`call_ended` follows)."""

    def call_answered(self, call: SipCall) -> None:
        """`CallObserver`: nothing to do."""

    def call_setup_failed(self, call: SipCall, cause: str) -> None:
        """`CallObserver`: nothing to do (`call_ended` follows and closes the model)."""

    async def close(self) -> None:
        """Close the models of calls that never got to their handler."""
        for call in list(self._ready):
            self.call_ended(call, 0)
        await asyncio.gather(*self._closing, return_exceptions=True)

    async def __call__(self, call: SipCall) -> None:
        from voicegw.realtime import RealtimeRunner, RealtimeSession

        ready = self._ready.pop(call, None)
        match, model = ready if ready is not None else (self.router.resolve(call.info), self.new_model())
        log = call.log.bind(agent=match.agent.name)
        record = self.watch.session(call, match.agent.name) if self.watch is not None else None
        transport = _AgentCallTransport(call)
        session = RealtimeSession(transport, model=model, config=self._run_config)
        supervisor = CallSupervisor(
            session.say,
            transport.hang_up,
            no_input_timeout=self.config.no_input_timeout,
            prompt=self.config.no_input_prompt,
            max_duration=self.config.max_call_duration,
        )
        greets = match.agent.greeting is not None or match.agent.greeting_instructions is not None
        silence = self.config.response_timeout + (EMBEDDED_ALLOWANCE_S if self._local else 0.0)
        responses = ResponseWatch(silence, greeting=greets, steps=model if model.watches_steps else None)
        log.info("agent_start", route=match.path)
        run = asyncio.ensure_future(RealtimeRunner.run(match.agent, session=session, context=call.info))
        supervision = asyncio.create_task(supervisor.run())
        stall = asyncio.create_task(self._close_when_stalled(responses, session))
        tasks: list[asyncio.Future[Any]] = [run, supervision, stall]
        fault: tuple[str, str] | None = None
        try:
            async for event in session.all_events():
                supervisor.on_event(event)
                responses.on_event(event)
                if record is not None:
                    record.on_event(event)
            await run
        except (ConnectionError, TimeoutError, ModelUnavailable) as exc:  # the model could not start
            fault = ("model_unreachable", str(exc) or type(exc).__name__)
        except Exception as exc:  # a bug (a tool, a hook, the session): the caller still hears why
            log.exception("agent_failed")
            fault = ("internal_error", repr(exc))
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if record is not None:
                await record.finish(session)
        result = session.result
        if fault is None and responses.detail is not None:
            fault = ("model_stalled", responses.detail)
        elif fault is None and result.end_reason == "error":
            fault = ("model_lost", result.error or "the model failed")
        if fault is not None and not call.ended:
            self._fault(log, *fault)
            await self.apology.play(transport)
            await call.hang_up(EndReason.MODEL_FAILED)
        elif not call.ended:
            await call.hang_up(EndReason.CLOSED)
        log.info(
            "session_ended",
            end_reason=result.end_reason,
            supervisor=supervision.result() if _finished(supervision) else None,
            agent=result.final_agent.name,
        )

    async def _close_when_stalled(self, responses: ResponseWatch, session: RealtimeSession) -> None:
        await responses.stalled()
        await session.close()

    def _fault(self, log: Any, cause: str, detail: str) -> None:
        """The one log line and metric of a model failure the caller would notice."""
        log.warning("model_fault", cause=cause, detail=detail)
        if self.watch is not None and self.watch.metrics is not None:
            self.watch.metrics.model_faults.labels(cause=cause).inc()


def _finished(task: asyncio.Task[Any]) -> bool:
    """Done by itself (not cancelled)."""
    return task.done() and not task.cancelled()


class LocalCalls:
    """How one process runs the calls it is given: the echo test, or the routed agents."""

    def __init__(self, config: ServerConfig, watch: CallWatch) -> None:
        self.agents = None if config.echo else AgentCalls(config, watch)
        self.handler: CallHandler = (
            watch.wrap(echo, agent="echo") if self.agents is None else watch.wrap(self.agents)
        )
        self.ready: Readiness | None = self.agents.ready if self.agents is not None else None

    def admit(self, info: CallInfo) -> Rejection | None:
        """Whether the model has room (503); who may call is the guard's (`access_policy`)."""
        return self.agents.admit(info) if self.agents else None

    async def prepare(self) -> None:
        if self.agents is not None:
            await self.agents.prepare()

    async def close(self) -> None:
        if self.agents is not None:
            await self.agents.close()


def worker_count(config: ServerConfig) -> int:
    """How many call workers to run: the configured number, else one per core, or none when an
    agent lives in the running script (``__main__:AGENT``), which another process cannot import."""
    if config.workers is not None:
        return config.workers
    return 0 if agents_in_main(config) else os.cpu_count() or 1


class Server:
    """One `voicegw serve` process: signalling here, calls here or in worker processes."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.should_exit = asyncio.Event()
        self.force_exit = False
        self.clock = MediaClock()
        self.metrics = Metrics(lambda: self.ua.active_calls)
        self.reports = CallReports(cdr_file=config.cdr_file, webhooks=config.webhooks, metrics=self.metrics)
        self.watch = CallWatch(
            self.metrics,
            transcripts_dir=config.transcripts_dir,
            recordings_dir=config.recordings_dir if config.record else None,
            records=self.reports.records,
        )
        workers = worker_count(config)
        self.pool = WorkerPool(config, workers, self.metrics, self.reports.records) if workers else None
        self.local = None if self.pool is not None else LocalCalls(config, self.watch)
        self.mode = "echo" if config.echo else "agent"
        self.access = access_policy(config)
        if self.pool is not None:
            self.ua = SipUserAgent(
                config.sip, self.clock, self.pool.run, guard=self.access,
                ready=self.pool.ready, media=self.pool.bind_media,
            )  # fmt: skip
            self.ua.observers.extend((self.metrics, self.reports.records))
        else:
            assert self.local is not None
            self.ua = SipUserAgent(
                config.sip, self.clock, self.local.handler, self.local.admit,
                guard=self.access, ready=self.local.ready,
            )  # fmt: skip
            self.ua.observers.extend((self.metrics, self.reports.records))
            if self.local.agents is not None:
                self.ua.observers.append(self.local.agents)
        self.metrics.count_refusals(self.access.refused)
        self.http = None
        if config.http and self.pool is not None:
            self.http = HealthServer(
                *config.http, self.health, self.pool.render_metrics, self.pool.refresh_metrics
            )
        elif config.http:
            self.http = HealthServer(*config.http, self.health, self.metrics.render)

    def health(self) -> tuple[bool, dict[str, Any]]:
        """What ``GET /health`` reports: taking calls unless draining, no worker is up, or (calls
        in this process) the embedded model is stuck."""
        details: dict[str, Any] = {"mode": self.mode, "active_calls": self.ua.active_calls}
        taking = not self.ua.draining
        if self.pool is not None:
            details["workers"] = self.pool.health()
            taking = taking and self.pool.up > 0
        elif shared_model_stuck(time.monotonic()):
            # No worker retires and is replaced here: only a restart frees a thread stuck in a C
            # library, and until then every call is refused. Say so to whoever can restart us.
            details["model"] = "stuck"
            taking = False
        if not taking and not self.ua.draining:
            details["status"] = "unavailable"  # not "draining", which the probe would say
        return taking, details

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
        self.reports.start()
        try:
            if self.local is not None:
                await self.local.prepare()
            if self.pool is not None:
                await self.pool.start()
            await self.ua.start()
            if self.http is not None:
                await self.http.start()
            frozen = freeze_start_up()
            log.info(
                "serving",
                mode=self.mode,
                event_loop=EVENT_LOOP,
                listen=f"{self.config.sip.host}:{self.config.sip.port}",
                http=f"{self.config.http[0]}:{self.http.port}" if self.config.http and self.http else None,
                note=self._mode_note(),
                workers=self.pool.count if self.pool is not None else 0,
                frozen_objects=frozen,
            )
            await self.should_exit.wait()
            await self._drain()
        finally:
            if self.http is not None:
                await self.http.stop()
            await self.ua.stop()
            await self.reports.close()
            if self.local is not None:
                await self.local.close()
            if self.pool is not None:
                await self.pool.stop()
            await self.watch.close()
            await self.clock.stop()
            for sig in HANDLED_SIGNALS:
                loop.remove_signal_handler(sig)
        log.info("stopped", clock=self.clock.stats)

    def _mode_note(self) -> str:
        if self.config.echo:
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
    run_loop(Server(config).serve())
