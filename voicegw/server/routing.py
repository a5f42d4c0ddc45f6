"""Which agent answers a call: routes by dialled number or SIP user, checked once at start.

A route names its agent as ``module:attribute``: a `RealtimeAgent`, or a factory that receives
the call's `CallInfo` and returns one. Patterns are shell globs (``"1*"``, ``"sales"``), matched
against the user part of the To URI (the number or extension dialled) and of the From URI.
"""

from __future__ import annotations

import fnmatch
import importlib
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from voicegw.realtime.agent import RealtimeAgent
from voicegw.server.config import ConfigError, Route
from voicegw.sip.call import CallInfo

AgentTarget = RealtimeAgent[Any] | Callable[..., RealtimeAgent[Any]]
"""An agent, or a factory called with the call's `CallInfo` (and the ``[agent]`` options)."""


def load_object(path: str, *, key: str = "agent") -> Any:
    """Import ``module:attribute``; raises `ConfigError` saying which half is wrong."""
    module_name, sep, attribute = path.partition(":")
    if not sep or not module_name or not attribute:
        raise ConfigError(f"{key}: {path!r} is not 'module:attribute'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"{key}: cannot import module {module_name!r}: {exc}") from None
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise ConfigError(f"{key}: module {module_name!r} has no attribute {attribute!r}") from None


def load_agent(path: str, *, key: str = "agent") -> AgentTarget:
    """The agent or agent factory at `path`; `ConfigError` when it is neither."""
    target = load_object(path, key=key)
    if not isinstance(target, RealtimeAgent) and not callable(target):
        raise ConfigError(f"{key}: {path!r} is neither a RealtimeAgent nor a factory")
    return target


@dataclass(frozen=True, slots=True)
class Match:
    """The agent chosen for a call, and the route (its agent path) that chose it."""

    agent: RealtimeAgent[Any]
    path: str


class Router:
    """The first route whose patterns match the call, else the default agent."""

    def __init__(self, routes: Sequence[Route], default: str, options: dict[str, Any] | None = None) -> None:
        """Import every agent now, so that a bad path fails at start, not on a call.

        `options` (the ``[agent]`` table) are keyword arguments of the default agent's factory,
        checked against its signature now.
        """
        self._routes = [
            (route, load_agent(route.agent, key=f"routes[{index}].agent"))
            for index, route in enumerate(routes)
        ]
        target = load_agent(default)
        self._options = options or {}
        if self._options:
            if isinstance(target, RealtimeAgent):
                raise ConfigError(f"[agent]: options are for agent factories; {default!r} is an agent")
            try:
                inspect.signature(target).bind(None, **self._options)
            except TypeError as exc:
                raise ConfigError(f"[agent]: {exc}") from None
        self._default = (default, target)

    def resolve(self, info: CallInfo) -> Match:
        """The agent for this call (a factory is called with `info`)."""
        path, target = self._default
        options = self._options
        for route, route_target in self._routes:
            if _matches(route.to, info.dialled_user) and _matches(route.caller, info.caller_user):
                path, target, options = route.agent, route_target, {}
                break
        agent = target if isinstance(target, RealtimeAgent) else target(info, **options)
        if not isinstance(agent, RealtimeAgent):
            raise TypeError(
                f"the agent factory {path!r} returned {type(agent).__name__}, not a RealtimeAgent"
            )
        return Match(agent, path)


def _matches(pattern: str, value: str) -> bool:
    return fnmatch.fnmatchcase(value, pattern)
