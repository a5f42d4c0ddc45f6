"""What signalling needs of a call's media, whichever process runs it.

`RtpEndpoint` is the media itself, in this process. A server that runs calls in worker processes
gives the user agent another `CallMedia` (`MediaFactory`): it binds the sockets here, because the
SDP answer names their port, and forwards every change to the worker that runs the media.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, NotRequired, Protocol, TypedDict

from typing_extensions import Unpack

from voicegw.rtp.events import Address, EndpointEvent
from voicegw.rtp.srtp import SrtpKeys


class MediaStart(TypedDict):
    """What offer and answer settled, to start a call's media with (`RtpEndpoint.start`)."""

    codec: str
    payload_type: int
    remote: Address
    sample_rate: int
    telephone_event_pt: NotRequired[int | None]
    remote_rtcp: NotRequired[Address | None]
    ptime_ms: NotRequired[int]
    media_timeout: NotRequired[float]
    srtp: NotRequired[SrtpKeys | None]


class CallMedia(Protocol):
    """One call's RTP and RTCP, as the SIP user agent drives it (see `RtpEndpoint`)."""

    local_port: int

    async def connect(self) -> None: ...

    def start(self, **params: Unpack[MediaStart]) -> None: ...

    def update_remote(self, remote: Address, remote_rtcp: Address | None = None) -> None: ...

    def rekey_srtp(self, remote_key: bytes) -> None: ...

    def set_hold(self, held: bool) -> None: ...

    def events(self) -> AsyncIterator[EndpointEvent]: ...

    async def send_dtmf(self, digits: str, *, duration_ms: int = 100) -> None: ...

    async def close(self) -> None: ...

    @property
    def stats(self) -> dict[str, Any]: ...


MediaFactory = Callable[[str, tuple[int, int]], CallMedia]
"""Binds a call's media on (host, RTP port range) at once (the SDP answer needs its port);
raises `RtpPortsExhausted`."""
