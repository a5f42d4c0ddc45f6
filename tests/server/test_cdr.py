"""Call records from signalling observations alone: no sockets, a manual clock."""

from __future__ import annotations

import json

import pytest

from voicegw.contracts.transport import EndReason
from voicegw.server.cdr import (
    CallAnswered,
    CallEnded,
    CallLifecycleEvent,
    CallRecord,
    CallRecords,
    CallStarted,
    MediaSummary,
)
from voicegw.sip.call import CallInfo, SipCall
from voicegw.sip.message import parse_reason
from voicegw.sip.state import CallTrigger

WALL = 1_796_637_600.0  # 2026-12-07T10:00:00Z at monotonic 0


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def a_call(direction: str = "inbound", call_id: str = "abc@host") -> SipCall:
    info = CallInfo(call_id, "<sip:alice@a>", "<sip:bob@b>", ("127.0.0.1", 5060), direction=direction)  # type: ignore[arg-type]
    call = SipCall(info, hang_up=lambda status, reason: None, transfer=lambda target: None)
    call.created_at = 100.0
    return call


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def events() -> list[CallLifecycleEvent]:
    return []


@pytest.fixture
def records(clock: Clock, events: list[CallLifecycleEvent]) -> CallRecords:
    ids = iter(f"call_{n}" for n in range(100))
    return CallRecords(events.append, clock=clock, wall_offset=WALL, new_id=lambda: next(ids))


def ended(events: list[CallLifecycleEvent]) -> CallRecord:
    last = events[-1]
    assert isinstance(last, CallEnded)
    return last.record


def answer(call: SipCall, at: float) -> None:
    call.move(CallTrigger.RING)
    call.move(CallTrigger.ANSWER)
    call.answered_at = at


def test_an_answered_inbound_call_the_caller_hangs_up(
    records: CallRecords, clock: Clock, events: list[CallLifecycleEvent]
) -> None:
    call = a_call()
    records.call_started(call)
    clock.now = 102.5
    answer(call, 102.5)
    records.call_answered(call)
    records.note(call, agent="front_desk", transcript="/t/x.jsonl")
    clock.now = 163.7
    call.hangup_reason = parse_reason("Q.850;cause=16")
    call.move(CallTrigger.DISCONNECT, "caller hung up", EndReason.CALLER_HUNG_UP)
    records.call_ended(call, 200)
    started, answered = events[0], events[1]
    assert started == CallStarted(
        "call_0", "abc@host", "inbound", "<sip:alice@a>", "<sip:bob@b>", "2026-12-07T10:01:40.000Z"
    )
    assert answered == CallAnswered("call_0", "abc@host", "2026-12-07T10:01:42.500Z", None)
    record = ended(events)
    assert record.as_json() == {
        "id": "call_0",
        "call_id": "abc@host",
        "direction": "inbound",
        "from": "<sip:alice@a>",
        "to": "<sip:bob@b>",
        "start": "2026-12-07T10:01:40.000Z",
        "answer": "2026-12-07T10:01:42.500Z",
        "end": "2026-12-07T10:02:43.700Z",
        "duration_s": 63.7,
        "billable_s": 62,
        "disposition": "answered",
        "sip_status": 200,
        "hangup_side": "remote",
        "hangup_cause": "caller_hung_up",
        "hangup_detail": "caller hung up",
        "remote_reason": "Q.850;cause=16",
        "q850_cause": 16,
        "codec": None,
        "media": None,
        "amd": None,
        "agent": "front_desk",
        "transcript": "/t/x.jsonl",
        "recording": None,
    }
    json.dumps(record.as_json())  # one JSON line, as written


def test_the_agent_hanging_up_is_the_local_side(
    records: CallRecords, events: list[CallLifecycleEvent]
) -> None:
    call = a_call()
    records.call_started(call)
    answer(call, 101.0)
    call.ending(EndReason.AGENT_HUNG_UP, "goodbye said")
    call.move(CallTrigger.DISCONNECT)
    records.call_ended(call, 200)
    record = ended(events)
    assert (record.hangup_side, record.hangup_cause, record.hangup_detail) == (
        "local",
        "agent_hung_up",
        "goodbye said",
    )


