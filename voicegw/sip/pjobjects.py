"""pjsua2's own objects (Call, Account) subclassed: each callback hands over to the user agent.

They run on the loop's thread (pjsua2 is pumped there), never block, and never raise into C++
(`guarded`). Nothing outside `voicegw.sip` sees them.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import random
from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar

import pjsua2 as pj
import structlog

from voicegw.contracts.transport import DtmfReceived
from voicegw.sip import sdp
from voicegw.sip.account import Registration, SipAccount
from voicegw.sip.call import SipCall
from voicegw.sip.message import HangupReason, parse_info_dtmf, parse_reason, parse_request

log = structlog.get_logger(__name__)

F = TypeVar("F", bound=Callable[..., Any])


class UserAgentCallbacks(Protocol):
    """What pjsua2's callbacks call on the user agent."""

    def _sdp_created(self, pj_call: PjCall, prm: pj.OnCallSdpCreatedParam) -> None: ...
    def _check_reoffer(self, pj_call: PjCall, remote: str) -> int: ...
    def _call_state(self, pj_call: PjCall) -> None: ...
    def _incoming(self, account: PjAccount, prm: pj.OnIncomingCallParam) -> None: ...


def guarded(method: F) -> F:
    """pjsua2 callbacks must never raise into C++: log and swallow."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any) -> Any:
        try:
            return method(self, *args)
        except Exception:
            log.exception("sip_callback_failed", callback=method.__name__)
            return None

    return wrapper  # type: ignore[return-value]


def call_op(status: int = 200, reason: str = "", headers: Mapping[str, str] | None = None) -> pj.CallOpParam:
    op = pj.CallOpParam(True)
    op.statusCode = status
    if reason:
        op.reason = reason
    if headers:
        # SWIG hands out copies of nested structs: build the vector, then assign it back.
        vector = pj.SipHeaderVector()
        for name, value in headers.items():
            header = pj.SipHeader()
            header.hName, header.hValue = name, value
            vector.append(header)
        tx_option = op.txOption
        tx_option.headers = vector
        op.txOption = tx_option
    return op


_KEYS = itertools.count(1)


class PjCall(pj.Call):
    """pjsua2's call: each callback hands over to the user agent."""

    def __init__(self, ua: UserAgentCallbacks, account: pj.Account, call_id: int) -> None:
        super().__init__(account, call_id)
        self.ua = ua
        self.key = next(_KEYS)
        """Unique in the process, unlike the SIP Call-ID: an INVITE challenged with 401 comes again
        with the same Call-ID while the refused call may still be being cleaned up."""
        self.call: SipCall | None = None
        self.local_sdp = ""
        """Our SDP: the answer to the caller's offer, or the offer of a call we dial."""
        self.remote_answer = ""
        """The SDP answer to our offer: in the far end's response to the INVITE we sent (dialling
        out), or in the caller's ACK to our 200 OK (answering an INVITE that had no offer)."""
        self.hangup_reason: HangupReason | None = None
        """The ``Reason`` header of the far end's BYE, if it sent one."""
        self.late_offer = False
        """Answering an INVITE with no SDP (RFC 3261 13.2.1): our offer goes in the 200 OK and the
        call's media waits for the answer in the ACK."""
        self.dialled: asyncio.Future[SipCall] | None = None
        """Dialling out: resolved when the call is answered, failed when it is not."""
        self.sdp_session_id = random.randrange(1 << 31)
        self.sdp_version = 0
        """RFC 3264 8: every answer in the dialog keeps the o= session id and bumps the version."""

    def make_offer(self, codecs: tuple[str, ...], address: str, port: int) -> None:
        """Our offer of `codecs` at `address`:`port`: in the INVITE we send, or in the 200 OK to one
        that came without an offer."""
        self.sdp_version += 1
        self.local_sdp = sdp.offer(
            codecs,
            address=address,
            port=port,
            session_id=self.sdp_session_id,
            version=self.sdp_version,
        )

    def make_answer(self, offer: sdp.SessionDescription, negotiated: sdp.Negotiated, address: str) -> None:
        assert self.call is not None and self.call.endpoint is not None
        self.sdp_version += 1
        self.local_sdp = sdp.answer(
            offer,
            negotiated,
            address=address,
            port=self.call.endpoint.local_port,
            session_id=self.sdp_session_id,
            version=self.sdp_version,
        )

    @guarded
    def onCallSdpCreated(self, prm: pj.OnCallSdpCreatedParam) -> None:
        self.ua._sdp_created(self, prm)

    @guarded
    def onCallRxReinvite(self, prm: pj.OnCallRxReinviteParam) -> None:
        # Runs before onCallSdpCreated: the only place a re-INVITE's offer can still be refused.
        status = self.ua._check_reoffer(self, prm.offer.wholeSdp)
        if status:
            prm.statusCode = status

    @guarded
    def onCallState(self, prm: pj.OnCallStateParam) -> None:
        received = parse_request(_received_message(prm.e))
        # A response to our INVITE (the 200, or a 183 with early media), or the ACK to our 200 OK:
        # its SDP is the answer.
        if (self.dialled is not None or self.late_offer) and received.body.strip():
            self.remote_answer = received.body
        if received.method == "BYE":
            self.hangup_reason = parse_reason(received.headers.get("reason", ""))
        self.ua._call_state(self)

    @guarded
    def onCallTransferStatus(self, prm: pj.OnCallTransferStatusParam) -> None:
        if self.call is not None:
            self.call.transfer_status(prm.statusCode, prm.reason, prm.finalNotify)

    @guarded
    def onCallTsxState(self, prm: pj.OnCallTsxStateParam) -> None:
        # DTMF over SIP INFO. pjsua parses only dtmf-relay (with no duration, in 2.12) and
        # answers application/dtmf with 500, so voicegw reads both bodies itself.
        event = prm.e
        if self.call is None or event.type != pj.PJSIP_EVENT_TSX_STATE:
            return
        tsx = event.body.tsxState.tsx
        if tsx.role != pj.PJSIP_ROLE_UAS or tsx.state != pj.PJSIP_TSX_STATE_TRYING or tsx.method != "INFO":
            return
        dtmf = parse_info_dtmf(parse_request(event.body.tsxState.src.rdata.wholeMsg))
        if dtmf is not None:
            self.call.log.info("dtmf", digit=dtmf.digit, duration_ms=dtmf.duration_ms, method="sip_info")
            self.call.emit(DtmfReceived(dtmf.digit, dtmf.duration_ms))


def _received_message(event: pj.SipEvent) -> str:
    """The SIP message that came in and caused `event` ("" when none did)."""
    if event.type == pj.PJSIP_EVENT_TSX_STATE and event.body.tsxState.type == pj.PJSIP_EVENT_RX_MSG:
        return str(event.body.tsxState.src.rdata.wholeMsg)
    if event.type == pj.PJSIP_EVENT_RX_MSG:  # an ACK to a 2xx: it belongs to no transaction
        return str(event.body.rxMsg.rdata.wholeMsg)
    return ""


class PjAccount(pj.Account):
    def __init__(self, ua: UserAgentCallbacks, account: SipAccount) -> None:
        super().__init__()
        self.ua = ua
        self.account = account
        self.registration = Registration(account.name, account.registrar or "")

    @guarded
    def onIncomingCall(self, prm: pj.OnIncomingCallParam) -> None:
        self.ua._incoming(self, prm)

    @guarded
    def onRegState(self, prm: pj.OnRegStateParam) -> None:
        self.registration.update(int(prm.code), str(prm.reason), int(prm.expiration))
