"""The signalling-plane policy: which requests, from whom, how often; a `RequestGuard`, sans-I/O.

Every incoming request passes here before pjsua creates any state for it; a refusal is answered
statelessly. In order:

- ACK is never refused: it gets no response, and pjsip drops one that matches nothing.
- A source off the allow-list has a request budget (`rate` a second after a `burst`, per address,
  per /64 for IPv6); past it, 503 with Retry-After.
- Methods voicegw does not serve get 405 with ``Allow`` (SUBSCRIBE, REGISTER, MESSAGE, PUBLISH,
  REFER: so nothing ever makes voicegw send a NOTIFY), unknown ones 501, and the methods that
  only exist in a dialog get 481 outside one.
- The allow-list's sources may send what voicegw serves. OPTIONS is answered to anyone: it is a
  probe (dispatchers, health checks), stateless, and says no more than a 403 would. Requests
  inside a dialog, and CANCEL, go on from anyone: the dialog (its Call-ID and tags) or the INVITE
  transaction is what authorises them (a digest caller's BYE, the far end of a call we dialled),
  and pjsip answers one that matches none with a stateless 481.
- Anyone else's INVITE must carry digest credentials (401 with a challenge, 403 when wrong) if
  ``[access.digest]`` is set; without it, 403.
- Wrong passwords lock out the source and the user: after `max_failures` in a row, 403 without
  checking for a back-off period that doubles each time. The lockout answers exactly as a wrong
  password does, so a guesser cannot tell when its guesses start counting again.
"""

from __future__ import annotations

import functools
import ipaddress
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

import structlog

from voicegw.sip.digest import BadCredentials, DigestResponse, DigestVerifier, Unauthenticated
from voicegw.sip.guard import IncomingRequest, Refusal
from voicegw.sip.message import parse_request
from voicegw.sip.ratelimit import Lockout, RateLimiter

log = structlog.get_logger(__name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

PRIVATE_NETWORKS: tuple[Network, ...] = tuple(
    ipaddress.ip_network(net)
    for net in (
        "127.0.0.0/8",
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "169.254.0.0/16",
        "100.64.0.0/10",  # carrier-grade NAT: a LAN behind the ISP's NAT
        "::1/128",
        "fc00::/7",
        "fe80::/10",
    )
)

OUT_OF_DIALOG = frozenset({"INVITE", "OPTIONS", "ACK", "CANCEL"})
"""What voicegw serves outside a dialog: calls, probes, and the INVITE's own ACK and CANCEL."""
DIALOG_ONLY = frozenset({"BYE", "UPDATE", "INFO", "PRACK", "NOTIFY"})
"""What pjsua needs inside a call (NOTIFY: the progress of a transfer we asked for)."""
NOT_SERVED = frozenset({"SUBSCRIBE", "REGISTER", "MESSAGE", "PUBLISH", "REFER"})
"""Known SIP methods voicegw never serves, in a dialog or outside: 405."""
SERVED = OUT_OF_DIALOG | DIALOG_ONLY
KNOWN = SERVED | NOT_SERVED
ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, PRACK, NOTIFY"

FORBIDDEN = Refusal(403, "Forbidden")
NO_DIALOG = Refusal(481, "Call/Transaction Does Not Exist")
NOT_ALLOWED = Refusal(405, "Method Not Allowed", (("Allow", ALLOW),))
NOT_IMPLEMENTED = Refusal(501, "Not Implemented", (("Allow", ALLOW),))
IPV6_SOURCE_PREFIX = 64
"""One IPv6 host usually owns a whole /64: budgets per address would be no budget at all."""


@dataclass(frozen=True, slots=True)
class AccessLimits:
    """How much a source off the allow-list may send, and how many wrong passwords it may try."""

    rate: float = 10.0
    """Requests a second, per source, after the burst."""
    burst: int = 50
    """Requests a source may send at once."""
    max_failures: int = 5
    """Wrong digest answers in a row (per source and per user) before a lockout."""
    lockout: float = 60.0
    """Seconds of the first lockout; each one that follows lasts twice as long."""
    max_lockout: float = 3600.0
    """The longest lockout."""


class SourcePolicy:
    """Allows the given networks (default: loopback and private ones)."""

    def __init__(self, allow: Iterable[str] | None = None) -> None:
        """`allow`: CIDR strings (``"54.172.60.0/30"``) or addresses; raises `ValueError` on a bad one."""
        self.networks = (
            PRIVATE_NETWORKS
            if allow is None
            else tuple(ipaddress.ip_network(net, strict=False) for net in allow)
        )

    def allows(self, host: str) -> bool:
        """Whether `host` is in an allowed network (False for a source that is not an address)."""
        address = _address(host)
        return address is not None and any(address in network for network in self.networks)


def source_key(host: str) -> str:
    """What a source's budget is kept under: its address, or its /64 for IPv6."""
    address = _address(host)
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((address, IPV6_SOURCE_PREFIX), strict=False))
    return str(address) if address is not None else host


