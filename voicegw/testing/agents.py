"""Agents that `voicegw serve --agent voicegw.testing.agents:NAME` runs in the end-to-end tests."""

import asyncio

from voicegw.realtime import RealtimeAgent, function_tool

assistant = RealtimeAgent(name="Assistant", instructions="You are a helpful voice assistant.")

greeter = RealtimeAgent(
    name="Greeter",
    instructions="You called this person. Be brief.",
    greeting_instructions="Greet the person you called and say why you are calling.",
)

welcomer = RealtimeAgent(
    name="Welcomer", instructions="You are a helpful voice assistant.", greeting="Hello, how can I help?"
)
"""Speaks first: the barge-in scenario interrupts its greeting."""


def _failing_instructions(context: object, agent: object) -> str:
    raise RuntimeError("the instructions store is unreachable")


broken = RealtimeAgent(name="Broken", instructions=_failing_instructions, greeting="Hello, how can I help?")
"""Its instructions raise when the session starts: a task of ours failing, not the model."""

SLOW_TOOL_S = 5.0


@function_tool
async def get_weather(city: str) -> str:
    """The weather in a city (slowly: a caller can hang up while it runs)."""
    await asyncio.sleep(SLOW_TOOL_S)
    return f"sunny in {city}"


slow_weather = RealtimeAgent(name="Weather", instructions="Answer weather questions.", tools=[get_weather])
"""Its tool takes seconds: the caller hangs up during the tool call (and its thinking tone)."""
