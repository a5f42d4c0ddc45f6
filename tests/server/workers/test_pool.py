"""The server's side of a worker: what a broken worker sends is refused, the server goes on."""

from __future__ import annotations

import array
import asyncio
import gc
import os
import socket
import sys
import time
import weakref

from voicegw.contracts.transport import CallInfo
from voicegw.server.config import ServerConfig
from voicegw.server.metrics import Metrics
from voicegw.server.workers import protocol as p
from voicegw.server.workers.channel import Channel, channel_pair
from voicegw.server.workers.heartbeat import Heartbeat
from voicegw.server.workers.pool import Worker, WorkerMedia, WorkerPool
from voicegw.sip.call import Rejection, SipCall

PORTS = (41000, 41100)


def _call(hung_up: list[tuple[int, str]]) -> SipCall:
    info = CallInfo("call-1@test", "sip:a@test", "sip:echo@test", ("127.0.0.1", 5060))
    call = SipCall(info, hang_up=lambda status, detail: hung_up.append((status, detail)), transfer=print)
    call.sample_rate = 8000
    return call


async def _next(sock: socket.socket) -> p.Message:
    data = await asyncio.get_running_loop().sock_recv(sock, p.MAX_MESSAGE)
    return p.decode(data)


async def _ringing(pool: WorkerPool) -> tuple[WorkerMedia, asyncio.Task[Rejection | None]]:
    """A call bound to the pool's media and asked to be prepared (`ready`, running)."""
    call = _call([])
    media = pool.bind_media("127.0.0.1", PORTS)
    assert isinstance(media, WorkerMedia)
    call.endpoint = media
    ready = asyncio.create_task(pool.ready(call))
    await asyncio.sleep(0.05)
    return media, ready


async def _stand_in(worker: Worker, heartbeat: Heartbeat | None = None) -> socket.socket:
    """A sleeping process in the worker's slot; the test speaks for it on the returned socket."""
    worker.process = await asyncio.create_subprocess_exec(sys.executable, "-c", "import time; time.sleep(60)")
    worker.heartbeat = heartbeat or Heartbeat(time.monotonic())
    ours, theirs = channel_pair()
    theirs.setblocking(False)
    worker.channel, worker.up = Channel(ours, peer=f"worker-{worker.index}"), True
    return theirs


async def test_a_worker_sending_nonsense_cannot_touch_calls_or_stop_the_server() -> None:
    pool = WorkerPool(ServerConfig(), 1, Metrics())
    worker = pool.workers[0]
    theirs = await _stand_in(worker)
    serving = asyncio.create_task(worker.serve())
    hung_up: list[tuple[int, str]] = []
    call = _call(hung_up)
    media = pool.bind_media("127.0.0.1", PORTS)
    call.endpoint = media
    try:
        ready = asyncio.create_task(pool.ready(call))
        prepare = await _next(theirs)
        assert isinstance(prepare, p.Prepare) and prepare.call_id == "call-1@test"
        key = prepare.key
        spare = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        nonsense: list[p.Message] = [
            p.HangUp(key, "explode", "no such end reason"),
            p.Refused(key, 200, "a success is no refusal", False),
            p.Ready(key + 1),  # a call it does not hold
            p.Prepare(key, "x", "", "", "", 0, {}, 8000),  # the server's message, not a worker's
            p.Started(1),
        ]
        for message in nonsense:
            theirs.send(p.encode(message))
        pipe = os.pipe()  # not a socket: closed all the same
        two, one = array.array("i", [spare.fileno()] * 2), array.array("i", [pipe[0]])
        theirs.sendmsg([b"\x00garbage"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, two)])
        theirs.sendmsg([p.encode(p.Ready(key))], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, one)])
        spare.close()
        os.close(pipe[0])
        os.close(pipe[1])
        assert await asyncio.wait_for(ready, 5) is None  # the one sensible message took effect
        assert hung_up == [] and not call.ended
        assert not serving.done()

        theirs.send(p.encode(p.Refused(key, 503, "late", True)))  # settled already: ignored
        theirs.send(p.encode(p.MetricsSnapshot("# a comment only\n")))
        await asyncio.sleep(0.05)
        assert worker.snapshot == "# a comment only\n"
        assert worker.channel is not None and worker.channel.garbage == 1
    finally:
        theirs.close()
        await asyncio.wait_for(serving, 5)  # the worker's end closes the channel: serve returns
        media.finish({})  # as a worker's Finished would
        await media.close()
        await worker.reap()  # the stand-in does not hear `Stop`
        await pool.stop()


