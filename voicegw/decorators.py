"""The Agents SDK's `agents.decorators`: `tool` is `function_tool`."""

from voicegw.realtime.guardrails import output_guardrail
from voicegw.realtime.tools import function_tool

tool = function_tool

__all__ = ["function_tool", "output_guardrail", "tool"]
