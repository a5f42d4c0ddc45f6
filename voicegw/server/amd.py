"""A dialled call with answering-machine detection: who answered decides what runs on the call.

A person (or an unknown pickup) gets the agent, as without detection. A machine gets either a
hang-up or a voicemail: the agent's model is connected while the greeting plays, and when the
machine starts recording (the beep's end) the agent speaks one message, a fixed text or one it
composes from `VOICEMAIL_INSTRUCTIONS`, and the call is hung up once it has gone out.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from voicegw.audio.amd import AmdDecision, AmdSettings, VoicemailReady
from voicegw.audio.format import BYTES_PER_SAMPLE
from voicegw.contracts.model import ModelUnavailable, RealtimeModel, RealtimeModelConfig
from voicegw.contracts.transport import EndReason
from voicegw.server.app import AgentCalls
from voicegw.server.model_watch import READY_TIMEOUT_S, Preconnectable
from voicegw.sip.call import SipCall
from voicegw.transports.amd import AnsweringMachineScreen
from voicegw.transports.sip_call import SipCallTransport

if TYPE_CHECKING:
    from voicegw.realtime import RealtimeAgent, RealtimeSession

OnMachine = Literal["leave_voicemail", "hangup"]

VOICEMAIL_INSTRUCTIONS = (
    "You reached an answering machine and it is recording now. Leave one short voicemail: who you "
    "are, why you called and how to call back. Say nothing else."
)
MAX_MESSAGE_S = 60.0
"""A voicemail longer than this is cut off (a model that will not stop must not hold the line)."""

PLAYOUT_SLACK_S = 1.0
"""Beyond the message's own length, how long its playout may take before the call is hung up."""


@dataclass(frozen=True)
class AmdOptions:
    """Answering-machine detection for a dialled call, and what a machine gets."""

    on_machine: OnMachine = "leave_voicemail"
    """What a machine gets: a voicemail after its beep, or a hang-up at once."""

    voicemail_message: str | None = None
    """The message to leave, word for word; None: the agent composes one."""

    settings: AmdSettings = field(default_factory=AmdSettings)


@dataclass(frozen=True)
class AmdOutcome:
    """What detection found on a call and what was done about it."""

    decision: AmdDecision
    recording: VoicemailReady | None = None
    """When the machine started recording (a machine that got a voicemail)."""

    voicemail_left: bool = False
    """The whole message went out before the call was hung up."""

    message_delay_ms: float | None = None
    """From the moment the machine was found ready (the beep's end heard, one frame and the jitter
    buffer after it ended) to the message's first audio handed to the media clock."""


async def run_screened(call: SipCall, agents: AgentCalls, options: AmdOptions) -> AmdOutcome:
    """Detect who answered `call`, then run the agent, leave a voicemail or hang up."""
    screen = AnsweringMachineScreen(call, options.settings)
    decision = await screen.decide()
    if agents.watch is not None:
        agents.watch.note(call, amd=decision.verdict)
    if call.ended:
        return AmdOutcome(decision)
    if decision.verdict != "machine":
        await agents(call)
        return AmdOutcome(decision)
    if options.on_machine == "hangup":
        await call.hang_up(EndReason.AGENT_HUNG_UP, "answering machine")
        return AmdOutcome(decision)
    voicemail = Voicemail(call, agents, options.voicemail_message)
    try:
        ready = await screen.wait_for_recording()
        if ready is None:
            return AmdOutcome(decision)
        left, delay_ms = await voicemail.leave()
    finally:
        await voicemail.close()
    return AmdOutcome(decision, ready, left, delay_ms)


