"""One SIP call as the asyncio side sees it: state, call events, media, call control.

pjsua2 objects never leave `voicegw.sip.ua`; this class is what the transport and the server
hold. Its state changes follow one transition table, so an out-of-order callback is logged
and ignored instead of corrupting the call.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog

from voicegw.contracts.transport import (
    CallEvent,
    CallInfo,
    CallStateChanged,
    DtmfReceived,
    EndReason,
    TransferResult,
)
from voicegw.rtp.events import DtmfDigit, MediaTimeout
from voicegw.sip.media import CallMedia
from voicegw.sip.message import HangupReason
from voicegw.sip.sdp import Negotiated
from voicegw.sip.state import ACTIVE_STATES, CallState, CallTrigger, InvalidTransition, transition

log = structlog.get_logger(__name__)

TRANSFER_TIMEOUT_S = 30.0
"""How long a REFER may take to report the transfer target's final answer."""


@dataclass(frozen=True, slots=True)
class Rejection:
    """A SIP final response refusing an incoming call."""

    status: int
    reason: str
    retry: bool = False
    """Whether to send Retry-After (a temporary refusal: busy, draining)."""

    headers: Mapping[str, str] = field(default_factory=dict)
    """More headers for the response (``WWW-Authenticate`` on a 401)."""

    detail: str = ""
    """Why, for the log line (not sent: a caller probing us learns nothing from it)."""


__all__ = ["Busy", "CallFailed", "CallInfo", "CallRejected", "NoAnswer", "Rejection", "SipCall"]


BUSY_STATUSES = frozenset({486, 600})
NO_ANSWER_STATUSES = frozenset({408, 480, 487})
"""487: our own CANCEL when nobody answered in time."""


class CallFailed(Exception):
    """A call we dialled was not answered; `status` and `reason` are the final SIP response's.

    `status` is 0 when no SIP response decided it (the answer's SDP was unusable, the URI bad).
    """

    def __init__(self, uri: str, status: int, reason: str) -> None:
        self.uri = uri
        self.status = status
        self.reason = reason
        super().__init__(f"{uri}: {status} {reason}" if status else f"{uri}: {reason}")


class Busy(CallFailed):
    """The far end is busy (486 Busy Here, 600 Busy Everywhere)."""


class NoAnswer(CallFailed):
    """Nobody answered: our timeout (we sent CANCEL), or 408/480 from the far end."""


class CallRejected(CallFailed):
    """Any other final failure (403, 404, 488, 503, 603, authentication refused...)."""


def call_failed(uri: str, status: int, reason: str) -> CallFailed:
    """The `CallFailed` subclass for a final status."""
    if status in BUSY_STATUSES:
        return Busy(uri, status, reason)
    if status in NO_ANSWER_STATUSES:
        return NoAnswer(uri, status, reason)
    return CallRejected(uri, status, reason)


