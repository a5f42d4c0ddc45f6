"""Who may call: the source addresses a server takes INVITEs from.

Safe by default: with no allow-list, only loopback and private (LAN) addresses may call, since
an open SIP port on the internet is found within hours by toll-fraud scanners. A profile for a
provider (``sip_profiles/twilio.toml``) lists the provider's signalling ranges instead.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from voicegw.sip.call import Rejection

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

FORBIDDEN = Rejection(403, "Forbidden")


class SourcePolicy:
    """Allows calls from the given networks (default: loopback and private ones)."""

    def __init__(self, allow: Iterable[str] | None = None) -> None:
        """`allow`: CIDR strings (``"54.172.60.0/30"``) or addresses; raises `ValueError` on a bad one."""
        self.networks = (
            PRIVATE_NETWORKS
            if allow is None
            else tuple(ipaddress.ip_network(net, strict=False) for net in allow)
        )

    def check(self, host: str) -> Rejection | None:
        """None when `host` may call; a 403 otherwise (also for a source that is not an address)."""
        try:
            address = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            return FORBIDDEN
        return None if any(address in network for network in self.networks) else FORBIDDEN
