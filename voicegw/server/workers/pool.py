"""The server's side of its call workers: start and restart them, hand each call to one.

The user agent binds an incoming call's RTP/RTCP sockets here (`WorkerPool.bind_media`, inside
the pjsua2 callback that writes the SDP answer), then asks the pool whether the call may be
answered (`ready`): the least loaded worker resolves the call's agent and connects its model
(`Prepare` → `Ready` / `Refused`). Once media is negotiated the sockets go to that worker
(`StartMedia`, SCM_RIGHTS); after the 200 OK the worker runs the call's handler (`Answered`) and
`run` forwards what signalling learns (hold, resume, SIP INFO digits) until the call ends. When
pjsua reports the end, `WorkerMedia.close` tells the worker (`Ended`) and waits for its final
media counters (`Finished`), which the metrics read as before.

A worker that dies (its control socket reaches end of file) takes only its own calls: each is
hung up with a Reason header (`EndReason.WORKER_FAILED`), ringing ones are refused with 503, and
the worker is started again after a back-off. A worker whose loop hangs without dying (a handler
stuck in a blocking call, a stopped process) stops answering the server's pings (`heartbeat.py`):
it is killed, and its calls go the same way.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import pickle
import sys
import time
from collections.abc import AsyncIterator, Coroutine
from typing import Any

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, generate_latest
from typing_extensions import Unpack

from voicegw.contracts.transport import CallStateChanged, DtmfReceived, EndReason
from voicegw.rtp.events import Address, EndpointEvent
from voicegw.rtp.ports import PortAllocator, allocator_for
from voicegw.server.config import ServerConfig
from voicegw.server.metrics import Metrics
from voicegw.server.observe import CallFacts
from voicegw.server.workers import protocol as p
from voicegw.server.workers.channel import Channel, ChannelClosed, channel_pair
from voicegw.server.workers.heartbeat import Heartbeat
from voicegw.server.workers.metrics_sum import sum_expositions
from voicegw.sip.call import Rejection, SipCall, spawn_for_call
from voicegw.sip.media import MediaStart

log = structlog.get_logger(__name__)

START_TIMEOUT_S = 120.0
"""A worker's start: imports, the agents, the embedded model's files."""
READY_WAIT_S = 15.0
"""Safety bound on `Prepare` (the worker bounds its model connection well below it)."""
SNAPSHOT_WAIT_S = 1.0
"""How long a scrape waits for the workers' fresh metrics (a worker late for it counts as before)."""
FINISH_WAIT_S = 5.0
"""How long the end of a call waits for the worker's final media counters."""
STOP_WAIT_S = 5.0
"""How long a worker may take to exit after `Stop` before it is killed."""
BUSY_AVOIDED_S = 5.0
"""How long a worker that refused a call with 503 (its embedded model's turns queue, or a step of
it is stuck) gets new calls only if every other worker refused one too: it is not the least
loaded for having no calls, while another could answer."""
EXIT_WAIT_S = 1.0
"""How long a worker whose channel has ended gets to exit on its own before it is killed."""
RESTART_BACKOFF_S = (0.5, 10.0)
"""First and longest wait before a dead worker is started again (doubling in between)."""
STABLE_AFTER_S = 30.0
"""A worker up this long resets its back-off."""

WORKER_FAILED = Rejection(503, "Worker failed", retry=True, detail="the call's worker process died")
NO_WORKER = Rejection(503, "No worker available", retry=True, detail="every worker is down")
WORKER_FAILED_DETAIL = "worker failed"


class WorkerStartError(RuntimeError):
    """A worker could not start (a missing model, an agent that does not import)."""