class Voicemail:
    """One message on an answering machine: the model connects at once, `leave` speaks."""

    def __init__(self, call: SipCall, agents: AgentCalls, message: str | None) -> None:
        self.call = call
        self.agent = voicemail_agent(agents.router.resolve(call.info).agent, message)
        self.model: RealtimeModel = agents.new_model()
        self._preconnect = asyncio.ensure_future(self._connect_early())
        self._session: RealtimeSession | None = None

    async def _connect_early(self) -> None:
        """A remote model's connection, or the embedded model's files, take longer than the gap
        after a beep: have them now."""
        if isinstance(self.model, Preconnectable):
            config = RealtimeModelConfig(sample_rate=self.call.sample_rate)
            await asyncio.wait_for(self.model.preconnect(config), READY_TIMEOUT_S)
        else:
            await self.model.prepare()

    async def leave(self) -> tuple[bool, float | None]:
        """Speak the message now and hang up once it has gone out: (all of it sent, delay in ms
        from now to its first audio)."""
        from voicegw.realtime import RealtimeRunner, RealtimeSession

        started = asyncio.get_running_loop().time()
        try:
            await self._preconnect
        except (TimeoutError, OSError, ModelUnavailable) as exc:  # OSError: ConnectionError, files
            self.call.log.warning("voicemail_failed", cause="model_unreachable", detail=str(exc) or repr(exc))
            await self.call.hang_up(EndReason.MODEL_FAILED, "no model for the voicemail")
            return False, None
        transport = SipCallTransport(self.call)
        session = self._session = RealtimeSession(transport, model=self.model)
        run = asyncio.ensure_future(RealtimeRunner.run(self.agent, session=session, context=self.call.info))
        message = _Message(transport, started)
        try:
            async with asyncio.timeout(MAX_MESSAGE_S):
                await message.speak(session)
        except TimeoutError:
            self.call.log.warning(
                "voicemail_failed", cause="too_long", detail=f"cut after {MAX_MESSAGE_S:g} s"
            )
        except Exception as exc:  # the session failed (the model): the machine hears no more
            self.call.log.warning("voicemail_failed", cause="session_failed", detail=str(exc) or repr(exc))
        if message.left:
            self.call.log.info("voicemail_left", message_ms=round(message.sent_ms))
        elif not self.call.ended:
            self.call.log.warning("voicemail_failed", cause="no_message", detail=session.result.error or "")
        await self.call.hang_up(EndReason.AGENT_HUNG_UP, "voicemail left" if message.left else "no voicemail")
        await session.close()
        await asyncio.gather(run, return_exceptions=True)  # its failure was the session's, logged above
        return message.left, message.delay_ms

    async def close(self) -> None:
        """Release the model if the message was never spoken (the call ended first)."""
        self._preconnect.cancel()
        await asyncio.gather(self._preconnect, return_exceptions=True)
        if self._session is None:  # a session closes its own model
            await self.model.close()


def voicemail_agent(agent: RealtimeAgent[Any], message: str | None) -> RealtimeAgent[Any]:
    """`agent` speaking `message` word for word first, or composing a voicemail."""
    if message is not None:
        return agent.clone(greeting=message, greeting_instructions=None)
    return agent.clone(greeting=None, greeting_instructions=VOICEMAIL_INSTRUCTIONS)


class _Message:
    """Follows the agent's first response on the call until it has gone out."""

    def __init__(self, transport: SipCallTransport, started: float) -> None:
        self.transport = transport
        self.started = started
        self.delay_ms: float | None = None
        self.sent_ms = 0.0
        self.left = False

    async def speak(self, session: RealtimeSession) -> None:
        from voicegw.realtime import RealtimeAudio, RealtimeAudioEnd

        log = self.transport.call.log
        async for event in session.all_events():
            if isinstance(event, RealtimeAudio):
                if self.delay_ms is None:
                    self.delay_ms = (asyncio.get_running_loop().time() - self.started) * 1000
                    log.info("voicemail_started", after_ready_ms=round(self.delay_ms))
                self.sent_ms += len(event.audio.data) / BYTES_PER_SAMPLE / self.transport.sample_rate * 1000
            elif isinstance(event, RealtimeAudioEnd) and self.delay_ms is not None:
                await self.transport.wait_played(event.item_id, self.sent_ms, slack_s=PLAYOUT_SLACK_S)
                self.left = self.transport.played_ms(event.item_id) >= self.sent_ms
                return
