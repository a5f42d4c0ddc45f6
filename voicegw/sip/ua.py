"""The SIP user agent: pjsua2 for signaling, driven from the asyncio event loop.

pjsua2 lives on exactly one thread, the loop's: it is created there, configured with no worker
threads (`threadCnt = 0`, `mainThreadOnly`), and pumped by a loop callback calling
`libHandleEvents(0)` every few milliseconds, so every callback runs on the loop thread and may
touch asyncio state directly. Callbacks only translate pjsua2 objects into `SipCall` changes and
schedule tasks; they never block and never raise into C++.

pjsua opens no RTP sockets (`useLoopMedTp`): each call's media is a voicegw `RtpEndpoint`, and the
SDP answer voicegw computes replaces pjsua's in `Call.onCallSdpCreated`. Dialling out
(`SipUserAgent.dial`) is the mirror image: voicegw's offer replaces pjsua's, and the codec comes
from the far end's answer, read from the INVITE's response.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import operator
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import pjsua2 as pj
import structlog

from voicegw.audio.codecs import SUPPORTED_CODECS, codec_for
from voicegw.contracts.transport import EndReason
from voicegw.rtp.clock import MediaClock
from voicegw.rtp.endpoint import RtpEndpoint
from voicegw.rtp.ports import RtpPortsExhausted
from voicegw.rtp.srtp import SrtpMode
from voicegw.sip import pjlog, sdp, tls
from voicegw.sip.account import Registration, SipAccount, account_config
from voicegw.sip.call import CallInfo, NoAnswer, Rejection, SipCall, call_failed, run_handler, spawn_for_call
from voicegw.sip.guard import RequestGuard
from voicegw.sip.media import MediaFactory
from voicegw.sip.message import SipRequest, parse_request
from voicegw.sip.pjguard import GuardUnavailable, PjRequestGuard
from voicegw.sip.pjobjects import PjAccount, PjCall, call_op
from voicegw.sip.state import ACTIVE_STATES, CallState, CallTrigger
from voicegw.sip.watchdog import SETUP_TIMEOUT_S, SetupWatchdog

log = structlog.get_logger(__name__)

PUMP_INTERVAL_S = 0.005
PUMP_BUDGET_S = 0.002
"""A pump turn polls again while pjsip finds work, until this much time has gone."""
SHUTDOWN_PUMP_S = 1.0
RETRY_AFTER_S = 30
DELAYED_OFFER_RATE = 8000
"""The PCM rate a call with no offer yet is prepared for (its model connects while it rings)."""
PJSUA_MAX_CALLS = 1024
"""PJSUA_MAX_CALLS in scripts/build_pjsua2.sh's config_site.h."""

CALL_LIMIT_HEADROOM = 16
SLOW_PUMP_S = 0.002
DIAL_TIMEOUT_S = 30.0
CANCEL_WAIT_S = 5.0
"""After our CANCEL, how long dial() waits for the far end's 487 before giving up on it."""
LOCAL_ACCOUNT = "local"
"""The account with no registration or credentials: direct calls to and from voicegw's address."""

REASON_HEADERS: Mapping[EndReason, str] = {
    EndReason.WORKER_FAILED: 'Q.850;cause=41;text="worker failed"',
}
"""The RFC 3326 Reason header our BYE (or final response) carries for these ends of a call."""

_TLS_PROTOCOLS = {"1.2": pj.PJ_SSL_SOCK_PROTO_TLS1_2, "1.3": pj.PJ_SSL_SOCK_PROTO_TLS1_3}

CallHandler = Callable[[SipCall], Awaitable[None]]
Admission = Callable[[CallInfo], Rejection | None]
"""Decides, before anything is set up, whether to take a call (None) or refuse it."""
Readiness = Callable[[SipCall], Awaitable[Rejection | None]]
"""While the call rings: None once whatever serves the call is ready, else the refusal (503).
It bounds its own wait; the call's `sample_rate` is known by then."""


class CallObserver(Protocol):
    """Told of each call's life (metrics, call records); called on the loop thread, must not block.

    Calls we dial are told of too (``call.info.direction``): started, answered, ended."""

    def call_started(self, call: SipCall) -> None:
        """An INVITE came in (and passed the request guard), or we sent one."""

    def call_rejected(self, call: SipCall, status: int) -> None:
        """We answered the INVITE with a final error `status` (503 draining, 488...)."""

    def call_answered(self, call: SipCall) -> None:
        """The 200 OK went out."""

    def call_setup_failed(self, call: SipCall, cause: str) -> None:
        """Setting the call up failed (``"error"``) or took too long (``"timeout"``); its final
        response follows (`call_rejected`)."""

    def call_ended(self, call: SipCall, status: int) -> None:
        """The call is over and its media closed (`call.endpoint.stats` are final);
        `status` is the INVITE's last status code as pjsua saw it (487 for a CANCEL)."""


