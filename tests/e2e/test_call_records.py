"""Call records and webhooks of whole calls: `voicegw call` to SIPp callees, SIPp callers to `voicegw serve`.

Each call leaves one JSON line in the CDR file and one ``call_record`` log line; the webhook
receiver (a real local HTTP server) checks every delivery's signature.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_call_cli import voicegw_call
from tests.server.webhook_receiver import Receiver, webhook_receiver
from voicegw.testing.fake_realtime import FakeRealtimeServer
from voicegw.testing.harness import HOST, EchoServer, free_udp_port
from voicegw.testing.rtp_tools import RtpCapture
from voicegw.testing.sipp import run_scenario_async, sipp_uas

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


def cdr_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def until(condition: Callable[[], bool], seconds: float = 15.0) -> None:
    async with asyncio.timeout(seconds):
        while not condition():
            await asyncio.sleep(0.05)


def config_file(tmp_path: Path, receiver: Receiver, **webhook_settings: object) -> tuple[Path, Path]:
    cdr = tmp_path / "cdr" / "calls.jsonl"
    config = tmp_path / "voicegw.toml"
    config.write_text(f'[server]\ncdr_file = "{cdr}"\n\n{receiver.config(**webhook_settings)}')
    return config, cdr


def delivered(receiver: Receiver, record_id: str) -> dict[str, dict[str, Any]]:
    """The call's deliveries by event type (their order is not guaranteed: several workers POST)."""
    return {doc["type"]: doc["data"] for doc in receiver.documents() if doc["data"]["id"] == record_id}


async def test_an_answered_outbound_call_has_its_record_and_three_webhooks(tmp_path: Path) -> None:
    async with webhook_receiver() as receiver:
        config, cdr = config_file(tmp_path, receiver)
        with RtpCapture() as capture:
            keys = {"rtp_port": str(capture.port), "pt": "0", "codec": "PCMU/8000"}
            answering = sipp_uas("uas_answer_bye.xml", tmp_path / "sipp", keys=keys, pause_ms=2500)
            async with FakeRealtimeServer("greeting") as model, answering as (port, sipp):
                status, stderr = await voicegw_call(
                    f"sip:alice@{HOST}:{port}", "--config", str(config),
                    "--listen", f"{HOST}:{free_udp_port()}", "--timeout", "10", model_url=model.base_url,
                )  # fmt: skip
                await sipp
        await until(lambda: len(receiver.received) >= 3)
    assert status == 0, stderr[-3000:]
    (record,) = cdr_lines(cdr)
    assert record["direction"] == "outbound" and record["to"] == f"sip:alice@{HOST}:{port}"
    assert (record["disposition"], record["sip_status"], record["hangup_side"], record["hangup_cause"]) == (
        "answered",
        200,
        "remote",
        "caller_hung_up",
    )
    assert record["codec"] == "PCMU" and record["agent"] == "Greeter" and record["amd"] is None
    assert record["start"] < record["answer"] < record["end"] and record["end"].endswith("Z")
    assert 3 <= record["billable_s"] <= 6 and record["duration_s"] >= record["billable_s"] - 1
    assert record["media"]["packets_out"] > 100 and record["media"]["loss_percent"] == 0.0
    assert '"event": "call_record"' in stderr
    assert receiver.verified == [True, True, True]
    hooks = delivered(receiver, record["id"])
    assert set(hooks) == {"call.started", "call.answered", "call.ended"}
    assert hooks["call.ended"] == record
    assert hooks["call.started"]["start"] == record["start"] and hooks["call.answered"]["codec"] == "PCMU"


@pytest.mark.parametrize(
    ("scenario", "keys", "ring_s", "disposition", "sip_status", "side"),
    [
        ("uas_busy.xml", {}, "10", "busy", 486, "remote"),
        ("uas_ring_cancel.xml", {}, "2", "no_answer", 487, "local"),
        ("uas_decline.xml", {}, "10", "rejected", 603, "remote"),
        # An answer in a codec we never offered: we BYE at once.
        ("uas_answer_bye.xml", {"pt": "18", "codec": "G729/8000"}, "10", "failed", None, "local"),
    ],
    ids=["busy", "no_answer", "rejected", "failed"],
)
async def test_an_unanswered_outbound_call_has_its_record(
    tmp_path: Path,
    scenario: str,
    keys: dict[str, str],
    ring_s: str,
    disposition: str,
    sip_status: int | None,
    side: str,
) -> None:
    async with webhook_receiver() as receiver:
        config, cdr = config_file(tmp_path, receiver)
        with RtpCapture() as capture:
            answering = sipp_uas(scenario, tmp_path / "sipp", keys={"rtp_port": str(capture.port), **keys})
            async with FakeRealtimeServer("greeting") as model, answering as (port, _):
                status, stderr = await voicegw_call(
                    f"sip:bob@{HOST}:{port}", "--config", str(config),
                    "--listen", f"{HOST}:{free_udp_port()}", "--timeout", ring_s, model_url=model.base_url,
                )  # fmt: skip
        await until(lambda: len(receiver.received) >= 2)
    assert status != 0 and "Traceback" not in stderr, stderr[-3000:]
    (record,) = cdr_lines(cdr)
    assert (record["disposition"], record["sip_status"], record["hangup_side"]) == (
        disposition,
        sip_status,
        side,
    ), record
    assert record["answer"] is None and record["billable_s"] == 0 and record["agent"] is None
    if disposition == "failed":  # and one line saying why, not "200 OK" (a regression)
        assert (
            stderr.strip()
            .splitlines()[-1]
            .endswith(
                "unusable SDP answer: no common codec: "
                "answered G729, telephone-event, we speak PCMU, "
                "PCMA, opus, G722"
            )
        ), stderr[-2000:]
    assert set(delivered(receiver, record["id"])) == {"call.started", "call.ended"}