class WorkerMedia:
    """A call's media in a worker (`CallMedia`): its sockets are bound here, the rest is there."""

    def __init__(self, pool: WorkerPool, key: int, host: str, port_range: tuple[int, int]) -> None:
        self._pool = pool
        self.key = key
        self._allocator: PortAllocator = allocator_for(port_range)
        self._rtp_sock, self._rtcp_sock = self._allocator.bind(host)
        self.local_port: int = self._rtp_sock.getsockname()[1]
        self.worker: Worker | None = None
        self.call: SipCall | None = None
        self.ready: asyncio.Future[Rejection | None] = asyncio.get_running_loop().create_future()
        self.finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._stats: dict[str, Any] = {}
        self._closed = False

    def send(self, message: p.ToWorker, fds: tuple[int, ...] = ()) -> None:
        """To the call's worker; a worker already gone is handled by its death (not here)."""
        if self.worker is not None and self.worker.channel is not None:
            with contextlib.suppress(ChannelClosed):
                self.worker.channel.send(message, fds)

    async def connect(self) -> None:
        """Nothing to do here: the worker hands the sockets to its own event loop."""

    def start(self, **params: Unpack[MediaStart]) -> None:
        remote = params["remote"]
        rtcp = params.get("remote_rtcp") or (remote[0], remote[1] + 1)
        srtp = params.get("srtp")
        message = p.StartMedia(
            key=self.key, codec=params["codec"], payload_type=params["payload_type"],
            remote_host=remote[0], remote_port=remote[1], rtcp_host=rtcp[0], rtcp_port=rtcp[1],
            telephone_event_pt=params.get("telephone_event_pt"), sample_rate=params["sample_rate"],
            ptime_ms=params.get("ptime_ms", 20), media_timeout=params.get("media_timeout", 30.0),
            srtp_suite=srtp.suite if srtp else None, srtp_local_key=srtp.local_key.hex() if srtp else "",
            srtp_remote_key=srtp.remote_key.hex() if srtp else "",
        )  # fmt: skip
        self.send(message, (self._rtp_sock.fileno(), self._rtcp_sock.fileno()))

    def update_remote(self, remote: Address, remote_rtcp: Address | None = None) -> None:
        rtcp = remote_rtcp or (remote[0], remote[1] + 1)
        self.send(p.MediaMoved(self.key, remote[0], remote[1], rtcp[0], rtcp[1]))

    def rekey_srtp(self, remote_key: bytes) -> None:
        self.send(p.Rekey(self.key, remote_key.hex()))

    def set_hold(self, held: bool) -> None:
        self.send(p.Hold(self.key, held))

    def events(self) -> AsyncIterator[EndpointEvent]:
        """None here: the worker watches the media itself (RFC 4733 digits, the media timeout)."""
        return _nothing()

    async def send_dtmf(self, digits: str, *, duration_ms: int = 100) -> None:
        raise RuntimeError("the call's media runs in a worker: its handler sends DTMF there")

    def finish(self, stats: dict[str, Any]) -> None:
        """The worker's final counters (or none, when it died)."""
        self._stats = stats
        if not self.finished.done():
            self.finished.set_result(None)

    async def close(self) -> None:
        """Tell the worker the call is over, take its final counters, free the ports (idempotent)."""
        if self._closed:
            return
        self._closed = True
        try:
            if self.worker is not None and self.call is not None:
                reason = self.call.end_reason or EndReason.CALLER_HUNG_UP
                self.send(p.Ended(self.key, reason.value, self.call.end_detail))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(self.finished), FINISH_WAIT_S)
                self.worker.calls.pop(self.key, None)
        finally:  # cancelled too (a shutdown that stops waiting): the ports are ours to free
            self.call = None  # the call points here: no cycle outlives it
            self._rtp_sock.close()
            self._rtcp_sock.close()
            self._allocator.release(self.local_port)

    @property
    def stats(self) -> dict[str, Any]:
        return {**self._stats, "local_port": self.local_port}


async def _nothing() -> AsyncIterator[EndpointEvent]:
    nothing: tuple[EndpointEvent, ...] = ()
    for event in nothing:
        yield event