class SignallingPolicy:
    """A `RequestGuard`: call it with each incoming request and the time (seconds, monotonic)."""

    def __init__(
        self,
        sources: SourcePolicy,
        digest: DigestVerifier | None = None,
        limits: AccessLimits = AccessLimits(),
    ) -> None:
        self.sources = sources
        self.digest = digest
        self.limits = limits
        self.rate = RateLimiter(limits.rate, limits.burst)
        lockout = functools.partial(
            Lockout, limits.max_failures, limits.lockout, max_period=limits.max_lockout
        )
        self.source_lockout = lockout()
        # A table of its own, as large as the user list: failures from countless (spoofed)
        # sources cannot push a locked-out user out of it.
        self.user_lockout = lockout(capacity=max(1, len(digest.users) if digest else 1))
        self.refused: Counter[tuple[str, int]] = Counter()
        """Refusals by (method, status); methods outside SIP's known ones count as "other"."""

    def __call__(self, request: IncomingRequest, now: float) -> Refusal | None:
        """None to let `request` through, or the response that refuses it."""
        refusal = self._decide(request, now)
        if refusal is not None:
            method = request.method if request.method in KNOWN else "other"
            self.refused[method, refusal.status] += 1
        return refusal

    def _decide(self, request: IncomingRequest, now: float) -> Refusal | None:
        method, host = request.method, request.source[0]
        if method == "ACK":
            return None
        trusted = self.sources.allows(host)
        if not trusted and (wait := self.rate.take(source_key(host), now)):
            return Refusal(503, "Service Unavailable", (("Retry-After", str(math.ceil(wait))),))
        if method in NOT_SERVED:
            return NOT_ALLOWED
        if method not in SERVED:
            return NOT_IMPLEMENTED
        if method in DIALOG_ONLY and not request.in_dialog:
            return NO_DIALOG
        if trusted or method == "OPTIONS" or request.in_dialog or method == "CANCEL":
            return None
        if self.digest is None:
            return FORBIDDEN
        return self._authenticate(request, now)

    def _authenticate(self, request: IncomingRequest, now: float) -> Refusal | None:
        """An INVITE from off the allow-list: digest credentials, under the lockouts."""
        assert self.digest is not None
        source = source_key(request.source[0])
        if self.source_lockout.locked(source, now):
            return FORBIDDEN
        parsed = parse_request(request.raw.decode("utf-8", errors="replace"))
        try:
            answer = DigestResponse.parse(parsed.headers.get("authorization") or "")
        except Unauthenticated as exc:
            return self._challenge(request, exc)
        # Only known users get a lockout of their own: unknown names would only fill the table.
        user = answer.username if answer.username in self.digest.users else None
        if user is not None and self.user_lockout.locked(user, now):
            return FORBIDDEN
        try:
            branch = _branch(parsed.headers.get("via", "").split(",")[0])
            transaction = f"{parsed.headers.get('call-id', '')} {branch}" if branch else ""
            self.digest.check(request.method, parsed.uri, answer, transaction=transaction)
        except Unauthenticated as exc:
            return self._challenge(request, exc)
        except BadCredentials as exc:
            log.info("digest_failed", source=request.source[0], detail=str(exc))
            self._failed(self.source_lockout, source, now)
            if user is not None:
                self._failed(self.user_lockout, user, now)
            return FORBIDDEN
        self.source_lockout.succeeded(source)
        if user is not None:
            self.user_lockout.succeeded(user)
        return None

    def _challenge(self, request: IncomingRequest, exc: Unauthenticated) -> Refusal:
        assert self.digest is not None
        log.debug("digest_challenge", source=request.source[0], detail=str(exc))
        challenge = self.digest.challenge(stale=exc.stale)
        return Refusal(401, "Unauthorized", (("WWW-Authenticate", challenge),))

    @staticmethod
    def _failed(lockout: Lockout, key: str, now: float) -> None:
        lockout.failed(key, now)
        if wait := lockout.locked(key, now):
            log.warning("digest_lockout", key=key, seconds=round(wait))


def _branch(via: str) -> str:
    """The branch parameter of one Via header value ("" without one)."""
    for param in via.split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "branch":
            return value.strip()
    return ""


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The source's address; an IPv4 one for an IPv4-mapped IPv6 address (a dual-stack socket)."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address