def serve(tmp_path: Path, config: str) -> EchoServer:
    server = EchoServer("voicegw", tmp_path, config=config)
    server.wait_ready()
    return server


async def test_inbound_calls_answered_and_cancelled(tmp_path: Path) -> None:
    async with webhook_receiver() as receiver:
        cdr = tmp_path / "calls.jsonl"
        # Three seconds of ringing, for the CANCEL to come before the answer.
        server = serve(
            tmp_path, f'[sip]\nanswer_delay = 3\n[server]\ncdr_file = "{cdr}"\n\n{receiver.config()}'
        )
        try:
            runs = [
                await run_scenario_async(name, server.port, tmp_path / name)
                for name in ("uac_answer_bye.xml", "uac_cancel.xml")
            ]
            await until(lambda: len(receiver.received) >= 5)  # 2 started, 1 answered, 2 ended
        finally:
            stopped = server.stop()
    assert stopped, server.output()
    assert all(run.ok for run in runs), [run.output for run in runs]
    answered, cancelled = cdr_lines(cdr)
    assert (answered["disposition"], answered["agent"], answered["hangup_side"]) == (
        "answered",
        "echo",
        "remote",
    )
    assert answered["direction"] == "inbound" and answered["codec"] == "PCMU"
    # The caller's BYE said why (RFC 3326): kept as sent, with its Q.850 cause.
    reason = ('Q.850;cause=16;text="Normal call clearing"', 16)
    assert (answered["remote_reason"], answered["q850_cause"]) == reason
    assert answered["media"]["packets_in"] == 0 and answered["media"]["lost"] == 0  # SIPp sends no RTP
    assert (cancelled["disposition"], cancelled["sip_status"], cancelled["hangup_cause"]) == (
        "no_answer",
        487,
        "caller_cancelled",
    )
    assert receiver.verified == [True] * 5
    assert {doc["type"] for doc in receiver.documents() if doc["data"]["id"] == cancelled["id"]} == {
        "call.started",
        "call.ended",
    }
    logged = [event["record"] for event in server.log_events() if event.get("event") == "call_record"]
    assert logged == [answered, cancelled]


async def test_an_inbound_call_we_refuse_has_its_record(tmp_path: Path) -> None:
    cdr = tmp_path / "calls.jsonl"
    server = serve(tmp_path, f'[rtp]\nsrtp = "required"\n[server]\ncdr_file = "{cdr}"\n')
    try:
        await run_scenario_async("uac_answer_bye.xml", server.port, tmp_path / "sipp")  # a plain RTP offer
    finally:
        stopped = server.stop()
    assert stopped, server.output()
    (rejected,) = cdr_lines(cdr)
    assert (rejected["disposition"], rejected["sip_status"], rejected["hangup_side"]) == (
        "rejected",
        488,
        "local",
    )
    assert (rejected["hangup_cause"], rejected["hangup_detail"]) == ("rejected", "488 Not Acceptable Here")


async def test_a_hanging_webhook_receiver_does_not_touch_the_calls(tmp_path: Path) -> None:
    async with webhook_receiver(hang=True) as receiver:
        cdr = tmp_path / "calls.jsonl"
        server = serve(tmp_path, f'[server]\ncdr_file = "{cdr}"\n\n{receiver.config(timeout=1, retries=0)}')
        try:
            runs = [
                await run_scenario_async("uac_answer_bye.xml", server.port, tmp_path / f"call{n}")
                for n in range(3)
            ]
        finally:
            await asyncio.sleep(0)  # let the receiver take what is already sent
            stopped = server.stop()
    assert stopped, server.output()
    assert all(run.ok for run in runs), [run.output for run in runs]
    assert [line["disposition"] for line in cdr_lines(cdr)] == ["answered"] * 3
    failures = [event for event in server.log_events() if event.get("event") == "webhook_failed"]
    assert failures and all(event["level"] == "warning" for event in failures)
    assert not [event for event in server.log_events() if event.get("level") == "error"]
