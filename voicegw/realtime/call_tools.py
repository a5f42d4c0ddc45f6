"""Call control for agents: `hang_up`, `transfer` and `send_dtmf` as ordinary function tools.

A session over a transport that implements `CallControl` (a SIP call) puts a `CallHandle` in the
run context (``ctx.call``) and offers `CALL_TOOLS` to every agent, after the agent's own tools.
An agent that lists any call tool of its own gets only the ones it lists (a front desk that may
transfer only to its operator defines its own ``transfer`` and adds ``hang_up_tool(...)``, and
no ``send_dtmf``). ``RealtimeRunConfig(call_tools=False)`` turns them off for a run.

The handle does what a person on the phone would: it lets the agent finish the sentence it is
saying before it hangs up or transfers (bounded, so a stuck playout cannot keep a call open).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from voicegw.contracts.model import CreateResponse
from voicegw.contracts.transport import CallControl, CallInfo, EndReason, TransferResult
from voicegw.realtime.context import RunContextWrapper, ToolContext
from voicegw.realtime.port import SessionPort
from voicegw.realtime.tools import FunctionTool, function_tool

PLAYOUT_LIMIT_S = 10.0
"""Longest wait for the agent's audio in flight to reach the caller before a hang-up or transfer."""

SAY_START_LIMIT_S = 5.0
"""Longest wait for the model to start speaking a farewell."""

POLL_S = 0.02
"""How often play-out is checked: the transport reports what was played, it does not signal it."""

DTMF_DIGITS = frozenset("0123456789*#ABCD")
HUNG_UP = "The call has ended."


class NotOnACall(RuntimeError):
    """A call-control tool ran in a session whose transport is not a phone call."""


class CallHandle:
    """The phone call under a session, as instructions, tools and hooks see it (``ctx.call``).

    The session builds it and lends it its `SessionPort`: the agent's speech, and its way to end.
    """

    def __init__(self, control: CallControl, session: SessionPort) -> None:
        self.control = control
        self._session = session

    @property
    def info(self) -> CallInfo:
        """Who called whom: caller, dialled number, the INVITE's headers."""
        return self.control.info

    def spoke_before(self, tool_call_id: str) -> bool:
        """Whether the model's response that made this tool call also spoke to the caller."""
        return self._session.spoke_before(tool_call_id)

    async def play_out(self, limit_s: float = PLAYOUT_LIMIT_S) -> bool:
        """Wait until the agent has finished speaking (generated and played); False after `limit_s`."""
        return await _wait_until(lambda: not self._session.speaking(), limit_s)

    async def say(self, text: str) -> None:
        """Have the agent say `text` verbatim and wait until the caller has heard it (bounded)."""
        started = self._session.responses_started
        await self._session.send(CreateResponse(say=text))
        await _wait_until(lambda: self._session.responses_started > started, SAY_START_LIMIT_S)
        await self.play_out()

    async def hang_up(self, detail: str = "", *, farewell: str | None = None) -> None:
        """Let the agent finish its sentence, say `farewell` if given, then end the call (SIP BYE);
        `detail` says why in words, for the log."""
        await self.play_out()
        if farewell:
            await self.say(farewell)
        await self.control.hang_up(EndReason.AGENT_HUNG_UP, detail)
        self._session.end(EndReason.AGENT_HUNG_UP)

    async def transfer(self, target: str) -> TransferResult:
        """Blind transfer (SIP REFER) once the agent has finished its sentence.

        When the target answers, our leg is no longer needed: it is hung up and the session ends
        as ``transferred``. Otherwise the caller stays with the agent, which gets the result.
        """
        await self.play_out()
        result = await self.control.transfer(target)
        if result.accepted:
            await self.control.hang_up(EndReason.TRANSFERRED, f"transferred to {target}")
            self._session.end(EndReason.TRANSFERRED)
        return result

    async def send_dtmf(self, digits: str) -> None:
        """Send keypad digits to the far end (RFC 4733), e.g. to work an IVR the agent called."""
        wrong = sorted(set(digits) - DTMF_DIGITS)
        if not digits or wrong:
            raise ValueError(f"DTMF digits must be among 0-9 * # A-D, got {digits!r}")
        await self.control.send_dtmf(digits)


async def _wait_until(condition: Callable[[], bool], limit_s: float) -> bool:
    """Poll `condition` until it holds (True) or `limit_s` has passed (False)."""
    try:
        async with asyncio.timeout(limit_s):
            while not condition():
                await asyncio.sleep(POLL_S)
    except TimeoutError:
        return False
    return True


def call_of(ctx: RunContextWrapper[Any]) -> CallHandle:
    """The call of a run context; raises `NotOnACall` (the tool's error output) when there is none."""
    if ctx.call is None:
        raise NotOnACall("this conversation is not a phone call")
    return ctx.call


def hang_up_tool(farewell: str | None = None) -> FunctionTool:
    """A `hang_up` tool; `farewell` is said first when the model hangs up without a word of its own
    (a small model that can only call the tool), so the caller never hears the line just drop."""

    async def hang_up(ctx: ToolContext[Any]) -> str:
        """Hang up once the conversation is over, when they say goodbye or bye.
        Say goodbye before you hang up."""
        call = call_of(ctx)
        said_goodbye = call.spoke_before(ctx.tool_call_id)
        await call.hang_up(farewell=None if said_goodbye else farewell)
        return HUNG_UP

    return function_tool(hang_up)


@function_tool
async def transfer(ctx: ToolContext[Any], target: str) -> TransferResult:
    """Transfer the caller to another phone number or SIP address (blind transfer).

    Tell the caller first. The result says whether the target answered; if it did not, the
    caller is still with you.

    Args:
        target: Where to transfer: a SIP URI (sip:alice@example.com) or a phone number.
    """
    return await call_of(ctx).transfer(target)


@function_tool
async def send_dtmf(ctx: ToolContext[Any], digits: str) -> str:
    """Press keys on the phone keypad (send DTMF tones to the other side), e.g. to navigate a menu.

    Args:
        digits: The keys to press, from 0-9, * and #.
    """
    await call_of(ctx).send_dtmf(digits)
    return f"Sent the keys {digits}."


hang_up = hang_up_tool()

CALL_TOOLS: tuple[FunctionTool, ...] = (hang_up, transfer, send_dtmf)
"""What a session offers an agent on a phone call (``RealtimeRunConfig(call_tools=False)``: nothing)."""
CALL_TOOL_NAMES = frozenset(tool.name for tool in CALL_TOOLS)
