"""Call records (CDRs): one `CallRecord` per call, inbound and outbound, answered or not.

`CallRecords` is a `CallObserver` of the SIP user agent and does no I/O: it turns the signalling
observations of each call (started, rejected, answered, set-up failed, ended), its media summary
(read from the RTP endpoint's final counters) and the facts the call's handler hands in through
`note` (agent, transcript and recording paths, the answering-machine result) into lifecycle
events: `CallStarted`, `CallAnswered` and, last, `CallEnded` carrying the record. Whoever wires it
(the server, `voicegw call`) passes one `emit` callable that writes the CDR file and the webhooks.
Time comes from an injected monotonic clock and the wall-clock offset, never read inside.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, Literal, TypeAlias

from voicegw.contracts.transport import EndReason
from voicegw.sip.call import BUSY_STATUSES, NO_ANSWER_STATUSES, SipCall

Disposition: TypeAlias = Literal["answered", "busy", "no_answer", "rejected", "failed"]
HangupSide: TypeAlias = Literal["local", "remote"]
"""Who ended the call: voicegw (a hang-up, a refusal, our CANCEL) or the other party."""

_REMOTE_REASONS = frozenset({EndReason.CALLER_HUNG_UP, EndReason.CALLER_CANCELLED})
OUR_CANCEL = 487
"""The final status of an outbound INVITE we cancelled ourselves (nobody answered in time)."""


def plain(record: Any) -> dict[str, Any]:
    """A dataclass's fields as a dict, one level deep (`dataclasses.asdict` deep-copies every
    value, several times slower, and these run on the event loop for every call)."""
    return {f.name: getattr(record, f.name) for f in fields(record)}


def iso_utc(wall_time: float) -> str:
    """ISO 8601 in UTC with milliseconds: ``2026-12-07T10:00:00.000Z``."""
    return datetime.fromtimestamp(wall_time, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class MediaSummary:
    """What the caller's RTP stream looked like over the whole call (RFC 3550 counters)."""

    packets_in: int
    packets_out: int
    lost: int
    """Packets expected and not received (never negative here: duplicates do not count)."""

    loss_percent: float
    jitter_ms: float
    """Interarrival jitter at the end of the call."""

    rtt_ms: float | None
    """Round trip from RTCP, when the far end sent receiver reports."""

    frames_concealed: int
    """Caller frames made up by packet loss concealment."""

    @classmethod
    def from_stats(cls, stats: Mapping[str, Any]) -> MediaSummary | None:
        """From `RtpEndpoint.stats`; None when the call's media never started."""
        if "packets_in" not in stats:
            return None
        received, lost = int(stats["packets_in"]), max(0, int(stats.get("lost", 0)))
        expected = received + lost
        return cls(
            packets_in=received,
            packets_out=int(stats.get("packets_out", 0)),
            lost=lost,
            loss_percent=round(100 * lost / expected, 2) if expected else 0.0,
            jitter_ms=float(stats.get("jitter_ms", 0.0)),
            rtt_ms=stats.get("rtt_ms"),
            frames_concealed=int(stats.get("frames_concealed", 0)),
        )


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One call as telephony people count it; `as_json()` is the CDR line."""

    id: str
    """Ours: unique per call, also in the call's webhooks (``call_<hex>``)."""

    call_id: str
    """The SIP Call-ID (the ``call_id`` of the call's log lines)."""

    direction: Literal["inbound", "outbound"]
    from_uri: str
    to_uri: str
    start: str
    """When the INVITE arrived or went out (ISO 8601, UTC)."""

    answer: str | None
    end: str
    duration_s: float
    """From start to end, ringing included."""

    billable_s: int
    """From answer to end, rounded up to whole seconds (as carriers bill); 0 when unanswered."""

    disposition: Disposition
    sip_status: int | None
    """The INVITE's final status (200 when answered; the refusal's when rejected)."""

    hangup_side: HangupSide
    hangup_cause: str
    """Why it ended, as an `EndReason` value (``caller_hung_up``, ``agent_hung_up``, ``rejected``...)."""

    hangup_detail: str
    """The same in words: the SIP status and reason phrase, what hung up and why."""

    remote_reason: str | None
    """The ``Reason`` header of the far end's BYE (RFC 3326), as sent; None without one."""

    q850_cause: int | None
    """Its Q.850 cause (16 normal clearing, 17 busy, ...) when it carries one."""

    codec: str | None
    media: MediaSummary | None
    amd: str | None = None
    """The answering-machine detection result of an outbound call (human, machine, unknown)."""

    agent: str | None = None
    transcript: str | None = None
    recording: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The record as one JSON object (``from``/``to`` as telephony spells them)."""
        data = plain(self)
        data["media"] = plain(self.media) if self.media is not None else None
        data["from"], data["to"] = data.pop("from_uri"), data.pop("to_uri")
        return data


@dataclass(frozen=True, slots=True)
class CallStarted:
    """An INVITE arrived, or we sent one."""

    record_id: str
    call_id: str
    direction: Literal["inbound", "outbound"]
    from_uri: str
    to_uri: str
    start: str
    type: Literal["call.started"] = "call.started"


@dataclass(frozen=True, slots=True)
class CallAnswered:
    """The call was answered (our 200 OK, or the far end's)."""

    record_id: str
    call_id: str
    answer: str
    codec: str | None
    type: Literal["call.answered"] = "call.answered"


@dataclass(frozen=True, slots=True)
class CallEnded:
    """The call is over; its record is final."""

    record: CallRecord
    type: Literal["call.ended"] = "call.ended"


CallLifecycleEvent: TypeAlias = CallStarted | CallAnswered | CallEnded


def new_record_id() -> str:
    return f"call_{uuid.uuid4().hex}"


@dataclass(slots=True)
class _Pending:
    call: SipCall
    record_id: str
    started_at: float
    """Monotonic."""

    rejected_status: int | None = None
    setup_failed: bool = False
    facts: dict[str, str | None] = field(default_factory=dict)


FACTS = ("agent", "transcript", "recording", "amd")
"""What a call's handler may `note`."""


class CallRecords:
    """Builds each call's record from the user agent's observations (a `CallObserver`)."""

    def __init__(
        self,
        emit: Callable[[CallLifecycleEvent], None],
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_offset: float | None = None,
        new_id: Callable[[], str] = new_record_id,
    ) -> None:
        """`emit` gets every event, synchronously (it must not block); `clock` is monotonic and
        `wall_offset` turns its readings into Unix time (default: now's offset)."""
        self._emit = emit
        self._clock = clock
        self._wall_offset = time.time() - clock() if wall_offset is None else wall_offset
        self._new_id = new_id
        self._calls: dict[int, _Pending] = {}
        """By `id()` of the SipCall: two calls may carry the same Call-ID (a forked INVITE)."""

    def _wall(self, monotonic: float) -> str:
        return iso_utc(monotonic + self._wall_offset)

    def _pending(self, call: SipCall) -> _Pending:
        """The call's entry; a call first seen after its start gets one dated from its INVITE."""
        pending = self._calls.get(id(call))
        if pending is None:
            pending = self._calls[id(call)] = _Pending(call, self._new_id(), call.created_at)
        return pending

    # --- what the call's handler knows ---------------------------------------------------------

    def note(self, call: SipCall, **facts: str | None) -> None:
        """Facts about `call` for its record: ``agent``, ``transcript`` and ``recording`` (paths),
        ``amd`` (the answering-machine result). Noted after the call's end, they are dropped."""
        unknown = set(facts) - set(FACTS)
        if unknown:
            raise TypeError(f"unknown call record facts: {', '.join(sorted(unknown))}")
        pending = self._calls.get(id(call))
        if pending is not None:
            pending.facts.update(facts)

    # --- CallObserver ---------------------------------------------------------------------------

    def call_started(self, call: SipCall) -> None:
        pending = self._pending(call)
        info = call.info
        self._emit(
            CallStarted(
                pending.record_id,
                call.call_id,
                info.direction,
                info.from_uri,
                info.to_uri,
                self._wall(pending.started_at),
            )
        )

    def call_rejected(self, call: SipCall, status: int) -> None:
        self._pending(call).rejected_status = status

    def call_setup_failed(self, call: SipCall, cause: str) -> None:
        self._pending(call).setup_failed = True

    def call_answered(self, call: SipCall) -> None:
        pending = self._pending(call)
        answered = call.answered_at if call.answered_at is not None else self._clock()
        self._emit(CallAnswered(pending.record_id, call.call_id, self._wall(answered), _codec(call)))

    def call_ended(self, call: SipCall, status: int) -> None:
        pending = self._calls.pop(id(call), None) or _Pending(call, self._new_id(), call.created_at)
        self._emit(CallEnded(self._record(pending, status, self._clock())))

    def end_all(self) -> None:
        """Record the calls never reported ended (the user agent stopped first)."""
        for pending in list(self._calls.values()):
            self.call_ended(pending.call, 0)

    # --- the record -------------------------------------------------------------------------------

    def _record(self, pending: _Pending, status: int, ended_at: float) -> CallRecord:
        call = pending.call
        disposition = _disposition(pending, status)
        answered_at = call.answered_at
        talk = max(0.0, ended_at - answered_at) if answered_at is not None else 0.0
        facts = pending.facts
        endpoint = call.endpoint
        return CallRecord(
            id=pending.record_id,
            call_id=call.call_id,
            direction=call.info.direction,
            from_uri=call.info.from_uri,
            to_uri=call.info.to_uri,
            start=self._wall(pending.started_at),
            answer=self._wall(answered_at) if answered_at is not None else None,
            end=self._wall(ended_at),
            duration_s=round(max(0.0, ended_at - pending.started_at), 3),
            billable_s=math.ceil(round(talk, 3)),
            disposition=disposition,
            sip_status=_final_status(pending, status, disposition),
            hangup_side=_hangup_side(call, status),
            hangup_cause=str(call.end_reason or EndReason.CALLER_HUNG_UP),
            hangup_detail=call.end_detail,
            remote_reason=call.hangup_reason.header if call.hangup_reason else None,
            q850_cause=call.hangup_reason.q850_cause if call.hangup_reason else None,
            codec=_codec(call),
            media=MediaSummary.from_stats(endpoint.stats) if endpoint is not None else None,
            amd=facts.get("amd"),
            agent=facts.get("agent"),
            transcript=facts.get("transcript"),
            recording=facts.get("recording"),
        )


def _codec(call: SipCall) -> str | None:
    return call.negotiated.codec.encoding if call.negotiated is not None else None


def _disposition(pending: _Pending, status: int) -> Disposition:
    call = pending.call
    if call.answered_at is not None:
        return "answered"
    if pending.setup_failed or (call.end_reason is EndReason.FAILED and status < 300):
        # Our set-up failed, or the far end answered with SDP we could not use (we sent a BYE).
        return "failed"
    if pending.rejected_status is not None:
        return "rejected"
    if status in BUSY_STATUSES:
        return "busy"
    if status in NO_ANSWER_STATUSES or call.end_reason is EndReason.CALLER_CANCELLED:
        return "no_answer"
    return "rejected" if status >= 300 else "failed"


def _final_status(pending: _Pending, status: int, disposition: Disposition) -> int | None:
    if disposition == "answered":
        return 200
    if pending.rejected_status is not None:
        return pending.rejected_status
    return status if status >= 300 else None


def _hangup_side(call: SipCall, status: int) -> HangupSide:
    if call.end_reason in _REMOTE_REASONS:
        return "remote"
    # A call we dialled that was refused (busy, declined, 408/480 from the far end) ended there;
    # 487 is the answer to our own CANCEL.
    refused = call.answered_at is None and status >= 300 and status != OUR_CANCEL
    return "remote" if call.info.direction == "outbound" and refused else "local"
