from __future__ import annotations

import sys
import types
from collections.abc import Iterator

import pytest

from voicegw.realtime import RealtimeAgent
from voicegw.server.config import ConfigError, Route
from voicegw.server.routing import Router
from voicegw.sip.call import CallInfo


@pytest.fixture
def agents() -> Iterator[str]:
    module = types.ModuleType("routing_test_agents")
    module.desk = RealtimeAgent(name="desk", instructions="front desk")  # type: ignore[attr-defined]
    module.sales = RealtimeAgent(name="sales", instructions="sales")  # type: ignore[attr-defined]
    module.per_caller = lambda info: RealtimeAgent(  # type: ignore[attr-defined]
        name=f"for {info.caller_user}", instructions="personal"
    )
    module.broken = lambda info: "not an agent"  # type: ignore[attr-defined]
    module.number = 42  # type: ignore[attr-defined]
    sys.modules[module.__name__] = module
    yield module.__name__
    del sys.modules[module.__name__]


def call(to: str, caller: str = "bob") -> CallInfo:
    return CallInfo("c1", f"<sip:{caller}@10.0.0.2>", f"<sip:{to}@10.0.0.1>", ("10.0.0.2", 5060))


def test_first_matching_route_wins_then_the_default(agents: str) -> None:
    router = Router(
        [
            Route(f"{agents}:sales", to="1*"),
            Route(f"{agents}:per_caller", caller="alice"),
        ],
        default=f"{agents}:desk",
    )
    assert router.resolve(call("100")).agent.name == "sales"
    assert router.resolve(call("100", caller="alice")).agent.name == "sales"
    match = router.resolve(call("200", caller="alice"))
    assert (match.agent.name, match.path) == ("for alice", f"{agents}:per_caller")
    assert router.resolve(call("200")).agent.name == "desk"


def test_bad_agents_fail_at_start_naming_the_route(agents: str) -> None:
    with pytest.raises(ConfigError, match=r"routes\[1\].agent: module 'routing_test_agents' has no"):
        Router([Route(f"{agents}:sales"), Route(f"{agents}:nobody")], default=f"{agents}:desk")
    with pytest.raises(ConfigError, match="agent: cannot import module 'no_such_module'"):
        Router([], default="no_such_module:agent")
    with pytest.raises(ConfigError, match="neither a RealtimeAgent nor a factory"):
        Router([], default=f"{agents}:number")
    with pytest.raises(ConfigError, match="is not 'module:attribute'"):
        Router([], default="desk")
    with pytest.raises(TypeError, match="returned str, not a RealtimeAgent"):
        Router([], default=f"{agents}:broken").resolve(call("1"))
