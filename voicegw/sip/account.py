"""SIP accounts: who voicegw is toward a PBX or trunk (digest credentials, proxy, registration).

An account is plain configuration (`SipAccount`); `account_config` turns it into pjsua2's
`AccountConfig`, and `Registration` keeps what the registrar last said, for logs and tests.
pjsua2 does the protocol work: it answers 401/407 challenges with the credentials (on INVITE and
REGISTER alike), sends requests through the outbound proxy (a Route header, loose routing), and
refreshes the registration before it expires.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pjsua2 as pj
import structlog

log = structlog.get_logger(__name__)

DEFAULT_EXPIRES_S = 300
REGISTER_RETRY_S = 30
"""After a failed registration pjsua tries again this often."""
REFRESH_BEFORE_S = 5
"""pjsua re-registers this long before the registration expires."""
UNREGISTER_WAIT_MS = 1000
"""At shutdown, how long pjsua waits for the registrar to confirm the un-REGISTER."""


@dataclass(frozen=True, slots=True)
class SipAccount:
    """One SIP identity: a PBX extension or a trunk."""

    name: str = "default"
    """How `dial(account=...)`, `voicegw call --account` and logs refer to it."""

    uri: str = ""
    """Our address of record (From, and what we register): ``sip:1001@pbx.example.com``."""

    registrar: str | None = None
    """``sip:pbx.example.com`` (add ``;transport=tcp`` for TCP); needed when `register` is on."""

    proxy: tuple[str, ...] = ()
    """Outbound proxies: every request goes there first, with a Route header (``sip:proxy;lr``)."""

    username: str | None = None
    password: str | None = None
    realm: str = "*"
    """The realm the credentials are for; ``*``: whatever realm challenges."""

    register: bool = False
    expires: int = DEFAULT_EXPIRES_S
    """Registration lifetime asked for, in seconds; refreshed `REFRESH_BEFORE_S` before it ends."""

    @property
    def has_credentials(self) -> bool:
        return self.username is not None


def account_config(account: SipAccount, *, default_uri: str) -> pj.AccountConfig:
    """pjsua2's configuration for `account` (media through voicegw's own RTP)."""
    config = pj.AccountConfig()
    config.idUri = account.uri or default_uri
    # SWIG hands out copies of nested structs: fill each one, then assign it back.
    media = config.mediaConfig
    media.useLoopMedTp = True
    # SRTP is ours too: pjsua only has to let SAVP and a=crypto offers through to our answer
    # (its own SRTP runs on the loop transport and never touches the network).
    media.srtpUse = pj.PJMEDIA_SRTP_OPTIONAL
    media.srtpSecureSignaling = 0
    config.mediaConfig = media
    reg = config.regConfig
    if account.registrar:
        reg.registrarUri = account.registrar
    reg.registerOnAdd = account.register
    reg.timeoutSec = account.expires
    reg.retryIntervalSec = REGISTER_RETRY_S
    reg.delayBeforeRefreshSec = REFRESH_BEFORE_S
    reg.unregWaitMsec = UNREGISTER_WAIT_MS
    config.regConfig = reg
    sip = config.sipConfig
    proxies = pj.StringVector()
    for proxy in account.proxy:
        proxies.append(proxy)
    sip.proxies = proxies
    if account.username is not None:
        creds = pj.AuthCredInfoVector()
        creds.append(pj.AuthCredInfo("digest", account.realm, account.username, 0, account.password or ""))
        sip.authCreds = creds
    config.sipConfig = sip
    return config


@dataclass
class Registration:
    """What the registrar said last for one account."""

    account: str
    registrar: str
    status: int = 0
    reason: str = ""
    expires: int = 0
    """Seconds the registrar granted (0: not registered)."""

    successes: int = 0
    """Registrations (first and refreshes) the registrar accepted."""

    changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def registered(self) -> bool:
        return 200 <= self.status < 300 and self.expires > 0

    def update(self, status: int, reason: str, expires: int) -> None:
        """Record a REGISTER outcome (pjsua2's `onRegState`) and log it."""
        self.status, self.reason, self.expires = status, reason, expires
        fields = {"account": self.account, "registrar": self.registrar, "status": status, "reason": reason}
        if 200 <= status < 300:
            self.successes += expires > 0
            log.info("sip_registration", expires=expires, registered=expires > 0, **fields)
        else:
            log.error("sip_registration_failed", retry_s=REGISTER_RETRY_S, **fields)
        # Wake the waiters of this change; later ones wait for the next.
        self.changed.set()
        self.changed = asyncio.Event()

    async def wait_successes(self, count: int = 1) -> None:
        """Wait until the registrar has accepted `count` registrations in all (refreshes count)."""
        while self.successes < count:
            await self.changed.wait()