def _delayed_offer(request: SipRequest) -> bool:
    """An INVITE with no SDP at all (RFC 3261 13.2.1): we make the offer. A body that was announced
    (Content-Length) and did not arrive is a broken message, not a delayed offer."""
    return not request.body.strip() and request.headers.get("content-length", "0").strip() == "0"


class SipStartError(RuntimeError):
    """The user agent could not start (a port in use, a bad TLS certificate)."""


@dataclass(slots=True)
class PumpStats:
    """How long the pjsua2 pump holds the event loop (it runs on the loop's thread)."""

    turns: int = 0
    total_s: float = 0.0
    max_s: float = 0.0
    slow: int = 0
    """Turns longer than `SLOW_PUMP_S`."""

    def add(self, elapsed: float) -> None:
        self.turns += 1
        self.total_s += elapsed
        self.max_s = max(self.max_s, elapsed)
        self.slow += elapsed > SLOW_PUMP_S

    def summary(self) -> dict[str, float]:
        mean = self.total_s / self.turns if self.turns else 0.0
        return {
            "turns": self.turns,
            "mean_ms": round(mean * 1000, 3),
            "max_ms": round(self.max_s * 1000, 3),
            "slow": self.slow,
        }


@dataclass(frozen=True, slots=True)
class SipConfig:
    host: str = "0.0.0.0"
    port: int = 5060
    tcp: bool = True
    tls_port: int | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_min_version: str = tls.DEFAULT_MIN_VERSION
    """The oldest TLS version accepted: "1.2" or "1.3"."""

    tls_ciphers: tuple[str, ...] = tls.DEFAULT_CIPHERS
    """OpenSSL names of the TLS suites accepted (1.2 and 1.3 alike); default forward-secret only."""

    public_address: str | None = None
    """Address written in SDP and Contact (behind NAT); default: `host`, or 127.0.0.1 for 0.0.0.0."""

    rtp_host: str | None = None
    """Address the RTP sockets bind to; default: `host`."""

    rtp_ports: tuple[int, int] = (20000, 30000)
    codecs: tuple[str, ...] = tuple(codec.name for codec in SUPPORTED_CODECS)
    max_calls: int = 200
    answer_delay: float = 0.0
    """Seconds of ringing before answering (a caller can still CANCEL then)."""
    media_timeout: float = 30.0
    srtp: SrtpMode = "optional"
    """SRTP (SDES keys in ``a=crypto``): "optional" answers SRTP offers with SRTP and plain ones
    plainly, "required" refuses plain RTP offers with 488, "off" refuses SRTP-only offers."""

    user_agent: str = "voicegw"
    sample_rate: int | None = None
    """PCM rate handed to the call handler; None: the negotiated codec's own rate (no resampling)."""

    pjsip_log_level: int = 2
    """pjsip's own log: 0 off, 1 errors, 2 warnings, 3-4 detail, 5 every SIP message (all to structlog)."""

    accounts: tuple[SipAccount, ...] = ()
    """PBX extensions and trunks (credentials, proxy, registration); the first one dials by default."""

    @property
    def media_address(self) -> str:
        if self.public_address:
            return self.public_address
        return "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host


