"""`voicegw call`: dial one SIP URI and run an agent on the call once it is answered.

The same parts as `voicegw serve` (media clock, SIP user agent, `AgentCalls`: the routed agent,
the configured model, the no-input and call-length supervisor), for one call placed instead of
many answered; incoming calls are declined meanwhile, and every request passes the same
signalling policy. SIGTERM or SIGINT cancels the call: a CANCEL while it rings, a BYE once answered.
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass

import structlog

from voicegw.contracts.transport import EndReason
from voicegw.rtp.clock import MediaClock
from voicegw.server.admission import access_policy
from voicegw.server.amd import AmdOptions, AmdOutcome, run_screened
from voicegw.server.app import HANDLED_SIGNALS, AgentCalls
from voicegw.server.call_reports import CallReports
from voicegw.server.config import ServerConfig
from voicegw.server.observe import CallWatch
from voicegw.sip.account import SipAccount
from voicegw.sip.ua import DIAL_TIMEOUT_S, SipConfig, SipUserAgent

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class CallResult:
    """How a dialled call went."""

    end_reason: EndReason | None
    amd: AmdOutcome | None = None
    """Who answered and what was done about it, when the call was placed with `AmdOptions`."""


def with_caller_id(sip: SipConfig, from_uri: str, account: str | None) -> SipConfig:
    """`sip` with `from_uri` as the identity of the account that dials (the From of the INVITE)."""
    if not sip.accounts:
        return dataclasses.replace(sip, accounts=(SipAccount(uri=from_uri),))
    name = account or sip.accounts[0].name
    accounts = tuple(dataclasses.replace(a, uri=from_uri) if a.name == name else a for a in sip.accounts)
    return dataclasses.replace(sip, accounts=accounts)


async def call_out(
    config: ServerConfig,
    uri: str,
    *,
    account: str | None = None,
    headers: dict[str, str] | None = None,
    ring_timeout: float = DIAL_TIMEOUT_S,
    amd: AmdOptions | None = None,
) -> CallResult:
    """Dial `uri`, run the configured agent on the answered call until it ends; how it went.

    With `amd`, who answered is detected first: a machine gets a voicemail or a hang-up instead
    of the conversation (`voicegw.server.amd`).

    Raises `CallFailed` (`Busy`, `NoAnswer`, `CallRejected`) when nobody takes the call, and,
    before dialling, `ConfigError`/`ModelUnavailable` for a bad agent or model, `SipStartError`.
    """
    reports = CallReports(cdr_file=config.cdr_file, webhooks=config.webhooks)
    handler = AgentCalls(config, CallWatch(records=reports.records))
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    assert main is not None
    for sig in HANDLED_SIGNALS:
        loop.add_signal_handler(sig, main.cancel)
    clock = MediaClock()
    await clock.start()
    ua = SipUserAgent(config.sip, clock, guard=access_policy(config))
    ua.observers.append(reports.records)
    reports.start()
    try:
        await ua.start()
        call = await ua.dial(uri, account=account, headers=headers, timeout=ring_timeout)
        outcome = None
        try:
            if amd is None:
                await handler(call)
            else:
                outcome = await run_screened(call, handler, amd)
        finally:
            if not call.ended:
                await call.hang_up(EndReason.HANDLER_FINISHED, "call finished")
        log.info("call_completed", call_id=call.call_id, end_reason=call.end_reason, reason=call.end_detail)
        return CallResult(call.end_reason, outcome)
    finally:
        await ua.stop()
        await reports.close()
        await clock.stop()
        for sig in HANDLED_SIGNALS:
            loop.remove_signal_handler(sig)
