"""Checking a run configuration before a session starts.

`check_run_config` refuses, naming it, every key voicegw does not know or cannot honour, so that
nothing of a configuration written for the Agents SDK is silently dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from voicegw.realtime.config import (
    RealtimeRunConfig,
    RealtimeSessionModelSettings,
    UnsupportedSetting,
    flat_settings,
)

RUN_CONFIG_KEYS = frozenset(RealtimeRunConfig.__annotations__)
MODEL_SETTINGS_KEYS = frozenset(RealtimeSessionModelSettings.__annotations__)


def check_run_config(config: Mapping[str, Any]) -> None:
    """Raise `UnsupportedSetting` naming a key voicegw does not know or a value it cannot honour."""
    _refuse_unknown("run config", config, RUN_CONFIG_KEYS)
    settings = flat_settings(config.get("model_settings") or {})
    _refuse_unknown("model setting", settings, MODEL_SETTINGS_KEYS)
    if settings.get("handoffs"):
        raise UnsupportedSetting(
            "model_settings.handoffs: voicegw takes handoffs from the agent (RealtimeAgent(handoffs=[...]))"
        )
    if (config.get("tool_execution") or {}).get("pre_approval_tool_input_guardrails"):
        raise UnsupportedSetting(
            "tool_execution.pre_approval_tool_input_guardrails: voicegw has no tool input guardrails"
        )
    execution = config.get("tool_execution") or {}
    _refuse_unknown("tool_execution key", execution, {"pre_approval_tool_input_guardrails"})


def _refuse_unknown(what: str, given: Mapping[str, Any], known: frozenset[str] | set[str]) -> None:
    unknown = set(given) - known
    if unknown:
        raise UnsupportedSetting(f"unknown {what}(s): {', '.join(sorted(unknown))}")