def test_a_call_we_rejected(records: CallRecords, events: list[CallLifecycleEvent]) -> None:
    call = a_call()
    records.call_started(call)
    call.ending(EndReason.REJECTED, "503 Server draining")
    records.call_rejected(call, 503)
    call.move(CallTrigger.DISCONNECT)
    records.call_ended(call, 503)
    record = ended(events)
    assert (record.disposition, record.sip_status, record.hangup_side, record.billable_s, record.answer) == (
        "rejected",
        503,
        "local",
        0,
        None,
    )


def test_a_caller_who_gives_up_while_it_rings_is_no_answer(
    records: CallRecords, events: list[CallLifecycleEvent]
) -> None:
    call = a_call()
    records.call_started(call)
    call.move(CallTrigger.RING)
    call.move(CallTrigger.DISCONNECT, "caller cancelled", EndReason.CALLER_CANCELLED)
    records.call_ended(call, 487)
    record = ended(events)
    assert (record.disposition, record.sip_status, record.hangup_side) == ("no_answer", 487, "remote")


def test_a_setup_failure_is_failed_even_with_its_final_response(
    records: CallRecords, events: list[CallLifecycleEvent]
) -> None:
    call = a_call()
    records.call_started(call)
    records.call_setup_failed(call, "timeout")
    call.ending(EndReason.REJECTED, "500 Setup timed out")
    records.call_rejected(call, 500)
    call.move(CallTrigger.DISCONNECT)
    records.call_ended(call, 500)
    assert (ended(events).disposition, ended(events).sip_status) == ("failed", 500)


@pytest.mark.parametrize(
    ("status", "end_reason", "disposition", "side", "sip_status"),
    [
        (486, EndReason.FAILED, "busy", "remote", 486),
        (600, EndReason.FAILED, "busy", "remote", 600),
        (487, EndReason.FAILED, "no_answer", "local", 487),  # our CANCEL after the ring timeout
        (480, EndReason.FAILED, "no_answer", "remote", 480),
        (603, EndReason.FAILED, "rejected", "remote", 603),
        (404, EndReason.FAILED, "rejected", "remote", 404),
        (200, EndReason.FAILED, "failed", "local", None),  # an unusable SDP answer: we sent BYE
        (0, EndReason.FAILED, "failed", "local", None),
    ],
)
def test_outbound_outcomes(
    records: CallRecords,
    events: list[CallLifecycleEvent],
    status: int,
    end_reason: EndReason,
    disposition: str,
    side: str,
    sip_status: int | None,
) -> None:
    call = a_call("outbound")
    records.call_started(call)
    call.move(CallTrigger.DISCONNECT, f"{status} whatever", end_reason)
    records.call_ended(call, status)
    record = ended(events)
    assert (record.direction, record.disposition, record.hangup_side, record.sip_status) == (
        "outbound",
        disposition,
        side,
        sip_status,
    )


def test_facts_noted_after_the_end_are_dropped_and_unknown_ones_refused(
    records: CallRecords, events: list[CallLifecycleEvent]
) -> None:
    call = a_call()
    records.call_started(call)
    records.note(call, amd="machine", recording="/r/x.wav")
    with pytest.raises(TypeError, match="unknown call record facts: colour"):
        records.note(call, colour="blue")
    call.move(CallTrigger.DISCONNECT, "caller cancelled", EndReason.CALLER_CANCELLED)
    records.call_ended(call, 487)
    records.note(call, agent="late")
    record = ended(events)
    assert (record.amd, record.recording, record.agent) == ("machine", "/r/x.wav", None)


def test_calls_never_reported_ended_are_recorded_at_close(
    records: CallRecords, clock: Clock, events: list[CallLifecycleEvent]
) -> None:
    first, second = a_call(call_id="same"), a_call(call_id="same")  # a forked INVITE: one Call-ID
    records.call_started(first)
    records.call_started(second)
    clock.now = 110.0
    records.end_all()
    records.end_all()
    ends = [event.record for event in events if isinstance(event, CallEnded)]
    assert [(r.id, r.duration_s) for r in ends] == [("call_0", 10.0), ("call_1", 10.0)]


def test_media_summary_from_endpoint_counters() -> None:
    stats = {"packets_in": 990, "packets_out": 1000, "lost": 10, "jitter_ms": 3.25, "rtt_ms": None}
    assert MediaSummary.from_stats(stats) == MediaSummary(990, 1000, 10, 1.0, 3.25, None, 0)
    assert MediaSummary.from_stats({"local_port": 20000}) is None  # media never started
    assert MediaSummary.from_stats({"packets_in": 5, "lost": -2}).lost == 0  # type: ignore[union-attr]
