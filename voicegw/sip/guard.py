"""What a request guard sees of an incoming SIP request before pjsua creates any state, sans-I/O.

The native hook hands every request to a `RequestGuard` first; a `Refusal` is answered statelessly
and the request goes no further, None lets pjsua handle it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class IncomingRequest:
    """A request as received, before any parsing by pjsip's higher layers."""

    method: str
    """"INVITE", "OPTIONS", ... as on the wire (upper-case)."""
    source: tuple[str, int]
    transport: str
    """"udp" | "tcp" | "tls"."""
    in_dialog: bool
    """The To header has a tag."""
    raw: bytes
    """The whole message as received."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """The stateless response that ends a refused request."""

    status: int
    reason: str
    headers: tuple[tuple[str, str], ...] = ()


RequestGuard = Callable[[IncomingRequest, float], Refusal | None]
"""(request, now) -> None to let it through, or the response to refuse it with."""
