"""The `AudioTransport` seam: one interface for every way audio reaches an agent.

A SIP call, a Twilio Media Stream, a browser, the local sound device and a pair of WAV files
all look the same to a `RealtimeSession`: caller audio comes out of `frames()` as 20 ms mono
s16le PCM at `sample_rate`, control comes out of `events()`, agent audio goes in through
`play()`, and `flush()`/`played_ms()` let barge-in cut the agent off and know what the caller
actually heard.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal, Protocol, TypeAlias, runtime_checkable

FRAME_MS = 20
"""Every transport hands out and paces audio in frames of this many milliseconds."""


@dataclass(frozen=True, slots=True)
class AudioFrame:
    """One frame of caller audio, after the jitter buffer."""

    pcm: bytes
    """Mono signed 16-bit little-endian PCM, `FRAME_MS` long at `sample_rate`."""

    sample_rate: int
    """Samples per second of `pcm`."""

    timestamp_ms: int = 0
    """Position of the frame's first sample in the caller's stream, in milliseconds."""

    concealed: bool = False
    """True when the frame was synthesized by packet-loss concealment, not received."""

    @property
    def duration_ms(self) -> int:
        return len(self.pcm) * 1000 // (2 * self.sample_rate)


CallState: TypeAlias = Literal["ringing", "answered", "held", "resumed", "transferred", "ended"]


@dataclass(frozen=True, slots=True)
class DtmfReceived:
    """The caller pressed a key (RFC 4733 telephone-event, SIP INFO, or a provider message)."""

    digit: str
    """One of ``0123456789*#ABCD``."""

    duration_ms: int
    type: Literal["dtmf"] = "dtmf"


@dataclass(frozen=True, slots=True)
class CallStateChanged:
    """The call moved to a new state."""

    state: CallState
    reason: str = ""
    """Why, in words a log reader understands (``"caller hung up"``, ``"media timeout"``)."""

    type: Literal["call_state"] = "call_state"


@dataclass(frozen=True, slots=True)
class TransferResult:
    """The outcome of a transfer (SIP REFER) that the agent asked for."""

    target: str
    accepted: bool
    status_code: int
    """The final SIP status the transfer target gave (from the NOTIFY sipfrag), or the REFER's."""

    reason: str = ""
    type: Literal["transfer_result"] = "transfer_result"


CallEvent: TypeAlias = DtmfReceived | CallStateChanged | TransferResult
"""Control events of a transport. Barge-in never drops them."""


@runtime_checkable
class AudioTransport(Protocol):
    """Where a conversation's audio comes from and goes to."""

    sample_rate: int
    """PCM rate the transport hands out and takes (8000, 16000, 24000 or 48000)."""

    def frames(self) -> AsyncIterator[AudioFrame]:
        """Caller audio, 20 ms frames; ends when the caller's side is gone."""
        ...

    def events(self) -> AsyncIterator[CallEvent]:
        """DTMF, hold/resume, hang-up and transfer results; ends after the call has ended."""
        ...

    async def play(self, pcm: bytes, *, item_id: str) -> None:
        """Queue agent audio (mono s16le at `sample_rate`) for the caller; returns at once."""
        ...

    def flush(self) -> int:
        """Drop everything queued (barge-in) and return the ms of the current item actually sent."""
        ...

    def played_ms(self, item_id: str) -> int:
        """Milliseconds of `item_id` that have reached the caller so far."""
        ...

    async def close(self) -> None:
        """End the conversation's audio and release every resource; safe to call twice."""
        ...


@dataclass(frozen=True, slots=True)
class CallInfo:
    """Who called whom: what an agent may want to know about its call (``ctx.call.info`` in tools)."""

    call_id: str
    from_uri: str
    to_uri: str
    source: tuple[str, int]
    """Address the call came from."""

    headers: dict[str, str] = field(default_factory=dict)
    """Every header of the INVITE (X- headers from a trunk included), names lower-cased.

    Dialling out: the extra headers we sent."""

    direction: Literal["inbound", "outbound"] = "inbound"
    """Who called: the far end (inbound), or we did (`SipUserAgent.dial`, ``voicegw call``)."""

    @property
    def dialled_user(self) -> str:
        """The user part of the To URI (the number or extension dialled)."""
        return _user_part(self.to_uri)

    @property
    def caller_user(self) -> str:
        """The user part of the From URI (the caller's number, when the network gives it)."""
        return _user_part(self.from_uri)

    def header(self, name: str, default: str = "") -> str:
        """One header of the INVITE by name, in any case (``info.header("X-Twilio-CallSid")``)."""
        return self.headers.get(name.lower(), default)


def _user_part(uri: str) -> str:
    inner = uri.split("<", 1)[-1].split(">", 1)[0]
    inner = inner.split(":", 1)[-1]
    return inner.split("@", 1)[0] if "@" in inner else ""


@runtime_checkable
class CallControl(Protocol):
    """Call control that telephony transports offer to agents (as tools)."""

    @property
    def info(self) -> CallInfo:
        """Who called whom."""
        ...

    async def hang_up(self, reason: str = "agent hung up") -> None:
        """End the call from our side (SIP BYE)."""
        ...

    async def transfer(self, target: str) -> TransferResult:
        """Transfer the caller to `target` (SIP REFER) and wait for the outcome."""
        ...

    async def send_dtmf(self, digits: str) -> None:
        """Send digits to the far end (RFC 4733 telephone-event)."""
        ...


class TransportClosed(Exception):
    """Raised by `play` on a transport whose call has ended."""
