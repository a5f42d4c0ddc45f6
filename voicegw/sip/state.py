"""A SIP call's life cycle as a named-state table (h11 style), with no pjsua2 in sight.

pjsua2 callbacks arrive in orders that are legal for SIP but not always for us (a BYE racing
our 200 OK, a re-INVITE during a CANCEL). Every change goes through `transition`, so an
out-of-order callback is refused in one place instead of corrupting the call.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from voicegw.contracts.transport import CallState as PublicCallState


class CallState(enum.Enum):
    INCOMING = "incoming"
    """INVITE received, SDP offer checked, media being set up (100 Trying sent)."""

    DIALING = "dialing"
    """Our INVITE (with our SDP offer) is out; no answer yet."""

    RINGING = "ringing"
    """180 Ringing sent (or, dialling out, received); a CANCEL still ends the call with 487."""

    ANSWERED = "answered"
    """200 OK sent (or, dialling out, received and ACKed); media flowing both ways."""

    HELD = "held"
    """The far end put the call on hold (re-INVITE with sendonly/inactive or c=0.0.0.0)."""

    ENDED = "ended"
    """Disconnected, by either side or rejected; terminal."""


class CallTrigger(enum.Enum):
    """What moves a call: our actions and the far end's requests, as pjsua2 reports them."""

    RING = "ring"
    ANSWER = "answer"
    HOLD = "hold"
    RESUME = "resume"
    DISCONNECT = "disconnect"


TRANSITIONS: dict[tuple[CallState, CallTrigger], CallState] = {
    (CallState.INCOMING, CallTrigger.RING): CallState.RINGING,
    (CallState.INCOMING, CallTrigger.ANSWER): CallState.ANSWERED,
    (CallState.INCOMING, CallTrigger.DISCONNECT): CallState.ENDED,
    (CallState.DIALING, CallTrigger.RING): CallState.RINGING,
    (CallState.DIALING, CallTrigger.ANSWER): CallState.ANSWERED,
    (CallState.DIALING, CallTrigger.DISCONNECT): CallState.ENDED,
    (CallState.RINGING, CallTrigger.ANSWER): CallState.ANSWERED,
    (CallState.RINGING, CallTrigger.DISCONNECT): CallState.ENDED,
    (CallState.ANSWERED, CallTrigger.HOLD): CallState.HELD,
    (CallState.ANSWERED, CallTrigger.DISCONNECT): CallState.ENDED,
    (CallState.HELD, CallTrigger.RESUME): CallState.ANSWERED,
    (CallState.HELD, CallTrigger.HOLD): CallState.HELD,
    (CallState.HELD, CallTrigger.DISCONNECT): CallState.ENDED,
}
"""Every allowed (state, trigger) pair; anything else is refused."""

PUBLIC_STATE: dict[CallTrigger, PublicCallState] = {
    CallTrigger.RING: "ringing",
    CallTrigger.ANSWER: "answered",
    CallTrigger.HOLD: "held",
    CallTrigger.RESUME: "resumed",
    CallTrigger.DISCONNECT: "ended",
}
"""The `CallStateChanged.state` an agent sees for each accepted trigger."""


class InvalidTransition(ValueError):
    """A trigger that the current state does not allow (logged and ignored by the call)."""


@dataclass(frozen=True, slots=True)
class Transition:
    """An accepted change: where the call was, where it is, and what the agent is told."""

    previous: CallState
    state: CallState
    public: PublicCallState


def transition(state: CallState, trigger: CallTrigger) -> Transition:
    """The state after `trigger`; raises `InvalidTransition` naming both when not allowed."""
    try:
        new = TRANSITIONS[(state, trigger)]
    except KeyError:
        raise InvalidTransition(f"call state {state.value!r} does not allow {trigger.value!r}") from None
    return Transition(previous=state, state=new, public=PUBLIC_STATE[trigger])


ACTIVE_STATES = frozenset({CallState.ANSWERED, CallState.HELD})
"""States of an established dialog (ending one takes a BYE, not a final response)."""
