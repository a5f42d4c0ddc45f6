"""`SipUserAgent.dial` in this process, SIPp playing the called party, a trunk or a registrar."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from tests.signals import best_correlation, speech
from voicegw.contracts.transport import EndReason
from voicegw.rtp.clock import MediaClock
from voicegw.sip.account import SipAccount
from voicegw.sip.call import Busy, CallRejected, NoAnswer
from voicegw.sip.ua import SipConfig, SipUserAgent
from voicegw.testing.media import G711_CODECS
from voicegw.testing.rtp_tools import RtpCapture
from voicegw.testing.sipp import HOST, sipp_uas
from voicegw.transports.sip_call import SipCallTransport

pytestmark = pytest.mark.timeout(60)
RATE = 8000
USERNAME, PASSWORD, REALM = "1001", "s3cret-pw", "pbx.test"


async def started(*accounts: SipAccount) -> SipUserAgent:
    config = SipConfig(host=HOST, port=0, tcp=False, rtp_ports=(45000, 45100), accounts=accounts)
    clock = MediaClock()
    await clock.start()
    ua = SipUserAgent(config, clock)
    try:
        await ua.start()
    except BaseException:
        await clock.stop()
        raise
    return ua


async def stopped(ua: SipUserAgent) -> None:
    await ua.stop()
    await ua.clock.stop()


@pytest.fixture
async def ua() -> AsyncIterator[SipUserAgent]:
    agent = await started()
    yield agent
    await stopped(agent)


@pytest.mark.parametrize("codec", ["PCMU", "PCMA"])
async def test_an_answered_call_carries_our_audio_to_the_callee(
    ua: SipUserAgent, tmp_path: Path, codec: str
) -> None:
    greeting = speech(tmp_path / "greeting", RATE)
    pt = str(G711_CODECS[codec].payload_type)
    with RtpCapture() as capture:
        keys = {"rtp_port": str(capture.port), "pt": pt, "codec": f"{codec}/8000"}
        async with sipp_uas("uas_answer_bye.xml", tmp_path, keys=keys, pause_ms=4000) as (port, sipp):
            call = await ua.dial(f"sip:alice@{HOST}:{port}", headers={"X-Campaign": "42"}, timeout=10)
            assert (call.state.value, call.info.direction) == ("answered", "outbound")
            assert call.negotiated is not None and call.negotiated.codec.encoding == codec
            transport = SipCallTransport(call)  # what the agent runner is handed, unchanged
            await transport.play(greeting, item_id="greeting")
            ended = [event async for event in transport.events()]
            run = await sipp
    assert run.ok, run.output
    assert ended[-1].type == "call_state" and ended[-1].state == "ended"  # type: ignore[union-attr]
    assert (call.end_reason, call.end_detail) == (EndReason.CALLER_HUNG_UP, "far end hung up")
    invite = run.messages.split("INVITE sip:alice", 1)[1]
    assert "X-Campaign: 42" in invite
    assert "m=audio " in invite and " RTP/AVP 0 8 111 9 101 110" in invite
    packets = [p for p in capture.packets() if p.payload_type == int(pt)]
    assert len(packets) >= 100, len(packets)
    heard = np.concatenate([G711_CODECS[codec].decode(p.payload) for p in packets]).tobytes()
    correlation, _ = best_correlation(greeting, heard)
    assert correlation > 0.9, correlation


async def test_busy_is_a_typed_failure_with_the_status(ua: SipUserAgent, tmp_path: Path) -> None:
    async with sipp_uas("uas_busy.xml", tmp_path) as (port, sipp):
        with pytest.raises(Busy) as failure:
            await ua.dial(f"sip:bob@{HOST}:{port}", timeout=10)
        run = await sipp
    assert run.ok, run.output
    assert (failure.value.status, failure.value.reason) == (486, "Busy Here")
    assert str(failure.value) == f"sip:bob@{HOST}:{port}: 486 Busy Here"
    await asyncio.sleep(0.1)
    assert ua.calls == {}  # the failed call and its media are released


async def test_no_answer_in_time_cancels_the_call(ua: SipUserAgent, tmp_path: Path) -> None:
    loop = asyncio.get_running_loop()
    async with sipp_uas("uas_ring_cancel.xml", tmp_path) as (port, sipp):
        began = loop.time()
        with pytest.raises(NoAnswer, match="no answer within 2 s"):
            await ua.dial(f"sip:carol@{HOST}:{port}", timeout=2)
        waited = loop.time() - began
        run = await sipp
    assert run.ok, run.output  # SIPp saw our CANCEL and the ACK of its 487
    assert 1.5 < waited < 8, waited
    assert "CANCEL sip:carol" in run.messages


def trunk(port: int, password: str = PASSWORD) -> SipAccount:
    return SipAccount(
        name="trunk",
        uri=f"sip:{USERNAME}@{REALM}",
        proxy=(f"sip:{HOST}:{port};lr",),
        username=USERNAME,
        password=password,
        realm=REALM,
    )


def auth_keys() -> dict[str, str]:
    return {"username": USERNAME, "password": PASSWORD, "realm": REALM, "route": f"<sip:{HOST}:[0-9]+;lr>"}


async def test_a_trunk_behind_a_proxy_gets_the_credentials_it_challenges_for(tmp_path: Path) -> None:
    async with sipp_uas("uas_digest_auth.xml", tmp_path, keys=auth_keys()) as (port, sipp):
        ua = await started(trunk(port))
        try:
            # The request goes to the proxy whatever the URI's host: no DNS for trunk.invalid.
            call = await ua.dial("sip:+15550100@trunk.invalid", timeout=10)
            assert call.negotiated is not None and call.negotiated.codec.encoding == "PCMA"
            await call.hang_up()
        finally:
            await stopped(ua)
        run = await sipp
    assert run.ok, run.output
    assert "403 Forbidden" not in run.messages
    assert f'Authorization: Digest username="{USERNAME}", realm="{REALM}"' in run.messages


async def test_wrong_credentials_are_rejected_with_the_status(tmp_path: Path) -> None:
    async with sipp_uas("uas_digest_auth.xml", tmp_path, keys=auth_keys()) as (port, sipp):
        ua = await started(trunk(port, password="wrong"))
        try:
            with pytest.raises(CallRejected) as failure:
                await ua.dial("sip:+15550100@trunk.invalid", timeout=10)
        finally:
            await stopped(ua)
        run = await sipp
    assert run.ok, run.output
    assert (failure.value.status, failure.value.reason) == (403, "Forbidden")


async def test_registration_authenticates_and_refreshes_before_it_expires(tmp_path: Path) -> None:
    keys = {"username": USERNAME, "password": PASSWORD, "realm": REALM, "expires": "7"}
    async with sipp_uas("uas_registrar.xml", tmp_path, keys=keys) as (port, sipp):
        account = SipAccount(
            name="pbx",
            uri=f"sip:{USERNAME}@{REALM}",
            registrar=f"sip:{HOST}:{port}",
            username=USERNAME,
            password=PASSWORD,
            register=True,
            expires=60,
        )
        ua = await started(account)
        try:
            registration = ua.registration("pbx")
            await asyncio.wait_for(registration.wait_successes(2), 15)  # granted 7 s: refreshed at ~2 s
            assert registration.registered and (registration.status, registration.expires) == (200, 7)
        finally:
            await stopped(ua)  # un-REGISTER
        run = await sipp
    assert run.ok, run.output
    assert "403 Forbidden" not in run.messages
    assert run.messages.count(f'Authorization: Digest username="{USERNAME}"') == 2  # first and refresh
