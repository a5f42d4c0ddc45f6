"""`SipUserAgent` in this process, driven by SIPp: the per-call handler and call control."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.harness import free_udp_port
from tests.sip.sipp import run_scenario_async
from voicegw.contracts.transport import CallStateChanged, EndReason, TransferResult
from voicegw.rtp.clock import MediaClock
from voicegw.sip.call import SipCall
from voicegw.sip.ua import SipConfig, SipUserAgent

pytestmark = pytest.mark.timeout(40)


@pytest.mark.parametrize(("status", "accepted"), [("200", True), ("486", False)])
async def test_transfer_reports_the_targets_final_answer(tmp_path: Path, status: str, accepted: bool) -> None:
    results: list[TransferResult] = []
    events: list[object] = []

    async def handler(call: SipCall) -> None:
        result = await call.transfer("sip:transfer-target@127.0.0.1:5999")
        results.append(result)
        await call.hang_up(EndReason.TRANSFERRED if result.accepted else EndReason.AGENT_HUNG_UP)
        events.extend([event async for event in call.events()])

    clock = MediaClock()
    await clock.start()
    config = SipConfig(host="127.0.0.1", port=free_udp_port(), tcp=False, rtp_ports=(44000, 44100))
    ua = SipUserAgent(config, clock, handler)
    await ua.start()
    try:
        run = await run_scenario_async("uac_refer.xml", config.port, tmp_path, keys={"status": status})
        assert run.ok, run.output
    finally:
        await ua.stop()
        await clock.stop()
    assert results == [
        TransferResult("sip:transfer-target@127.0.0.1:5999", accepted, int(status), "Transfer Target Answer")
    ]
    assert results[0] in events
    reason = EndReason.TRANSFERRED if accepted else EndReason.AGENT_HUNG_UP
    assert events[-1] == CallStateChanged("ended", reason.words, reason)
