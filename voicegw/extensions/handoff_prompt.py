"""Instructions for agents that hand the conversation to one another (`agents.extensions.handoff_prompt`)."""

RECOMMENDED_PROMPT_PREFIX = (
    "# How this conversation works\n"
    "You are one of several agents that share a single voice conversation. Each agent has its own "
    "instructions and tools, and can pass the caller to a better-suited agent by calling one of "
    "its handoff functions (named `transfer_to_<agent_name>`). The caller hears one continuous "
    "voice: never announce, explain or mention a transfer, and never name the other agents.\n"
)
"""Put this at the start of the instructions of every agent that has handoffs."""


def prompt_with_handoff_instructions(prompt: str) -> str:
    """`prompt` with `RECOMMENDED_PROMPT_PREFIX` before it."""
    return f"{RECOMMENDED_PROMPT_PREFIX}\n\n{prompt}"
