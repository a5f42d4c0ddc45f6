"""The `AudioTransport` seam: one interface for every way audio reaches an agent.

A SIP call, a Twilio Media Stream, a browser, the local sound device and a pair of WAV files
all look the same to a `RealtimeSession`: caller audio comes out of `frames()` as 20 ms mono
s16le PCM at `sample_rate`, control comes out of `events()`, agent audio goes in through
`play()`, and `flush()`/`played_ms()` let barge-in cut the agent off and know what the caller
actually heard.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal, Protocol, TypeAlias, runtime_checkable

from voicegw.audio.format import BYTES_PER_SAMPLE


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

    received_at: float | None = None
    """When its newest network packet arrived (`time.monotonic()`), where the transport knows:
    the start of the gateway's inbound latency (`voicegw.contracts.latency`)."""

    @property
    def duration_ms(self) -> int:
        return len(self.pcm) * 1000 // (BYTES_PER_SAMPLE * self.sample_rate)


CallState: TypeAlias = Literal["ringing", "answered", "held", "resumed", "transferred", "ended"]


class EndReason(enum.StrEnum):
    """Why a call or a session ended: a bounded set, so metrics label by its value.

    A `str`, so ``result.end_reason == "caller_hung_up"`` holds and JSON logs show the value.
    The words for a person (a SIP reason phrase, "maximum call duration reached") travel beside
    it as a detail string.
    """

    CALLER_HUNG_UP = "caller_hung_up"
    """The other party hung up: the caller, or the callee of a call we dialled."""

    CALLER_CANCELLED = "caller_cancelled"
    """The caller gave up before the call was answered (CANCEL)."""

    AGENT_HUNG_UP = "agent_hung_up"
    """The agent (or the program running it) ended the call."""

    TRANSFERRED = "transferred"
    """The caller was transferred elsewhere and our leg was no longer needed."""

    MEDIA_TIMEOUT = "media_timeout"
    """No audio came from the caller for too long (a dead network path)."""

    TIMEOUT = "timeout"
    """A limit of ours ended it: maximum call duration, or a caller who stopped answering."""

    REJECTED = "rejected"
    """We refused the call before answering it (access rules, capacity, a bad offer)."""

    FAILED = "failed"
    """Setting the call up failed (an unusable SDP answer, a final error response)."""

    SERVER_SHUTDOWN = "server_shutdown"
    """The server stopped and hung up the calls still in progress."""

    HANDLER_FINISHED = "handler_finished"
    """The code handling the call returned while the call was still up."""

    MODEL_FAILED = "model_failed"
    """The model failed during the call, and the server ended it (after an apology)."""

    WORKER_FAILED = "worker_failed"
    """The worker process running the call died (the server hung up with a Reason header)."""

    ERROR = "error"
    """The session failed: the model could not connect or failed fatally, or a bug of ours."""

    CLOSED = "closed"
    """The application closed the session (or its transport) while the call was up."""

    @property
    def words(self) -> str:
        """The reason as a log reader would say it (``"caller hung up"``)."""
        return self.value.replace("_", " ")


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
    """Why, in words a log reader understands (``"caller hung up"``, ``"486 Busy Here"``)."""

    end_reason: EndReason | None = None
    """Why the call ended, when `state` is ``"ended"``."""

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


@dataclass(frozen=True, slots=True)
class AnsweringMachineDetected:
    """Who answered a call we dialled with answering-machine detection (``voicegw call --amd``)."""

    verdict: Literal["human", "machine", "unknown"]
    decided_ms: int
    """When it was decided, in milliseconds of the callee's audio after the answer."""

    cause: str
    """Why, in words (``"a short greeting, then silence"``)."""

    type: Literal["amd"] = "amd"


CallEvent: TypeAlias = DtmfReceived | CallStateChanged | TransferResult | AnsweringMachineDetected
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

    async def hang_up(self, reason: EndReason = EndReason.AGENT_HUNG_UP, detail: str = "") -> None:
        """End the call from our side (SIP BYE); `detail` says why in words (the log's reason)."""
        ...

    async def transfer(self, target: str) -> TransferResult:
        """Transfer the caller to `target` (SIP REFER) and wait for the outcome."""
        ...

    async def send_dtmf(self, digits: str) -> None:
        """Send digits to the far end (RFC 4733 telephone-event)."""
        ...


class TransportClosed(Exception):
    """Raised by `play` on a transport whose call has ended."""