class Worker:
    """One worker process slot: its process, its control channel, its calls."""

    def __init__(self, pool: WorkerPool, index: int) -> None:
        self.pool = pool
        self.index = index
        self.process: asyncio.subprocess.Process | None = None
        self.channel: Channel | None = None
        self.calls: dict[int, WorkerMedia] = {}
        self.snapshot = ""
        """Its metrics, as last sent."""
        self.snapshot_waiters: list[asyncio.Future[None]] = []
        self.up = False
        self.started_at = 0.0
        self.busy_at = -BUSY_AVOIDED_S
        """When it last refused a call with 503 (`time.monotonic()`)."""
        self.heartbeat: Heartbeat | None = None
        self.silent_s: float | None = None
        """How long it had not answered when the heartbeat killed it (None: it was not)."""
        self.log = log.bind(worker=index)

    async def spawn(self, config_blob: str) -> None:
        """Start the process and wait until it takes calls; `WorkerStartError` if it cannot."""
        ours, theirs = channel_pair()
        try:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "voicegw.server.workers.process", str(theirs.fileno()), str(self.index),
                pass_fds=(theirs.fileno(),), stdin=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self.channel = Channel(ours, peer=f"worker-{self.index}")
        try:
            self.channel.send(p.Configure(config_blob))
            first = await asyncio.wait_for(self.channel.receive(), START_TIMEOUT_S)
        except (TimeoutError, ChannelClosed):
            first = None
        match first:
            case (p.Started(pid=pid), _):
                self.up, self.started_at = True, time.monotonic()
                self.heartbeat, self.silent_s = Heartbeat(self.started_at), None
                self.log.info("worker_started", pid=pid)
            case (p.StartFailed(error=error), _):
                await self.reap()
                raise WorkerStartError(error)
            case _:
                await self.reap()
                code = self.process.returncode
                raise WorkerStartError(f"call worker {self.index} did not start (exit status {code})")

    async def serve(self) -> None:
        """Handle the worker's messages until its channel ends (or the heartbeat ends it)."""
        assert self.channel is not None
        beating = asyncio.create_task(self._beat())
        try:
            while (received := await self.channel.receive()) is not None:
                message, fds = received
                for fd in fds:  # only the server sends descriptors
                    os.close(fd)
                try:
                    self.pool.handle(self, message)
                except (ValueError, KeyError) as exc:  # a message that decodes but makes no sense
                    self.log.warning("worker_message_refused", message=message.type, reason=str(exc))
        finally:
            beating.cancel()
            await asyncio.gather(beating, return_exceptions=True)

    async def _beat(self) -> None:
        """Ping the worker; kill it once it has not answered for too long (its loop is stuck)."""
        assert self.heartbeat is not None and self.channel is not None and self.process is not None
        while True:
            await asyncio.sleep(self.heartbeat.interval)
            now = time.monotonic()
            seq = self.heartbeat.tick(now)
            if self.heartbeat.overdue(now):
                self.silent_s = round(self.heartbeat.silent_for(now), 1)
                with contextlib.suppress(ProcessLookupError):
                    self.process.kill()  # SIGKILL: a stopped or stuck process cannot refuse it
                self.channel.close()  # `serve` ends now: the death path takes its calls
                return
            with contextlib.suppress(ChannelClosed):  # gone: `serve` sees the end
                self.channel.send(p.Ping(seq))

    async def reap(self) -> int | None:
        """Close the channel; kill the process if it still runs and wait for it."""
        self.up = False
        if self.channel is not None:
            self.channel.close()
        if self.process is None:
            return None
        with contextlib.suppress(TimeoutError):
            # A worker retiring itself closes its end first, then exits: not killed for that.
            await asyncio.wait_for(asyncio.shield(self.process.wait()), EXIT_WAIT_S)
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
        return await self.process.wait()

    async def stop(self) -> None:
        """Ask the worker to exit (it has no calls left); kill it if it does not."""
        if self.channel is not None and not self.channel.closed:
            with contextlib.suppress(ChannelClosed):
                self.channel.send(p.Stop())
        if self.process is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.process.wait(), STOP_WAIT_S)
        await self.reap()


