"""The call state table: every allowed change, and refusals for out-of-order callbacks."""

from __future__ import annotations

import pytest

from voicegw.sip.state import TRANSITIONS, CallState, CallTrigger, InvalidTransition, transition


def test_a_normal_call_rings_answers_holds_resumes_and_ends() -> None:
    state = CallState.INCOMING
    seen = []
    for trigger in (CallTrigger.RING, CallTrigger.ANSWER, CallTrigger.HOLD, CallTrigger.RESUME):
        change = transition(state, trigger)
        seen.append(change.public)
        state = change.state
    assert seen == ["ringing", "answered", "held", "resumed"]
    assert transition(state, CallTrigger.DISCONNECT).state is CallState.ENDED


@pytest.mark.parametrize("state", [s for s in CallState if s is not CallState.ENDED])
def test_every_live_state_can_end(state: CallState) -> None:
    assert transition(state, CallTrigger.DISCONNECT).state is CallState.ENDED


@pytest.mark.parametrize("trigger", list(CallTrigger))
def test_ended_is_terminal(trigger: CallTrigger) -> None:
    with pytest.raises(InvalidTransition, match=f"call state 'ended' does not allow '{trigger.value}'"):
        transition(CallState.ENDED, trigger)


@pytest.mark.parametrize(
    ("state", "trigger"),
    [
        (CallState.INCOMING, CallTrigger.HOLD),  # a re-INVITE cannot come before the dialog exists
        (CallState.RINGING, CallTrigger.RING),
        (CallState.ANSWERED, CallTrigger.ANSWER),
        (CallState.ANSWERED, CallTrigger.RESUME),
    ],
)
def test_out_of_order_triggers_are_refused(state: CallState, trigger: CallTrigger) -> None:
    assert (state, trigger) not in TRANSITIONS
    with pytest.raises(InvalidTransition):
        transition(state, trigger)


def test_hold_while_held_stays_held() -> None:
    # sendonly then inactive: still on hold, no second "held" for the agent (SipCall drops no-ops).
    assert transition(CallState.HELD, CallTrigger.HOLD).state is CallState.HELD
