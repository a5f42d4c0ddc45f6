"""What a request guard sees and answers: sans-I/O types, no pjsua2.

A `RequestGuard` is shown every SIP request before pjsua creates any state for it (no
transaction, dialog or call) and either lets it through (None) or refuses it with a `Refusal`,
which is answered statelessly, back to the request's source over its own transport, and leaves
nothing behind. `voicegw.sip.pjguard` connects a guard to pjsip; `SipUserAgent(guard=...)`
installs it.

ACK never reaches a guard (it is never answered, and pjsip keeps nothing for a stray one).
In-dialog requests (BYE, re-INVITE, INFO, ...) do, with `in_dialog` set.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class IncomingRequest:
    """One SIP request as it arrived, before pjsua has seen it."""

    method: str
    """As on the wire (upper-case): "INVITE", "OPTIONS", ..."""
    source: tuple[str, int]
    transport: str
    """One of "udp", "tcp", "tls"."""
    in_dialog: bool
    """The To header has a tag."""
    raw: bytes
    """The whole message as received."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """A final response (300-699) sent instead of handing the request to pjsua."""

    status: int
    reason: str
    headers: tuple[tuple[str, str], ...] = ()
    """Extra header lines (Retry-After, Allow, WWW-Authenticate, ...)."""


RequestGuard = Callable[[IncomingRequest, float], Refusal | None]
"""(request, now) -> None to let it through, or the `Refusal` to answer; `now` is the event
loop's clock (`loop.time()`)."""