class WorkerPool:
    """`count` worker processes and the calls they run (see the module's docstring)."""

    def __init__(
        self, config: ServerConfig, count: int, metrics: Metrics, records: CallFacts | None = None
    ) -> None:
        """`records` learn the facts a worker finds about each of its calls (agent, transcript)."""
        self.config = config
        self.count = count
        self.metrics = metrics
        self.records = records
        self.workers = [Worker(self, index) for index in range(count)]
        self._config_blob = base64.b64encode(pickle.dumps(config)).decode()
        self._keys = iter(range(1, p.MAX_KEY))
        self._supervisors: list[asyncio.Task[None]] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopping = False
        self._retired = ""
        """The summed metrics of worker processes that are gone (their counters must not vanish)."""
        self.restarts = Counter(
            "voicegw_worker_restarts",
            "Call worker processes started again, by cause: the one before died (exited, was killed), "
            "was unresponsive (its loop hung; the heartbeat killed it) or retired itself once idle "
            "with its embedded model stuck in an inference step (model_stuck).",
            ["cause"], registry=metrics.registry,
        )  # fmt: skip
        for cause in ("died", "unresponsive", "model_stuck"):
            self.restarts.labels(cause)  # both series exist (at 0) before the first restart
        up = Gauge("voicegw_workers_up", "Call worker processes taking calls.", registry=metrics.registry)
        up.set_function(lambda: self.up)

    @property
    def up(self) -> int:
        return sum(worker.up for worker in self.workers)

    async def start(self) -> None:
        """Start every worker (all must start), then watch them."""
        try:
            await asyncio.gather(*(worker.spawn(self._config_blob) for worker in self.workers))
        except BaseException:
            await asyncio.gather(*(worker.reap() for worker in self.workers), return_exceptions=True)
            raise
        self._supervisors = [asyncio.create_task(self._supervise(worker)) for worker in self.workers]

    async def stop(self) -> None:
        """Stop every worker (the calls are over, or being hung up by the user agent)."""
        self._stopping = True
        for task in self._supervisors:
            task.cancel()
        await asyncio.gather(*self._supervisors, return_exceptions=True)
        await asyncio.gather(*(worker.stop() for worker in self.workers))
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def health(self) -> dict[str, Any]:
        return {
            "up": self.up,
            "count": self.count,
            "calls": [len(worker.calls) for worker in self.workers],
        }

    async def refresh_metrics(self) -> None:
        """Ask every worker for its metrics now, and wait (briefly) for them."""
        waiters = []
        for worker in self.workers:
            if worker.up and worker.channel is not None:
                waiter = asyncio.get_running_loop().create_future()
                worker.snapshot_waiters.append(waiter)
                waiters.append(waiter)
                with contextlib.suppress(ChannelClosed):
                    worker.channel.send(p.SnapshotRequest())
        if waiters:
            await asyncio.wait(waiters, timeout=SNAPSHOT_WAIT_S)

    def render_metrics(self) -> tuple[bytes, str]:
        """This process's metrics and every worker's, summed (`voicegw.server.http.MetricsSource`)."""
        texts = [generate_latest(self.metrics.registry).decode(), self._retired]
        texts += [worker.snapshot for worker in self.workers]
        return sum_expositions(texts), CONTENT_TYPE_LATEST

    # --- the user agent's seams -------------------------------------------------------------

    def bind_media(self, host: str, port_range: tuple[int, int]) -> WorkerMedia:
        """`MediaFactory`: the call's sockets, bound now (the SDP answer names the port)."""
        return WorkerMedia(self, next(self._keys), host, port_range)

    async def ready(self, call: SipCall) -> Rejection | None:
        """`Readiness`: the least loaded worker prepares the call (agent, model), or 503."""
        media = _media_of(call)
        candidates = [worker for worker in self.workers if worker.up]
        if not candidates:
            call.log.warning("call_refused_no_worker")
            return NO_WORKER
        now = time.monotonic()
        worker = min(candidates, key=lambda w: (now - w.busy_at < BUSY_AVOIDED_S, len(w.calls)))
        media.worker, media.call = worker, call
        worker.calls[media.key] = media
        info = call.info
        media.send(
            p.Prepare(
                key=media.key, call_id=info.call_id, from_uri=info.from_uri, to_uri=info.to_uri,
                source_host=info.source[0], source_port=info.source[1], headers=dict(info.headers),
                sample_rate=call.sample_rate,
            )
        )  # fmt: skip
        call.log.info("call_to_worker", worker=worker.index)
        if self.config.echo:
            # The echo needs no model and refuses nothing: no round trip to the worker before the
            # 200 OK (its `Ready` settles nothing).
            return None
        try:
            return await asyncio.wait_for(asyncio.shield(media.ready), READY_WAIT_S)
        except TimeoutError:
            call.log.warning("worker_not_ready", worker=worker.index, after_s=READY_WAIT_S)
            return WORKER_FAILED

    async def run(self, call: SipCall) -> None:
        """`CallHandler`: the worker runs the handler; signalling's news goes to it meanwhile."""
        media = _media_of(call)
        media.send(p.Answered(media.key))
        async for event in call.events():
            match event:
                case CallStateChanged(state="held" | "resumed" as state, reason=reason):
                    media.send(p.StateChanged(media.key, "hold" if state == "held" else "resume", reason))
                case DtmfReceived(digit=digit, duration_ms=duration):
                    media.send(p.Dtmf(media.key, digit, duration))

    # --- messages from workers ----------------------------------------------------------------

    def handle(self, worker: Worker, message: p.Message) -> None:
        """One message from `worker`; raises ValueError (logged, dropped) when it makes no sense."""
        if isinstance(message, p.Pong):
            if worker.heartbeat is not None:
                worker.heartbeat.answered(message.seq, time.monotonic())
            return
        if isinstance(message, p.MetricsSnapshot):
            worker.snapshot = message.text
            waiters, worker.snapshot_waiters = worker.snapshot_waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)
            return
        key = getattr(message, "key", None)
        media = worker.calls.get(key) if isinstance(key, int) else None
        if media is None or media.call is None:
            raise ValueError(f"no call {key} on this worker")
        call = media.call
        match message:
            case p.Ready():
                _settle(media.ready, None)
            case p.Refused(status=status, reason=reason, retry=retry):
                if not 300 <= status <= 699:
                    raise ValueError(f"refusal status {status} is not a final error")
                if status == 503:
                    worker.busy_at = time.monotonic()
                _settle(media.ready, Rejection(status, reason[:100], retry=retry))
            case p.HangUp(end_reason=end_reason, detail=detail):
                self._spawn(call.hang_up(EndReason(end_reason), detail[:200]), call)
            case p.Transfer(target=target):
                self._spawn(self._transfer(media, call, target), call)
            case p.Facts(facts=facts):
                if self.records is not None:
                    try:
                        self.records.note(call, **facts)
                    except TypeError as exc:  # a fact no record has
                        raise ValueError(str(exc)) from None
            case p.Finished(stats=stats, dropped=dropped):
                media.finish({**stats, "bad_packets_by_reason": dropped})
            case _:
                raise ValueError(f"{message.type} is not a message a worker sends")

    async def _transfer(self, media: WorkerMedia, call: SipCall, target: str) -> None:
        result = await call.transfer(target)
        media.send(p.TransferStatus(media.key, result.status_code, result.reason))

    def _spawn(self, coro: Coroutine[Any, Any, Any], call: SipCall) -> None:
        spawn_for_call(coro, call, self._tasks, "worker-call")

    # --- a worker's death -----------------------------------------------------------------------

    async def _supervise(self, worker: Worker) -> None:
        backoff = RESTART_BACKOFF_S[0]
        while True:
            await worker.serve()
            status = await worker.reap()
            if self._stopping:
                return
            if status == p.EXIT_MODEL_STUCK:
                cause = "model_stuck"  # no calls left, and they had their apology: no error
                worker.log.warning("worker_retired", reason="embedded model stuck", exit_status=status)
            elif worker.silent_s is None:
                cause = "died"
                worker.log.error("worker_died", exit_status=status, calls=len(worker.calls))
            else:
                cause, silent_s, calls = "unresponsive", worker.silent_s, len(worker.calls)
                worker.log.error("worker_unresponsive", silent_s=silent_s, exit_status=status, calls=calls)
            self._calls_lost(worker, cause)
            self._retired = sum_expositions([self._retired, worker.snapshot]).decode()
            worker.snapshot = ""
            if time.monotonic() - worker.started_at > STABLE_AFTER_S:
                backoff = RESTART_BACKOFF_S[0]
            while True:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, RESTART_BACKOFF_S[1])
                try:
                    await worker.spawn(self._config_blob)
                    break
                except (WorkerStartError, OSError) as exc:  # OSError: no process could be made
                    worker.log.error("worker_restart_failed", error=str(exc), retry_in_s=backoff)
            self.restarts.labels(cause).inc()

    def _calls_lost(self, worker: Worker, cause: str) -> None:
        """End the calls of a dead worker, and only those."""
        for media in list(worker.calls.values()):
            call = media.call
            media.finish({})
            media.worker = None  # nothing more to tell: a restarted worker never knew the call
            if call is None:
                continue
            if not media.ready.done():
                _settle(media.ready, WORKER_FAILED)  # still ringing: 503
            elif not call.ended:
                call.log.warning("call_worker_failed", worker=worker.index, cause=cause)
                self._spawn(call.hang_up(EndReason.WORKER_FAILED, WORKER_FAILED_DETAIL), call)
        worker.calls.clear()


def _media_of(call: SipCall) -> WorkerMedia:
    if not isinstance(call.endpoint, WorkerMedia):
        raise TypeError(f"call {call.call_id} has no worker media")
    return call.endpoint


def _settle(future: asyncio.Future[Rejection | None], value: Rejection | None) -> None:
    if not future.done():
        future.set_result(value)
