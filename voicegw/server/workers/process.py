"""A call worker process: `python -m voicegw.server.workers.process FD INDEX`, started by the server.

FD is its end of the control channel. The first message is the server's configuration; the
worker then loads the agents (as a server running calls itself would: `LocalCalls`), says
`Started`, and runs every call the server gives it: a mirror `SipCall` driven by the server's
messages, an `RtpEndpoint` on the sockets that come with `StartMedia`, on this process's own
media clock, and the same handler (echo, or the agent with its supervisor, transcript and
recording) as in one process. Call control (hang-up, transfer) goes back to the server as
messages. Signals are the server's business: the worker ignores SIGINT and SIGTERM and stops
on `Stop`, or when the server is gone (the channel ends).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import os
import pickle
import signal
import socket
import sys
import time
from typing import Any

import structlog

from voicegw.contracts.transport import CallInfo, DtmfReceived, EndReason
from voicegw.models.local.workers import shared_model_stuck
from voicegw.rtp.clock import MediaClock
from voicegw.rtp.endpoint import RtpEndpoint
from voicegw.rtp.ports import allocator_for
from voicegw.rtp.srtp import SrtpKeys
from voicegw.server.app import LocalCalls
from voicegw.server.config import ServerConfig
from voicegw.server.heap import freeze_start_up
from voicegw.server.logging import configure_logging
from voicegw.server.loop import run as run_loop
from voicegw.server.metrics import Metrics
from voicegw.server.observe import CallWatch
from voicegw.server.workers import protocol as p
from voicegw.server.workers.channel import Channel, ChannelClosed
from voicegw.sip.call import Rejection, SipCall, run_handler, spawn_for_call
from voicegw.sip.state import CallTrigger

log = structlog.get_logger(__name__)

METRICS_INTERVAL_S = 1.0
"""How often the worker sends its metrics (when they changed)."""
EXIT_START_FAILED = 3
HANDLER_WAIT_S = 2.0
"""How long the end of a call waits for its handler to finish (it ends with the call)."""

PREPARE_FAILED = Rejection(500, "Setup failed")

_PEER_TRIGGERS = {"hold": CallTrigger.HOLD, "resume": CallTrigger.RESUME}


class WorkerCalls:
    """The calls of this worker, driven by the server's messages."""

    def __init__(self, config: ServerConfig, channel: Channel) -> None:
        self.config = config
        self.channel = channel
        self.clock = MediaClock()
        self.metrics = Metrics()
        self.watch = CallWatch(
            self.metrics,
            transcripts_dir=config.transcripts_dir,
            recordings_dir=config.recordings_dir if config.record else None,
            records=self,
        )
        self.local = LocalCalls(config, self.watch)
        self.calls: dict[int, SipCall] = {}
        self.stuck = False
        """Its embedded model is stuck for good: the worker stops (`EXIT_MODEL_STUCK`)."""
        self._handlers: dict[int, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    async def run(self) -> None:
        """Take calls until the server says stop (or is gone)."""
        await self.clock.start()
        metrics = asyncio.create_task(self._send_metrics())
        try:
            self._send(p.Started(os.getpid()))
            while (received := await self.channel.receive()) is not None:
                message, fds = received
                if isinstance(message, p.Stop):
                    break
                try:
                    await self._handle(message, fds)
                except Exception:  # one call's trouble must not end the others
                    log.exception("worker_message_failed", message=message.type)
                if self.stuck:
                    break
        finally:
            await self._close(metrics)

    async def _close(self, metrics: asyncio.Task[None]) -> None:
        for call in self.calls.values():
            await call.close_media()
        for task in (metrics, *self._tasks):
            task.cancel()
        await asyncio.gather(metrics, *self._tasks, return_exceptions=True)
        await self.local.close()
        await self.watch.close()
        await self.clock.stop()
        self.channel.close()
        log.info("worker_stopped", clock=self.clock.stats)

    def note(self, call: SipCall, **facts: str | None) -> None:
        """`CallFacts`: the server keeps the call's record; the facts go there."""
        key = next((key for key, known in self.calls.items() if known is call), None)
        kept = {name: value for name, value in facts.items() if value is not None}
        if key is not None and kept:
            self._send(p.Facts(key, kept))

    def _send(self, message: p.ToServer) -> None:
        with contextlib.suppress(ChannelClosed):  # the server is gone: the read loop ends too
            self.channel.send(message)

    async def _send_metrics(self) -> None:
        sent = ""
        while True:
            await asyncio.sleep(METRICS_INTERVAL_S)
            text = self.metrics.render()[0].decode()
            if text != sent:
                self._send(p.MetricsSnapshot(text))
                sent = text

    async def _handle(self, message: p.Message, fds: list[int]) -> None:
        if isinstance(message, p.Prepare):
            self._prepare(message)
            return
        if isinstance(message, p.SnapshotRequest):
            self._send(p.MetricsSnapshot(self.metrics.render()[0].decode()))
            return
        if isinstance(message, p.Ping):
            self._send(p.Pong(message.seq))
            # Looked at once a second; its calls have had their apology by then.
            self.stuck = not self.calls and shared_model_stuck(time.monotonic())
            return
        call = self.calls.get(getattr(message, "key", 0))
        if call is None:
            for fd in fds:
                os.close(fd)
            log.warning("worker_message_ignored", message=message.type, reason="no such call")
            return
        match message:
            case p.StartMedia():
                await self._start_media(call, message, fds)
            case p.Answered():
                call.move(CallTrigger.ANSWER)
                handler = spawn_for_call(run_handler(call, self.local.handler), call, self._tasks, "call")
                self._handlers[message.key] = handler
            case p.MediaMoved(remote_host=host, remote_port=port, rtcp_host=rtcp_host, rtcp_port=rtcp_port):
                _endpoint(call).update_remote((host, port), (rtcp_host, rtcp_port))
            case p.Rekey(remote_key=key):
                _endpoint(call).rekey_srtp(bytes.fromhex(key))
            case p.Hold(held=held):
                _endpoint(call).set_hold(held)
            case p.StateChanged(trigger=trigger, reason=reason) if trigger in _PEER_TRIGGERS:
                call.move(_PEER_TRIGGERS[trigger], reason)
            case p.Dtmf(digit=digit, duration_ms=duration):
                call.emit(DtmfReceived(digit, duration))
            case p.TransferStatus(status=status, reason=reason):
                call.transfer_status(status, reason, True)
            case p.Ended(end_reason=end_reason, detail=detail):
                ended = self._ended(message.key, call, EndReason(end_reason), detail)
                spawn_for_call(ended, call, self._tasks, "end")
            case _:
                log.warning("worker_message_ignored", message=message.type, reason="not for a worker")

    def _prepare(self, message: p.Prepare) -> None:
        info = CallInfo(
            call_id=message.call_id,
            from_uri=message.from_uri,
            to_uri=message.to_uri,
            source=(message.source_host, message.source_port),
            headers=message.headers,
        )
        call = SipCall(
            info,
            hang_up=functools.partial(self._hang_up, message.key),
            transfer=functools.partial(self._transfer, message.key),
            mirror=True,
        )
        call.sample_rate = message.sample_rate
        call.move(CallTrigger.RING)
        self.calls[message.key] = call
        spawn_for_call(self._ready(message.key, call), call, self._tasks, "prepare")

    async def _ready(self, key: int, call: SipCall) -> None:
        try:
            refused = self.local.admit(call.info)
            if refused is None and self.local.ready is not None:
                refused = await self.local.ready(call)
        except Exception:  # our bug: the caller gets a final answer at once, not the watchdog's
            call.log.exception("call_prepare_failed")
            refused = PREPARE_FAILED
        if refused is None:
            self._send(p.Ready(key))
        else:
            self._send(p.Refused(key, refused.status, refused.reason, refused.retry))

    async def _start_media(self, call: SipCall, message: p.StartMedia, fds: list[int]) -> None:
        if len(fds) != 2:
            for fd in fds:
                os.close(fd)
            raise ValueError(f"start_media came with {len(fds)} descriptors, not 2")
        rtp, rtcp = (socket.socket(fileno=fd) for fd in fds)
        endpoint = RtpEndpoint(
            rtp_sock=rtp, rtcp_sock=rtcp, allocator=allocator_for(self.config.sip.rtp_ports), clock=self.clock
        )
        call.endpoint = endpoint
        await endpoint.connect()
        srtp = None
        if message.srtp_suite:
            keys = bytes.fromhex(message.srtp_local_key), bytes.fromhex(message.srtp_remote_key)
            srtp = SrtpKeys(message.srtp_suite, *keys)
        with structlog.contextvars.bound_contextvars(call_id=call.call_id):
            endpoint.start(
                codec=message.codec,
                payload_type=message.payload_type,
                remote=(message.remote_host, message.remote_port),
                remote_rtcp=(message.rtcp_host, message.rtcp_port),
                telephone_event_pt=message.telephone_event_pt,
                sample_rate=message.sample_rate,
                ptime_ms=message.ptime_ms,
                media_timeout=message.media_timeout,
                srtp=srtp,
            )
        call.sample_rate = message.sample_rate
        call.watch_media()

    async def _ended(self, key: int, call: SipCall, reason: EndReason, detail: str) -> None:
        if call.end_reason is None:
            call.ending(reason, detail)
        call.move(CallTrigger.DISCONNECT, detail, reason)
        await call.close_media()
        if self.local.agents is not None:
            self.local.agents.call_ended(call, 0)
        self.calls.pop(key, None)
        if (handler := self._handlers.pop(key, None)) is not None:
            # Its session's figures (metrics, transcript) are counted before the server counts
            # the end of the call, as when the call runs in the server's own process.
            await asyncio.wait([handler], timeout=HANDLER_WAIT_S)
        stats = call.endpoint.stats if call.endpoint is not None else {}
        numbers = {
            name: float(value)
            for name, value in stats.items()
            if isinstance(value, int | float) and not isinstance(value, bool)
        }
        dropped = {str(k): int(v) for k, v in stats.get("bad_packets_by_reason", {}).items()}
        self._send(p.Finished(key, numbers, dropped))

    def _hang_up(self, key: int, status: int, detail: str) -> None:
        call = self.calls.get(key)
        reason = call.end_reason if call is not None and call.end_reason else EndReason.AGENT_HUNG_UP
        self._send(p.HangUp(key, reason.value, detail))

    def _transfer(self, key: int, target: str) -> None:
        self._send(p.Transfer(key, target))


def _endpoint(call: SipCall) -> RtpEndpoint:
    if not isinstance(call.endpoint, RtpEndpoint):
        raise ValueError(f"call {call.call_id} has no media yet")
    return call.endpoint


async def _serve(sock: socket.socket, index: int) -> int:
    channel = Channel(sock, peer="server")
    first = await channel.receive()
    if first is None or not isinstance(first[0], p.Configure):
        log.error("worker_not_configured", worker=index)
        return EXIT_START_FAILED
    config: ServerConfig = pickle.loads(base64.b64decode(first[0].config))  # from our own server
    configure_logging(config.log_level)
    structlog.contextvars.bind_contextvars(worker=index)
    try:
        calls = WorkerCalls(config, channel)
        await calls.local.prepare()
        log.info("worker_ready", frozen_objects=freeze_start_up())
    except Exception as exc:  # the agents or the model cannot be had: the server says why
        log.error("worker_start_failed", error=str(exc))
        with contextlib.suppress(ChannelClosed):
            channel.send(p.StartFailed(str(exc)[:1000]))
        return EXIT_START_FAILED
    await calls.run()
    if not calls.stuck:
        return 0
    log.warning("worker_retiring", reason="the embedded model is stuck in an inference step")
    # The stuck pool thread would keep a normal exit waiting for ever.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(p.EXIT_MODEL_STUCK)


def main(argv: list[str]) -> int:
    """The worker's entry point; the exit status."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    fd, index = int(argv[0]), int(argv[1])
    return run_loop(_serve(socket.socket(fileno=fd), index))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
