"""`SipUserAgent` in this process, driven by SIPp: the per-call handler and call control."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from voicegw.contracts.transport import CallStateChanged, EndReason, TransferResult
from voicegw.rtp.clock import MediaClock
from voicegw.sip.call import SipCall
from voicegw.sip.ua import CallHandler, SipConfig, SipUserAgent
from voicegw.testing.harness import free_udp_port
from voicegw.testing.sipp import run_scenario_async

pytestmark = pytest.mark.timeout(40)


@contextlib.asynccontextmanager
async def running_ua(handler: CallHandler, *, media_timeout: float = 30.0) -> AsyncIterator[SipUserAgent]:
    """A started user agent on a free port with `handler`; stopped (with its clock) on exit."""
    clock = MediaClock()
    await clock.start()
    config = SipConfig(
        host="127.0.0.1",
        port=free_udp_port(),
        tcp=False,
        rtp_ports=(44000, 44100),
        media_timeout=media_timeout,
    )
    ua = SipUserAgent(config, clock, handler)
    await ua.start()
    try:
        yield ua
    finally:
        await ua.stop()
        await clock.stop()


@pytest.mark.parametrize(("status", "accepted"), [("200", True), ("486", False)])
async def test_transfer_reports_the_targets_final_answer(tmp_path: Path, status: str, accepted: bool) -> None:
    results: list[TransferResult] = []
    events: list[object] = []

    async def handler(call: SipCall) -> None:
        result = await call.transfer("sip:transfer-target@127.0.0.1:5999")
        results.append(result)
        await call.hang_up(EndReason.TRANSFERRED if result.accepted else EndReason.AGENT_HUNG_UP)
        events.extend([event async for event in call.events()])

    async with running_ua(handler) as ua:
        run = await run_scenario_async("uac_refer.xml", ua.config.port, tmp_path, keys={"status": status})
        assert run.ok, run.output
    assert results == [
        TransferResult("sip:transfer-target@127.0.0.1:5999", accepted, int(status), "Transfer Target Answer")
    ]
    assert results[0] in events
    reason = EndReason.TRANSFERRED if accepted else EndReason.AGENT_HUNG_UP
    assert events[-1] == CallStateChanged("ended", reason.words, reason)


@pytest.mark.parametrize(
    ("scenario", "handler_waits", "media_timeout", "reason", "detail"),
    [
        ("uac_answer_bye.xml", True, 30.0, EndReason.CALLER_HUNG_UP, "caller hung up"),
        ("uac_media_timeout.xml", True, 1.0, EndReason.MEDIA_TIMEOUT, "media timeout"),
        ("uac_media_timeout.xml", False, 30.0, EndReason.HANDLER_FINISHED, "call handler finished"),
    ],
)
async def test_a_call_ends_with_the_reason_of_whoever_ended_it(
    tmp_path: Path, scenario: str, handler_waits: bool, media_timeout: float, reason: EndReason, detail: str
) -> None:
    calls: list[SipCall] = []
    events: list[object] = []

    async def handler(call: SipCall) -> None:
        calls.append(call)
        if handler_waits:
            events.extend([event async for event in call.events()])

    async with running_ua(handler, media_timeout=media_timeout) as ua:
        run = await run_scenario_async(scenario, ua.config.port, tmp_path)
        assert run.ok, run.output
    (call,) = calls
    assert (call.end_reason, call.end_detail) == (reason, detail)
    if handler_waits:
        assert events[-1] == CallStateChanged("ended", detail, reason)


async def test_calls_still_up_at_shutdown_end_as_server_shutdown(tmp_path: Path) -> None:
    calls: list[SipCall] = []

    async def handler(call: SipCall) -> None:
        calls.append(call)
        await call.wait_ended()

    async with running_ua(handler) as ua:
        # The scenario answers our BYE: it only ends when we hang up.
        run = asyncio.ensure_future(run_scenario_async("uac_media_timeout.xml", ua.config.port, tmp_path))
        try:
            async with asyncio.timeout(10):
                while not calls:
                    await asyncio.sleep(0.05)
            await ua.stop()
            assert (await run).ok
        finally:
            run.cancel()
            await asyncio.gather(run, return_exceptions=True)
    (call,) = calls
    assert (call.end_reason, call.end_detail) == (EndReason.SERVER_SHUTDOWN, "server shutting down")
