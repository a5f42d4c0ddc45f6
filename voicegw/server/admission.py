"""Who may call: the source addresses a server takes INVITEs from, and callers who authenticate.

Safe by default: with no allow-list, only loopback and private (LAN) addresses may call, since
an open SIP port on the internet is found within hours by toll-fraud scanners. A profile for a
provider (``sip_profiles/twilio.toml``) lists the provider's signalling ranges instead; a PBX or
softphone elsewhere authenticates with SIP digest (``[access.digest]``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from voicegw.contracts.transport import CallInfo
from voicegw.server.config import ServerConfig
from voicegw.sip.call import Rejection
from voicegw.sip.digest import BadCredentials, DigestVerifier, Unauthenticated

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


class SourcePolicy:
    """Allows calls from the given networks (default: loopback and private ones)."""

    def __init__(self, allow: Iterable[str] | None = None) -> None:
        """`allow`: CIDR strings (``"54.172.60.0/30"``) or addresses; raises `ValueError` on a bad one."""
        self.networks = (
            PRIVATE_NETWORKS
            if allow is None
            else tuple(ipaddress.ip_network(net, strict=False) for net in allow)
        )

    def allows(self, host: str) -> bool:
        """Whether `host` is in an allowed network (False for a source that is not an address)."""
        try:
            address = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            return False
        return any(address in network for network in self.networks)


class AccessPolicy:
    """A call is taken from an allowed source, or from anywhere with valid digest credentials."""

    def __init__(self, sources: SourcePolicy, digest: DigestVerifier | None = None) -> None:
        self.sources = sources
        self.digest = digest

    @classmethod
    def configured(cls, config: ServerConfig) -> AccessPolicy:
        """The policy of ``[access]``: its allow-list and, if given, its digest users."""
        settings = config.digest
        digest = None
        if settings is not None:
            secret = settings.nonce_secret.encode() if settings.nonce_secret is not None else None
            digest = DigestVerifier(settings.realm, settings.users, secret=secret)
        return cls(SourcePolicy(config.allow), digest)

    def check(self, info: CallInfo) -> Rejection | None:
        """None when the call may go on; else the response: 401 with a challenge, or 403."""
        if self.sources.allows(info.source[0]):
            return None
        if self.digest is None:
            return Rejection(403, "Forbidden", detail=f"source {info.source[0]} not allowed")
        try:
            self.digest.verify("INVITE", info.headers.get("authorization"))
        except Unauthenticated as exc:
            challenge = {"WWW-Authenticate": self.digest.challenge(stale=exc.stale)}
            return Rejection(401, "Unauthorized", headers=challenge, detail=str(exc))
        except BadCredentials as exc:
            return Rejection(403, "Forbidden", detail=str(exc))
        return None
