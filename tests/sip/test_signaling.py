"""SIP signaling of `voicegw serve` with exact messages from a raw UDP client."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest

from tests.e2e.harness import options_ping
from tests.sip.conftest import Server
from tests.sip.raw_sip import Dialog, offer_sdp

pytestmark = pytest.mark.timeout(60)


def events(server: Server, name: str) -> list[dict[str, object]]:
    found = []
    for line in server.log().splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if record.get("event") == name:
                found.append(record)
    return found


def wait_for_event(server: Server, name: str, timeout: float = 5.0) -> list[dict[str, object]]:
    deadline = time.monotonic() + timeout
    while not (found := events(server, name)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return found


def test_invite_is_answered_with_our_sdp_and_bye_ends_it(voicegw: Callable[..., Server]) -> None:
    server = voicegw("[rtp]\nports = '42000-42100'\n")
    dialog = Dialog(server.port)
    try:
        dialog.invite(offer_sdp(dialog.local_port + 2))
        assert dialog.until(180).status == 180
        ok = dialog.until(200)
        assert "m=audio 420" in ok.body and "a=rtpmap:0 PCMU/8000" in ok.body
        assert "a=rtcp:420" in ok.body and "a=rtpmap:101 telephone-event/8000" in ok.body
        dialog.ack()
        dialog.request("BYE")
        assert dialog.until(200).headers["cseq"].endswith("BYE")
        ended = wait_for_event(server, "call_ended")
        assert ended and ended[0]["reason"] == "caller hung up"
    finally:
        dialog.close()


def test_cancel_before_answer_gets_487(voicegw: Callable[..., Server]) -> None:
    server = voicegw("[sip]\nanswer_delay = 3\n")
    dialog = Dialog(server.port)
    try:
        dialog.invite(offer_sdp(dialog.local_port + 2))
        dialog.until(180)
        dialog.cancel()
        statuses = {dialog.receive().status, dialog.receive().status}
        assert statuses == {200, 487}  # 200 for the CANCEL, 487 for the INVITE
        dialog.ack(for_error=True)
        ended = wait_for_event(server, "call_ended")
        assert ended and ended[0]["reason"] == "caller cancelled"
    finally:
        dialog.close()


def test_options_is_answered_200(voicegw: Callable[..., Server]) -> None:
    server = voicegw()
    assert options_ping(server.port) == 200


def test_call_limit_answers_503_with_retry_after(voicegw: Callable[..., Server]) -> None:
    server = voicegw("[sip]\nmax_calls = 1\n")
    first, second = Dialog(server.port), Dialog(server.port)
    try:
        first.invite(offer_sdp(first.local_port + 2))
        first.until(200)
        first.ack()
        second.invite(offer_sdp(second.local_port + 2))
        busy = second.until(503)
        assert busy.headers.get("retry-after") == "30"
        second.ack(for_error=True)
        assert first.sock  # the first call is untouched
        first.request("BYE")
        first.until(200)
    finally:
        first.close()
        second.close()


def test_no_common_codec_gets_488(voicegw: Callable[..., Server]) -> None:
    server = voicegw()
    dialog = Dialog(server.port)
    try:
        dialog.invite(offer_sdp(dialog.local_port + 2, "3", "a=rtpmap:3 GSM/8000\r\n"))
        assert dialog.until(488).status == 488
        dialog.ack(for_error=True)
    finally:
        dialog.close()


def test_sip_info_dtmf_is_reported(voicegw: Callable[..., Server]) -> None:
    server = voicegw()
    dialog = Dialog(server.port)
    try:
        dialog.invite(offer_sdp(dialog.local_port + 2))
        dialog.until(200)
        dialog.ack()
        dialog.request(
            "INFO",
            "Signal=7\r\nDuration=160\r\n",
            "Content-Type: application/dtmf-relay\r\n",
        )
        assert dialog.until(200).headers["cseq"].endswith("INFO")
        dtmf = wait_for_event(server, "dtmf")
        assert [(d["digit"], d["method"]) for d in dtmf] == [("7", "sip_info")]
        dialog.request("BYE")
        dialog.until(200)
    finally:
        dialog.close()


def test_sigterm_with_no_calls_exits_zero(voicegw: Callable[..., Server]) -> None:
    server = voicegw()
    assert server.stop() == 0
    assert events(server, "stopped")
