"""Metrics: call outcomes from the SIP layer's callbacks, session events, one registry per server."""

from __future__ import annotations

from prometheus_client import REGISTRY

from voicegw.contracts.model import ModelError, ModelResponseDone
from voicegw.contracts.transport import EndReason
from voicegw.realtime.context import RunContextWrapper
from voicegw.realtime.events import (
    RealtimeAudioInterrupted,
    RealtimeError,
    RealtimeEventInfo,
    RealtimeRawModelEvent,
)
from voicegw.server.metrics import Metrics
from voicegw.sip.call import CallInfo, SipCall
from voicegw.sip.guard import IncomingRequest
from voicegw.sip.policy import SignallingPolicy, SourcePolicy
from voicegw.sip.state import CallTrigger

INFO = RealtimeEventInfo(RunContextWrapper(None))


def a_call(call_id: str) -> SipCall:
    info = CallInfo(call_id, "<sip:a@x>", "<sip:b@y>", ("127.0.0.1", 5060))
    return SipCall(info, hang_up=lambda status, reason: None, transfer=lambda target: None)


def value(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def test_call_outcomes() -> None:
    metrics = Metrics(lambda: 7)
    rejected, cancelled, answered = a_call("r"), a_call("c"), a_call("a")
    metrics.call_rejected(rejected, 503)
    metrics.call_ended(rejected, 503)
    metrics.call_ended(cancelled, 487)
    answered.move(CallTrigger.RING)
    answered.move(CallTrigger.ANSWER)
    metrics.call_answered(answered)
    answered.move(CallTrigger.DISCONNECT, "media timeout", EndReason.MEDIA_TIMEOUT)
    metrics.call_ended(answered, 200)
    assert value(metrics, "voicegw_calls_active") == 7
    assert value(metrics, "voicegw_calls_total", outcome="rejected", status="503") == 1
    assert value(metrics, "voicegw_calls_total", outcome="cancelled", status="487") == 1
    assert value(metrics, "voicegw_calls_total", outcome="answered", status="200") == 1
    assert value(metrics, "voicegw_calls_ended_total", reason="media_timeout") == 1
    assert value(metrics, "voicegw_call_setup_seconds_count") == 1
    assert (
        sum(value(metrics, "voicegw_calls_ended_total", reason=r) for r in ("other", "caller_hung_up")) == 0
    )


def test_session_events() -> None:
    metrics = Metrics()
    metrics.session_event(RealtimeAudioInterrupted("item", 0, 300, INFO))
    metrics.session_event(RealtimeError(ModelError("boom", fatal=True), "boom", INFO))
    metrics.session_event(RealtimeError(ValueError("not the model's"), "x", INFO))
    metrics.session_event(
        RealtimeRawModelEvent(ModelResponseDone("r", "completed", timings_ms={"stt": 250}), INFO)
    )
    assert value(metrics, "voicegw_barge_ins_total") == 1
    assert value(metrics, "voicegw_model_errors_total", fatal="true") == 1
    assert value(metrics, "voicegw_model_errors_total", fatal="false") == 0
    assert value(metrics, "voicegw_model_stage_seconds_sum", stage="stt") == 0.25


def test_each_server_has_its_own_registry() -> None:
    first, second = Metrics(), Metrics()
    first.barge_ins.inc()
    assert value(first, "voicegw_barge_ins_total") == 1 and value(second, "voicegw_barge_ins_total") == 0
    assert REGISTRY.get_sample_value("voicegw_barge_ins_total") is None
    assert b"voicegw_barge_ins_total 1.0" in first.render()[0]


def test_an_ended_call_is_labelled_with_its_end_reason() -> None:
    metrics = Metrics()
    for reason in EndReason:
        call = a_call(reason.value)
        call.move(CallTrigger.ANSWER)
        metrics.call_answered(call)
        # Words that once decided the label ("transferred to ..." was "other"): the value decides.
        call.ending(reason, f"{reason.words} (sip:bob@example.com)")
        call.move(CallTrigger.DISCONNECT, call.end_detail)
        metrics.call_ended(call, 200)
    for reason in EndReason:
        assert value(metrics, "voicegw_calls_ended_total", reason=reason.value) == 1, reason


def test_the_policys_refusals_are_counted_by_method_and_status() -> None:
    metrics = Metrics()
    policy = SignallingPolicy(SourcePolicy([]))
    metrics.count_refusals(policy.refused)
    request = IncomingRequest("SUBSCRIBE", ("203.0.113.9", 5060), "udp", False, b"")
    for _ in range(3):
        policy(request, 0.0)
    policy(IncomingRequest("FOO", ("203.0.113.9", 5060), "udp", False, b""), 0.0)
    assert value(metrics, "voicegw_sip_refused_total", method="SUBSCRIBE", status="405") == 3
    assert value(metrics, "voicegw_sip_refused_total", method="other", status="501") == 1
    assert b'voicegw_sip_refused_total{method="SUBSCRIBE",status="405"} 3.0' in metrics.render()[0]