class SipCall:
    """A call in progress: its media endpoint, its events and how to end or move it."""

    def __init__(
        self,
        info: CallInfo,
        *,
        hang_up: Callable[[int, str], None],
        transfer: Callable[[str], None],
        mirror: bool = False,
    ) -> None:
        """`mirror`: a worker process's copy of a call that the server signals; the server logs
        its signalling (state changes, hang-up, transfer status), the copy notes it at debug."""
        self.info = info
        self.state = CallState.DIALING if info.direction == "outbound" else CallState.INCOMING
        self.endpoint: CallMedia | None = None
        self.negotiated: Negotiated | None = None
        self.sample_rate = 0
        """PCM rate of the call's frames and played audio, set when media starts."""
        self.end_reason: EndReason | None = None
        """Why the call ended (or is ending: set by the hang-up that asks for it)."""
        self.end_detail = ""
        """The same in words: a SIP status and reason phrase, what hung up and why."""
        self.hangup_reason: HangupReason | None = None
        """The far end's ``Reason`` header on its BYE (a Q.850 cause, say), if it sent one."""
        self.created_at = time.monotonic()
        """When the INVITE arrived (monotonic clock): call setup time counts from here."""
        self.answered_at: float | None = None
        """When the 200 OK went out (monotonic clock); None for a call never answered."""
        self.log = log.bind(call_id=info.call_id)
        self._note = self.log.debug if mirror else self.log.info
        self._hang_up = hang_up
        self._transfer = transfer
        self._events: asyncio.Queue[CallEvent | None] = asyncio.Queue()
        self._ended = asyncio.Event()
        self._transfer_result: asyncio.Future[TransferResult] | None = None
        self._transfer_target = ""
        self._media_task: asyncio.Task[None] | None = None

    @property
    def call_id(self) -> str:
        return self.info.call_id

    @property
    def ended(self) -> bool:
        return self.state is CallState.ENDED

    def move(self, trigger: CallTrigger, reason: str = "", end_reason: EndReason | None = None) -> bool:
        """Apply `trigger` through the state table; False (and a log line) when it is refused.

        `reason` says why in words; `end_reason`, for the end of the call, says it as a value."""
        try:
            change = transition(self.state, trigger)
        except InvalidTransition as exc:
            self.log.warning("call_state_ignored", reason=str(exc))
            return False
        if change.state is change.previous:
            return False
        self.state = change.state
        if change.state is CallState.ANSWERED and self.answered_at is None:
            self.answered_at = time.monotonic()
        ended = change.state is CallState.ENDED
        if ended:
            self.end_reason = self.end_reason or end_reason or EndReason.CALLER_HUNG_UP
            self.end_detail = self.end_detail or reason
        self._note("call_state", state=change.state.value, reason=reason)
        self._events.put_nowait(CallStateChanged(change.public, reason, self.end_reason if ended else None))
        if ended:
            self._events.put_nowait(None)
            self._ended.set()
            if self._transfer_result and not self._transfer_result.done():
                self._transfer_result.set_result(
                    TransferResult(self._transfer_target, False, 0, "call ended during transfer")
                )
        return True

    def emit(self, event: CallEvent) -> None:
        if not self.ended:
            self._events.put_nowait(event)

    async def events(self) -> AsyncIterator[CallEvent]:
        """Call events until (and including) the end of the call."""
        while (event := await self._events.get()) is not None:
            yield event

    async def wait_ended(self) -> None:
        await self._ended.wait()

    def watch_media(self) -> None:
        """Turn the endpoint's DTMF into call events and its media timeout into a hang-up."""
        assert self.endpoint is not None
        endpoint = self.endpoint

        async def run() -> None:
            async for event in endpoint.events():
                if isinstance(event, DtmfDigit):
                    self.log.info("dtmf", digit=event.digit, duration_ms=event.duration_ms, method="rfc4733")
                    self.emit(DtmfReceived(event.digit, event.duration_ms))
                elif isinstance(event, MediaTimeout):
                    self.log.warning("media_timeout", silence_s=round(event.silence_s, 1))
                    await self.hang_up(EndReason.MEDIA_TIMEOUT)

        self._media_task = asyncio.create_task(run(), name=f"media-events-{self.call_id}")

    # --- call control (CallControl) -----------------------------------------------------------

    def ending(self, reason: EndReason, detail: str = "") -> None:
        """Record why we are ending the call, before the request that ends it goes out."""
        self.end_reason, self.end_detail = reason, detail or reason.words

    async def hang_up(self, reason: EndReason = EndReason.AGENT_HUNG_UP, detail: str = "") -> None:
        """End the call (BYE, or a final response if not yet answered) and wait until it has."""
        if not self.ended:
            self.ending(reason, detail)
            self._note("hang_up", reason=self.end_detail, end_reason=reason)
            self._hang_up(self._hang_up_status(), self.end_detail)
        await self.wait_ended()

    def _hang_up_status(self) -> int:
        """BYE once answered; before, a call we dialled is cancelled (pjsua reports the code given
        as the INVITE's final status: 487, as the far end answers a CANCEL) and one we are
        offered is declined."""
        if self.state in ACTIVE_STATES:
            return 200
        return 487 if self.info.direction == "outbound" else 603

    async def transfer(self, target: str) -> TransferResult:
        """Blind transfer with REFER; the result is the final status the target gave (NOTIFY)."""
        if self.ended:
            return TransferResult(target, False, 0, "call already ended")
        loop = asyncio.get_running_loop()
        self._transfer_result = loop.create_future()
        self._transfer_target = target
        self._transfer(target)
        try:
            return await asyncio.wait_for(self._transfer_result, TRANSFER_TIMEOUT_S)
        except TimeoutError:
            return TransferResult(target, False, 408, "no final transfer status in time")

    def transfer_status(self, status_code: int, reason: str, final: bool) -> None:
        self._note("transfer_status", code=status_code, reason=reason, final=final)
        waiter = self._transfer_result
        if waiter is None or waiter.done() or not (final or status_code >= 300):
            return
        result = TransferResult(self._transfer_target, 200 <= status_code < 300, status_code, reason)
        waiter.set_result(result)
        self.emit(result)

    async def send_dtmf(self, digits: str) -> None:
        if self.endpoint is None:
            raise RuntimeError("the call has no media yet")
        await self.endpoint.send_dtmf(digits)

    async def close_media(self) -> None:
        """Release the media (idempotent); the owner calls it once the call has ended."""
        if self._media_task is not None:
            self._media_task.cancel()
            await asyncio.gather(self._media_task, return_exceptions=True)
            self._media_task = None
        if self.endpoint is not None:
            await self.endpoint.close()


async def run_handler(call: SipCall, handler: Callable[[SipCall], Awaitable[None]]) -> None:
    """Run `handler` on an answered call; hang the call up when it returns or fails."""
    try:
        await handler(call)
    except Exception:
        call.log.exception("call_handler_failed")
    finally:
        if not call.ended:
            await call.hang_up(EndReason.HANDLER_FINISHED, "call handler finished")


def spawn_for_call(
    coro: Coroutine[Any, Any, Any], call: SipCall, tasks: set[asyncio.Task[Any]], kind: str
) -> asyncio.Task[Any]:
    """Run a task of `call`, kept in `tasks` until done: every log line in it (and in the tasks it
    starts) names the call, and so does the error line if it fails (our bug: each task handles
    what the network and the caller can do to it)."""
    context = contextvars.copy_context()
    context.run(structlog.contextvars.bind_contextvars, call_id=call.call_id)
    task = asyncio.get_running_loop().create_task(coro, name=f"{kind}-{call.call_id}", context=context)
    tasks.add(task)

    def done(task: asyncio.Task[Any]) -> None:
        tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            call.log.error("call_task_failed", task=kind, exc_info=exc)

    task.add_done_callback(done)
    return task