async def test_a_worker_that_stops_answering_pings_is_killed() -> None:
    pool = WorkerPool(ServerConfig(), 1, Metrics())
    worker = pool.workers[0]
    theirs = await _stand_in(worker, Heartbeat(time.monotonic(), interval=0.05, timeout=0.5))
    assert worker.process is not None
    serving = asyncio.create_task(worker.serve())
    try:
        answered = 0
        while answered < 20:  # a second of answers: it lives
            ping = await asyncio.wait_for(_next(theirs), 5)
            assert isinstance(ping, p.Ping)
            theirs.send(p.encode(p.Pong(ping.seq)))
            answered += 1
        assert worker.process.returncode is None and not serving.done()
        theirs.send(p.encode(p.Pong(10_000)))  # answers no ping: refused, nothing else
        await asyncio.wait_for(serving, 5)  # silent from now on: killed, and serve ends
        assert await asyncio.wait_for(worker.process.wait(), 5) == -9
        assert worker.silent_s is not None and worker.silent_s >= 0.5
    finally:
        theirs.close()
        await worker.reap()


async def test_a_call_ringing_on_a_worker_that_dies_is_refused_with_503() -> None:
    pool = WorkerPool(ServerConfig(), 1, Metrics())
    worker = pool.workers[0]
    ours, theirs = channel_pair()
    worker.channel, worker.up = Channel(ours, peer="worker-0"), True
    media, ready = await _ringing(pool)
    pool._calls_lost(worker, "died")
    refusal = await asyncio.wait_for(ready, 5)
    assert isinstance(refusal, Rejection) and (refusal.status, refusal.retry) == (503, True)
    theirs.close()
    await media.close()
    worker.channel.close()


async def test_a_worker_that_refused_for_want_of_capacity_is_passed_over() -> None:
    """Its embedded model queues (or is stuck): the other worker gets the calls, though the busy
    one holds none."""
    pool = WorkerPool(ServerConfig(), 2, Metrics())
    sockets = []
    for worker in pool.workers:
        ours, theirs = channel_pair()
        worker.channel, worker.up = Channel(ours, peer=f"worker-{worker.index}"), True
        sockets.append(theirs)
    serving = [asyncio.create_task(worker.serve()) for worker in pool.workers]

    async def place() -> tuple[int, Rejection | None, WorkerMedia]:
        media, ready = await _ringing(pool)
        assert media.worker is not None
        index = media.worker.index
        answer = p.Refused(media.key, 503, "Busy", True) if index == 0 else p.Ready(media.key)
        sockets[index].send(p.encode(answer))
        return index, await asyncio.wait_for(ready, 5), media

    try:
        index, refusal, media = await place()
        assert index == 0 and isinstance(refusal, Rejection)  # both idle: the first worker
        media.finish({})
        await media.close()
        assert not pool.workers[0].calls
        index, refusal, media = await place()
        assert index == 1 and refusal is None  # worker 0 holds no call, yet is passed over
        media.finish({})
        await media.close()
    finally:
        for theirs in sockets:
            theirs.close()
        await asyncio.wait_for(asyncio.gather(*serving), 5)
        for worker in pool.workers:
            assert worker.channel is not None
            worker.channel.close()


async def test_an_echo_call_is_prepared_without_waiting_for_the_worker() -> None:
    pool = WorkerPool(ServerConfig(echo=True), 1, Metrics())
    worker = pool.workers[0]
    ours, theirs = channel_pair()
    worker.channel, worker.up = Channel(ours, peer="worker-0"), True
    call = _call([])
    media = pool.bind_media("127.0.0.1", PORTS)
    call.endpoint = media
    assert await asyncio.wait_for(pool.ready(call), 1) is None
    assert isinstance(p.decode(theirs.recv(p.MAX_MESSAGE)), p.Prepare)  # the worker still gets it
    media.finish({})
    await media.close()
    theirs.close()
    worker.channel.close()


async def test_an_ended_call_and_its_media_are_freed_by_reference_counting() -> None:
    """No cycle between a call and its worker media outlives the call: the server process frees
    ended calls as they end, not at the cyclic collector's next full pass."""
    pool = WorkerPool(ServerConfig(echo=True), 1, Metrics())
    worker = pool.workers[0]
    ours, theirs = channel_pair()
    worker.channel, worker.up = Channel(ours, peer="worker-0"), True
    gc.collect()
    gc.disable()
    try:
        call = _call([])
        media = pool.bind_media("127.0.0.1", PORTS)
        call.endpoint = media
        assert await asyncio.wait_for(pool.ready(call), 1) is None
        media.finish({})
        await media.close()
        freed = weakref.ref(call), weakref.ref(media)
        del call, media
        assert [ref() for ref in freed] == [None, None]
    finally:
        gc.enable()
        theirs.close()
        worker.channel.close()
