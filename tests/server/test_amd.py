from __future__ import annotations

from voicegw.realtime import RealtimeAgent
from voicegw.server.amd import VOICEMAIL_INSTRUCTIONS, voicemail_agent

CALLER = RealtimeAgent(
    name="Caller",
    instructions="You call about appointments.",
    greeting_instructions="Greet the person and say why you call.",
)


def test_a_fixed_voicemail_is_said_word_for_word_by_the_agent() -> None:
    agent = voicemail_agent(CALLER, "Your appointment is tomorrow at nine.")
    assert agent.greeting == "Your appointment is tomorrow at nine."
    assert agent.greeting_instructions is None
    assert (agent.name, agent.instructions) == (CALLER.name, CALLER.instructions)


def test_otherwise_the_agent_composes_its_voicemail() -> None:
    greeter = CALLER.clone(greeting="Hi!", greeting_instructions=None)
    agent = voicemail_agent(greeter, None)
    assert agent.greeting is None
    assert agent.greeting_instructions == VOICEMAIL_INSTRUCTIONS
    assert agent.instructions == CALLER.instructions  # it still knows why it called