class SipUserAgent:
    """Answers SIP calls and runs `handler(call)` on each answered call; dials out with `dial`.

    With no handler, incoming calls are declined (480).
    """

    def __init__(
        self,
        config: SipConfig,
        clock: MediaClock,
        handler: CallHandler | None = None,
        admit: Admission | None = None,
        guard: RequestGuard | None = None,
        ready: Readiness | None = None,
        media: MediaFactory | None = None,
    ) -> None:
        """`admit` refuses calls the server does not take (a source not allowed, a busy model);
        `guard` sees every request (ACK aside) before pjsua does and may refuse it statelessly;
        `ready` runs while a call rings and may still refuse it (the model cannot be reached);
        `media` binds an incoming call's media (default: an `RtpEndpoint` on `clock`, here)."""
        self.config = config
        self.clock = clock
        self.handler = handler
        self.admit = admit
        self.guard = guard
        self._request_guard: PjRequestGuard | None = None
        self.ready = ready
        self._bind_media: MediaFactory = media or self._bind_endpoint
        self.observers: list[CallObserver] = []
        self.port = config.port
        """The SIP port in use (the one bound, when `config.port` is 0)."""
        self.draining = False
        self.calls: dict[int, SipCall] = {}
        self._pj_calls: dict[int, PjCall] = {}
        """Every pjsua2 Call stays referenced here until its disconnect is handled (GC hangs up)."""
        self._tasks: set[asyncio.Task[None]] = set()
        self._endpoint: pj.Endpoint | None = None
        self._accounts: dict[str, PjAccount] = {}
        self._pump: asyncio.Handle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.pump_stats = PumpStats()
        self._log_writer = pjlog.PjLogWriter()
        """Referenced for pjsua2's whole life: pjsip calls it until libDestroy."""
        self._watchdog = SetupWatchdog(SETUP_TIMEOUT_S + config.answer_delay)
        self._watchdog_timer: asyncio.TimerHandle | None = None

    def _bind_endpoint(self, host: str, port_range: tuple[int, int]) -> RtpEndpoint:
        return RtpEndpoint.bind(host=host, port_range=port_range, clock=self.clock)

    # --- life cycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        ep = pj.Endpoint()
        with pjlog.console_silenced():
            ep.libCreate()
        self._endpoint = ep
        try:
            cfg = pj.EpConfig()
            cfg.uaConfig.threadCnt = 0
            cfg.uaConfig.mainThreadOnly = True
            # pjsua's own limit answers 486; ours, below it, answers 503 with Retry-After.
            cfg.uaConfig.maxCalls = min(PJSUA_MAX_CALLS, self.config.max_calls + CALL_LIMIT_HEADROOM)
            cfg.uaConfig.userAgent = self.config.user_agent
            pjlog.configure(cfg.logConfig, self._log_writer, self.config.pjsip_log_level)
            cfg.medConfig.noVad = True
            ep.libInit(cfg)
            if self.guard is not None:
                # Before any transport exists: no request ever reaches pjsua unguarded.
                self._request_guard = PjRequestGuard(self.guard, self._loop.time)
                self._request_guard.install()
            self._create_transports(ep)
            ep.libStart()
            # pjsua still gives each call a stream and a conference port on its loop transport.
            # They carry no packets, so they cost set-up and memory but no CPU afterwards (pjsua
            # 2.17 with setNoDev instead measured the same at 100 calls); CallSetting.audioCount = 0
            # on the answer, which would skip them, makes pjsua refuse its own answer with 488.
            ep.audDevManager().setNullDev()
            self._create_accounts()
        except (pj.Error, GuardUnavailable) as exc:
            self._destroy()
            detail = exc.info() if isinstance(exc, pj.Error) else str(exc)
            where = f"{self.config.host}:{self.config.port}"
            raise SipStartError(f"SIP could not start on {where}: {detail}") from None
        except BaseException:  # our misuse (a TLS setting not checked by config.load): no socket left open
            self._destroy()
            raise
        self._pump = self._loop.call_soon(self._pump_events)
        log.info(
            "sip_started",
            host=self.config.host,
            port=self.port,
            tcp=self.config.tcp,
            tls_port=self.config.tls_port,
        )

    def _create_accounts(self) -> None:
        default_uri = f"sip:voicegw@{self.config.media_address}:{self.port}"
        # The local account is pjsua's default: it takes calls that match no other account.
        for account in (SipAccount(LOCAL_ACCOUNT), *self.config.accounts):
            pj_account = PjAccount(self, account)
            pj_account.create(account_config(account, default_uri=default_uri), account.name == LOCAL_ACCOUNT)
            self._accounts[account.name] = pj_account
            if account.register:
                log.info("sip_registering", account=account.name, registrar=account.registrar)

    def registration(self, account: str) -> Registration:
        """What `account`'s registrar said last; raises KeyError for an unknown account."""
        return self._accounts[account].registration

    def _create_transports(self, ep: pj.Endpoint) -> None:
        def transport(port: int) -> pj.TransportConfig:
            tc = pj.TransportConfig()
            tc.port = port
            tc.boundAddress = self.config.host
            if self.config.public_address:
                tc.publicAddress = self.config.public_address
            return tc

        udp = ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, transport(self.config.port))
        # Port 0 (a dialler's default) binds any free port; TCP then shares it.
        self.port = int(ep.transportGetInfo(udp).localName.rsplit(":", 1)[1])
        if self.config.tcp:
            ep.transportCreate(pj.PJSIP_TRANSPORT_TCP, transport(self.port))
        if self.config.tls_port:
            tc = transport(self.config.tls_port)
            tc.tlsConfig.certFile = self.config.tls_cert or ""
            tc.tlsConfig.privKeyFile = self.config.tls_key or ""
            # `proto`, when set, overrides `method`: exactly these versions, nothing older.
            tc.tlsConfig.proto = functools.reduce(
                operator.or_, (_TLS_PROTOCOLS[v] for v in tls.versions_from(self.config.tls_min_version))
            )
            tc.tlsConfig.ciphers = pj.IntVector(tls.cipher_ids(self.config.tls_ciphers))
            ep.transportCreate(pj.PJSIP_TRANSPORT_TLS, tc)

    def _pump_events(self) -> None:
        """One pump turn: let pjsip poll its sockets and timers without waiting."""
        assert self._endpoint is not None and self._loop is not None
        started = time.perf_counter()
        try:
            # Each poll handles a bounded batch; a burst (many INVITEs at once) takes more
            # polls, but one turn stops at its time budget so that the media clock, on this
            # same loop, is never held up by SIP work; the rest waits for the next turn.
            while self._endpoint.libHandleEvents(0) > 0 and time.perf_counter() - started < PUMP_BUDGET_S:
                pass
        except Exception:
            log.exception("sip_pump_failed")
        self.pump_stats.add(time.perf_counter() - started)
        self._pump = self._loop.call_later(PUMP_INTERVAL_S, self._pump_events)

    async def stop(self) -> None:
        """Hang up every call, let the BYEs go out, destroy pjsua2."""
        if self._endpoint is None:
            return
        for key, call in list(self.calls.items()):
            if not call.ended:
                call.ending(EndReason.SERVER_SHUTDOWN, "server shutting down")
                self._hang_up_pj(key, 200, call.end_detail)
        # The pump keeps running meanwhile: BYEs go out and their DISCONNECTED callbacks come in.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._all_forgotten(), SHUTDOWN_PUMP_S)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for call in list(self.calls.values()):
            await call.close_media()
        if self._pump is not None:
            self._pump.cancel()
        if self._watchdog_timer is not None:
            self._watchdog_timer.cancel()
        self._destroy()
        log.info("sip_stopped", pump=self.pump_stats.summary())

    async def _all_forgotten(self) -> None:
        while self._pj_calls:
            await asyncio.sleep(PUMP_INTERVAL_S)

    def _destroy(self) -> None:
        self._pj_calls.clear()
        self._accounts.clear()
        if self._request_guard is not None:
            self._request_guard.uninstall()
            self._request_guard = None
        if self._endpoint is not None:
            # Explicit: pjsua2 must not be torn down by the garbage collector.
            self._endpoint.libDestroy()
            self._endpoint = None

    def _spawn(self, coro: Coroutine[Any, Any, None], call: SipCall, kind: str) -> None:
        spawn_for_call(coro, call, self._tasks, kind)

    def _notify(self, name: str, *args: Any) -> None:
        for observer in self.observers:
            try:
                getattr(observer, name)(*args)
            except Exception:  # an observer's bug must not touch the call
                log.exception("call_observer_failed", observer=type(observer).__name__, method=name)

    @property
    def active_calls(self) -> int:
        return sum(1 for call in self.calls.values() if not call.ended)

    # --- incoming calls -----------------------------------------------------------------------

    def _incoming(self, account: pj.Account, prm: pj.OnIncomingCallParam) -> None:
        pj_call = PjCall(self, account, prm.callId)
        request = parse_request(prm.rdata.wholeMsg)
        source = prm.rdata.srcAddress.rsplit(":", 1)
        info = CallInfo(
            call_id=request.headers.get("call-id", f"pjsua-{prm.callId}"),
            from_uri=request.headers.get("from", ""),
            to_uri=request.headers.get("to", ""),
            source=(source[0], int(source[1]) if len(source) > 1 and source[1].isdigit() else 0),
            headers=request.headers,
        )
        call = SipCall(
            info,
            hang_up=functools.partial(self._hang_up_pj, pj_call.key),
            transfer=functools.partial(self._transfer_pj, pj_call.key),
        )
        pj_call.call = call
        self._pj_calls[pj_call.key] = pj_call
        self.calls[pj_call.key] = call
        call.log.info(
            "call_incoming", from_uri=info.from_uri, to_uri=info.to_uri, source=prm.rdata.srcAddress
        )
        self._notify("call_started", call)
        self._watch_setup(pj_call.key)
        try:
            self._take_call(pj_call, call, request)
        except Exception as exc:
            self._fail_setup(pj_call, call, exc)

    def _take_call(self, pj_call: PjCall, call: SipCall, request: SipRequest) -> None:
        """Refuse an incoming call, or bind its media and start setting it up."""
        info = call.info
        if self.handler is None:
            return self._reject(pj_call, 480, "Not taking calls")
        if self.draining:
            return self._reject(pj_call, 503, "Server draining", retry=True)
        if self.active_calls > self.config.max_calls:
            return self._reject(pj_call, 503, "Call limit reached", retry=True)
        if self.admit is not None and (refused := self.admit(info)) is not None:
            return self._refuse(pj_call, refused)
        offer, negotiated = None, None
        try:
            if not _delayed_offer(request):
                offer = sdp.parse(request.body)
                negotiated = sdp.negotiate(offer, self.config.codecs, srtp=self.config.srtp)
            elif self.config.srtp == "required":
                raise sdp.SrtpNotAcceptable("SRTP is required and the offer voicegw makes is plain RTP")
        except sdp.NotAcceptable as exc:
            return self._reject(pj_call, 488, "Not Acceptable Here", detail=str(exc))
        except sdp.SdpError as exc:
            return self._reject(pj_call, 400, "Bad SDP", detail=str(exc))
        host = self.config.rtp_host or self.config.host
        try:
            call.endpoint = self._bind_media(host, self.config.rtp_ports)
        except RtpPortsExhausted:
            return self._reject(pj_call, 503, "No media ports available", retry=True)
        if offer is None or negotiated is None:
            # A delayed offer (RFC 3261 13.2.1): pjsua asks for our offer when we first answer.
            pj_call.late_offer = True
            pj_call.make_offer(self.config.codecs, self.config.media_address, call.endpoint.local_port)
        else:
            # pjsua asks for our SDP (onCallSdpCreated) as soon as this callback returns.
            pj_call.make_answer(offer, negotiated, self.config.media_address)
        self._spawn(self._guarded_setup(pj_call, call, negotiated), call, "setup")

    def _reject(
        self,
        pj_call: PjCall,
        status: int,
        reason: str,
        *,
        retry: bool = False,
        detail: str = "",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        headers = {**(headers or {}), **({"Retry-After": str(RETRY_AFTER_S)} if retry else {})}
        assert pj_call.call is not None
        pj_call.call.log.info("call_rejected", status=status, reason=reason, detail=detail)
        pj_call.call.ending(EndReason.REJECTED, f"{status} {reason}")
        self._watchdog.settle(pj_call.key)
        self._notify("call_rejected", pj_call.call, status)
        # answer(), not hangup(): only answer() puts our headers (Retry-After) on the final response.
        pj_call.answer(call_op(status, reason, headers))

    # --- set-up failures and the watchdog -----------------------------------------------------

    async def _guarded_setup(self, pj_call: PjCall, call: SipCall, negotiated: sdp.Negotiated | None) -> None:
        try:
            await self._setup(pj_call, call, negotiated)
        except Exception as exc:
            self._fail_setup(pj_call, call, exc)

    def _fail_setup(self, pj_call: PjCall, call: SipCall, exc: Exception) -> None:
        """Setting up `call` raised: end it with 488 (SDP we cannot use) or 500 (our failure)."""
        if call.ended:
            # The caller hung up meanwhile (a failing 180 after a CANCEL): nothing left to end.
            call.log.info("call_setup_abandoned", error=repr(exc))
            return
        status, reason = (
            (488, "Not Acceptable Here") if isinstance(exc, sdp.SdpError) else (500, "Setup failed")
        )
        call.log.error("call_setup_failed", status=status, error=repr(exc), exc_info=exc)
        self._notify("call_setup_failed", call, "error")
        self._end_unanswered(pj_call, call, status, reason, detail=repr(exc))

    def _end_unanswered(self, pj_call: PjCall, call: SipCall, status: int, reason: str, detail: str) -> None:
        """Send the final response of a call being set up (a BYE if the 200 OK already went).

        Its sockets and `max_calls` slot are freed when pjsua reports the disconnect (`_forget`).
        """
        if call.ended:
            return
        if call.state in ACTIVE_STATES:
            call.ending(EndReason.FAILED, reason)
            self._hang_up_pj(pj_call.key, 200, reason)
            return
        try:
            self._reject(pj_call, status, reason, detail=detail)
        except pj.Error as exc:
            call.log.error("final_response_failed", status=status, error=exc.info())
            self._hang_up_pj(pj_call.key, status, reason)

    def _watch_setup(self, key: int) -> None:
        assert self._loop is not None
        self._watchdog.watch(key, self._loop.time())
        self._arm_watchdog()

    def _arm_watchdog(self) -> None:
        deadline = self._watchdog.next_deadline()
        if self._watchdog_timer is None and deadline is not None and self._loop is not None:
            self._watchdog_timer = self._loop.call_at(deadline, self._watchdog_fired)

    def _watchdog_fired(self) -> None:
        self._watchdog_timer = None
        if self._endpoint is None or self._loop is None:
            return  # stopped: pjsua2 is gone, and every call with it
        for key in self._watchdog.expired(self._loop.time()):
            pj_call = self._pj_calls.get(key)
            call = pj_call.call if pj_call is not None else None
            if pj_call is None or call is None or call.ended or call.state in ACTIVE_STATES:
                continue
            call.log.error("call_setup_timeout", state=call.state.value, after_s=self._watchdog.timeout)
            self._notify("call_setup_failed", call, "timeout")
            self._end_unanswered(pj_call, call, 500, "Setup timed out", detail="watchdog")
        self._arm_watchdog()

    def _refuse(self, pj_call: PjCall, refused: Rejection) -> None:
        self._reject(
            pj_call, refused.status, refused.reason, retry=refused.retry,
            detail=refused.detail, headers=refused.headers,
        )  # fmt: skip

    async def _setup(self, pj_call: PjCall, call: SipCall, negotiated: sdp.Negotiated | None) -> None:
        """Ring, then answer; with no `negotiated` (a delayed offer) media waits for the ACK."""
        assert call.endpoint is not None
        await call.endpoint.connect()
        if call.ended:  # CANCEL while we were setting up
            await call.close_media()
            return
        pj_call.answer(call_op(180))
        call.move(CallTrigger.RING)
        loop = asyncio.get_running_loop()
        answer_at = loop.time() + self.config.answer_delay
        call.sample_rate = self._sample_rate(negotiated)
        if self.ready is not None:
            refused = await self.ready(call)
            if call.ended:
                return
            if refused is not None:
                return self._refuse(pj_call, refused)
        if (delay := answer_at - loop.time()) > 0:
            await asyncio.sleep(delay)
            if call.ended:
                return
        if negotiated is not None:
            self._start_media(call, negotiated)
        pj_call.answer(call_op(200))
        # The final response is out: if no ACK comes, pjsip ends the call after 64*T1.
        self._watchdog.settle(pj_call.key)
        if negotiated is not None:
            self._answered(call, negotiated)

    def _answered(self, call: SipCall, negotiated: sdp.Negotiated) -> None:
        """An incoming call's media runs: hand the call to the handler."""
        assert call.endpoint is not None
        call.move(CallTrigger.ANSWER)
        call.log.info(
            "call_answered",
            codec=negotiated.codec.encoding,
            rtp_port=call.endpoint.local_port,
            srtp=negotiated.local_crypto.suite if negotiated.local_crypto else None,
        )
        self._notify("call_answered", call)
        self._spawn(self._run_handler(call), call, "call")

    def _late_answer(self, pj_call: PjCall, call: SipCall) -> None:
        """The ACK to the 200 OK that carried our offer came: start media from its answer."""
        pj_call.late_offer = False
        negotiated = self._take_answer(pj_call, call, "the ACK")
        if negotiated is None:
            self._notify("call_setup_failed", call, "error")
            return
        self._start_media(call, negotiated)
        self._answered(call, negotiated)

    def _start_media(self, call: SipCall, negotiated: sdp.Negotiated) -> None:
        """Start the call's RTP with what offer and answer settled (either side's)."""
        assert call.endpoint is not None
        codec = codec_for(negotiated.codec.encoding)
        call.negotiated = negotiated
        call.sample_rate = self._sample_rate(negotiated)
        call.endpoint.start(
            codec=codec.name,
            payload_type=negotiated.codec.payload_type,
            remote=(negotiated.remote_address, negotiated.remote_port),
            remote_rtcp=(negotiated.remote_rtcp_address, negotiated.remote_rtcp_port),
            telephone_event_pt=negotiated.telephone_event.payload_type
            if negotiated.telephone_event
            else None,
            sample_rate=call.sample_rate,
            ptime_ms=negotiated.ptime,
            media_timeout=self.config.media_timeout,
            srtp=negotiated.srtp,
        )
        call.watch_media()

    def _sample_rate(self, negotiated: sdp.Negotiated | None) -> int:
        """The PCM rate of the call's handler: the configured one, else the codec's own (with no
        codec yet, a delayed offer, G.711's 8 kHz until the ACK's answer settles it)."""
        if self.config.sample_rate:
            return self.config.sample_rate
        return codec_for(negotiated.codec.encoding).sample_rate if negotiated else DELAYED_OFFER_RATE

    async def _run_handler(self, call: SipCall) -> None:
        assert self.handler is not None
        await run_handler(call, self.handler)

    # --- outgoing calls -----------------------------------------------------------------------

    async def dial(
        self,
        uri: str,
        *,
        account: str | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = DIAL_TIMEOUT_S,  # noqa: ASYNC109 (how long it may ring: a SIP setting)
    ) -> SipCall:
        """Call `uri`; return the call once answered, its media flowing (hang it up when done).

        `account` names one of `SipConfig.accounts` (default: the first one, else the local
        account, which has no credentials); `headers` go on the INVITE. Raises a `CallFailed`
        with the final SIP status: `Busy`, `NoAnswer` (no answer within `timeout` seconds: we
        CANCEL) or `CallRejected`; `RtpPortsExhausted` when no media port is free.
        """
        if self._endpoint is None or self._loop is None:
            raise RuntimeError("the SIP user agent is not started")
        name = account or (self.config.accounts[0].name if self.config.accounts else LOCAL_ACCOUNT)
        if name not in self._accounts:
            raise ValueError(f"unknown SIP account {name!r} (known: {', '.join(self._accounts)})")
        endpoint = self._bind_endpoint(self.config.rtp_host or self.config.host, self.config.rtp_ports)
        try:
            await endpoint.connect()
            call, dialled = self._place_call(uri, self._accounts[name], endpoint, headers or {})
        except BaseException:
            await endpoint.close()
            raise
        call.log.info("call_dialling", to_uri=uri, account=name, rtp_port=endpoint.local_port)
        self._notify("call_started", call)
        try:
            return await asyncio.wait_for(asyncio.shield(dialled), timeout)
        except TimeoutError:
            await self._abandon(call, dialled, EndReason.FAILED, "no answer")
            raise NoAnswer(uri, 487, f"no answer within {timeout:g} s (cancelled)") from None
        except asyncio.CancelledError:
            await self._abandon(call, dialled, EndReason.CLOSED, "dialling cancelled")
            raise

    def _place_call(
        self, uri: str, pj_account: PjAccount, endpoint: RtpEndpoint, headers: dict[str, str]
    ) -> tuple[SipCall, asyncio.Future[SipCall]]:
        """Send the INVITE with our offer; the call is registered, its answer still to come.

        pjsua2's Call lives only in the registry, never in a frame that an exception's traceback
        could keep alive: a Call destroyed after libDestroy aborts the process.
        """
        assert self._loop is not None
        pj_call = PjCall(self, pj_account, pj.PJSUA_INVALID_ID)
        pj_call.make_offer(self.config.codecs, self.config.media_address, endpoint.local_port)
        try:
            pj_call.makeCall(uri, call_op(headers=headers))
        except pj.Error as exc:
            reason = exc.reason
            del pj_call  # never called: nothing to hang up, and gone before the traceback exists
            raise call_failed(uri, 0, f"cannot dial: {reason}") from None
        info = CallInfo(
            call_id=pj_call.getInfo().callIdString,
            from_uri=pj_account.getInfo().uri,
            to_uri=uri,
            source=("", 0),
            headers={key.lower(): value for key, value in headers.items()},
            direction="outbound",
        )
        call = SipCall(
            info,
            hang_up=functools.partial(self._hang_up_pj, pj_call.key),
            transfer=functools.partial(self._transfer_pj, pj_call.key),
        )
        call.endpoint = endpoint
        pj_call.call = call
        dialled = pj_call.dialled = self._loop.create_future()
        self._pj_calls[pj_call.key] = pj_call
        self.calls[pj_call.key] = call
        return call, dialled

    async def _abandon(
        self, call: SipCall, dialled: asyncio.Future[SipCall], reason: EndReason, detail: str
    ) -> None:
        """Give up on a call we dialled: CANCEL it (or BYE, if the answer just came in)."""
        dialled.cancel()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(call.hang_up(reason, detail), CANCEL_WAIT_S)

    def _dial_progress(self, pj_call: PjCall, call: SipCall, info: pj.CallInfo) -> None:
        """A call we dialled changed state before it was answered."""
        assert pj_call.dialled is not None
        if info.state == pj.PJSIP_INV_STATE_EARLY:
            call.move(CallTrigger.RING, f"{info.lastStatusCode} {info.lastReason}")
        elif info.state == pj.PJSIP_INV_STATE_CONFIRMED:
            negotiated = self._take_answer(pj_call, call, "the 200 OK")
            if negotiated is None:
                # Our BYE may have disconnected the call from inside _take_answer already.
                if not pj_call.dialled.done():
                    pj_call.dialled.set_exception(call_failed(call.info.to_uri, 0, call.end_detail))
                return
            self._start_media(call, negotiated)
            call.move(CallTrigger.ANSWER)
            assert call.endpoint is not None
            call.log.info("call_answered", codec=negotiated.codec.encoding, rtp_port=call.endpoint.local_port)
            self._notify("call_answered", call)
            pj_call.dialled.set_result(call)
        elif info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            status, reason = int(info.lastStatusCode), str(info.lastReason)
            if status < 300:  # not refused: we ended it ourselves (an unusable SDP answer)
                status, reason = 0, call.end_detail or reason
            call.log.info("call_failed", status=status, reason=reason)
            pj_call.dialled.set_exception(call_failed(call.info.to_uri, status, reason))

    def _take_answer(self, pj_call: PjCall, call: SipCall, carrier: str) -> sdp.Negotiated | None:
        """What the far end's answer to our offer settled, or None: then the call is ended (BYE)."""
        try:
            if not pj_call.remote_answer.strip():
                raise sdp.SdpError(f"{carrier} has no SDP answer to our offer")
            return sdp.accept_answer(sdp.parse(pj_call.remote_answer), self.config.codecs)
        except sdp.SdpError as exc:
            call.ending(EndReason.FAILED, f"unusable SDP answer: {exc}")
            call.log.warning("answer_refused", reason=str(exc))
            self._hang_up_pj(pj_call.key, 200, "")
            return None

    # --- pjsua2 callbacks ---------------------------------------------------------------------

    def _sdp_created(self, pj_call: PjCall, prm: pj.OnCallSdpCreatedParam) -> None:
        if not pj_call.local_sdp:
            return
        # Dialling out, this runs inside makeCall(), before pj_call.call exists: the offer stands.
        call = pj_call.call
        if (
            call is not None
            and prm.remSdp.wholeSdp
            and call.endpoint is not None
            and call.state in ACTIVE_STATES
        ):
            self._reoffer(pj_call, call, prm.remSdp.wholeSdp)
        prm.sdp.wholeSdp = pj_call.local_sdp

    def _renegotiate(self, call: SipCall, remote: str) -> tuple[sdp.SessionDescription, sdp.Negotiated]:
        """A re-INVITE's offer against the call's codec and SRTP suite (neither changes mid-call)."""
        offer = sdp.parse(remote)
        current = call.negotiated
        if current is None:
            return offer, sdp.negotiate(offer, srtp=self.config.srtp)
        ours = current.local_crypto
        negotiated = sdp.negotiate(
            offer,
            (current.codec.encoding,),
            srtp="off" if ours is None else "required",
            suites=(ours.suite,) if ours else (),
            keep=ours,
        )
        return offer, negotiated

    def _check_reoffer(self, pj_call: PjCall, remote: str) -> int:
        """0 to accept a re-INVITE's offer, or 488 when it no longer offers our codec."""
        call = pj_call.call
        if call is None or not remote:
            return 0
        try:
            self._renegotiate(call, remote)
        except sdp.SdpError as exc:
            call.log.warning("reinvite_rejected", status=488, reason=str(exc))
            return 488
        return 0

    def _reoffer(self, pj_call: PjCall, call: SipCall, remote: str) -> None:
        """A re-INVITE: hold, resume, or the far end moved its media."""
        assert call.endpoint is not None
        try:
            offer, negotiated = self._renegotiate(call, remote)
        except sdp.SdpError as exc:  # refused in onCallRxReinvite; an UPDATE's offer lands here
            call.log.warning("reoffer_ignored", reason=str(exc))
            return
        pj_call.make_answer(offer, negotiated, self.config.media_address)
        call.endpoint.update_remote(
            (negotiated.remote_address, negotiated.remote_port),
            (negotiated.remote_rtcp_address, negotiated.remote_rtcp_port),
        )
        if negotiated.srtp is not None:
            call.endpoint.rekey_srtp(negotiated.srtp.remote_key)
        call.endpoint.set_hold(negotiated.on_hold)
        if negotiated.on_hold:
            call.move(CallTrigger.HOLD, "held by the far end")
        elif call.state is CallState.HELD:
            call.move(CallTrigger.RESUME, "resumed by the far end")
        call.negotiated = negotiated

    def _call_state(self, pj_call: PjCall) -> None:
        call = pj_call.call
        if call is None:
            return
        info = pj_call.getInfo()
        if pj_call.dialled is not None and not pj_call.dialled.done():
            self._dial_progress(pj_call, call, info)
        elif pj_call.late_offer and info.state == pj.PJSIP_INV_STATE_CONFIRMED and not call.ended:
            self._late_answer(pj_call, call)
        if info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            end_reason, detail = EndReason.FAILED, f"{info.lastStatusCode} {info.lastReason}"
            if call.state in ACTIVE_STATES:
                end_reason = EndReason.CALLER_HUNG_UP
                detail = "caller hung up" if call.info.direction == "inbound" else "far end hung up"
            elif info.lastStatusCode == 487:
                end_reason, detail = EndReason.CALLER_CANCELLED, "caller cancelled"
            call.hangup_reason = pj_call.hangup_reason  # before the move: the call's record reads it
            # A reason of ours (a hang-up, a rejection) was recorded before the call ended: it wins.
            call.move(CallTrigger.DISCONNECT, call.end_detail or detail, end_reason)
            remote = {"remote_reason": call.hangup_reason.header} if call.hangup_reason else {}
            call.log.info(
                "call_ended",
                reason=call.end_detail,
                end_reason=call.end_reason,
                status=info.lastStatusCode,
                **remote,
            )
            self._spawn(self._forget(pj_call.key, call, info.lastStatusCode), call, "cleanup")

    async def _forget(self, key: int, call: SipCall, status: int) -> None:
        await call.close_media()
        self._notify("call_ended", call, status)
        # Drop pjsua2's Call only after its DISCONNECTED callback has returned.
        self._pj_calls.pop(key, None)
        self.calls.pop(key, None)

    def _hang_up_pj(self, key: int, status: int, reason: str) -> None:
        pj_call = self._pj_calls.get(key)
        if pj_call is None:
            return
        end_reason = pj_call.call.end_reason if pj_call.call is not None else None
        header = REASON_HEADERS.get(end_reason) if end_reason is not None else None
        headers = {"Reason": header} if header else None
        with contextlib.suppress(pj.Error):
            pj_call.hangup(call_op(status, reason if status >= 300 else "", headers))

    def _transfer_pj(self, key: int, target: str) -> None:
        pj_call = self._pj_calls.get(key)
        if pj_call is None or pj_call.call is None:
            return
        try:
            pj_call.xfer(target, call_op())
        except pj.Error as exc:
            pj_call.call.transfer_status(500, f"REFER failed: {exc.info()}", True)
