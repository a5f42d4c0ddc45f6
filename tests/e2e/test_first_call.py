"""A server's first call is greeted as soon as the calls after it (issue 12: no dead air).

`voicegw serve` on the embedded model runs Whisper, the LLM and the voice once before it takes
calls (`LocalRealtimeModel.prepare`), and reads the agent's prompt while the greeting plays: the
first caller used to wait seconds longer after the 200 OK than the next one. The bound is wide
(the machine is shared); scripts/bench_latency.py prints the figures.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from voicegw.testing.barge_in import phone_call
from voicegw.testing.harness import EchoServer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

HEARD_S = 0.5
"""How long the agent must have spoken for its greeting to count as heard."""


def greeting_after_answer_s(port: int) -> float:
    """One call: seconds from its 200 OK to the greeting's first voiced packet."""
    with phone_call(port) as (caller, _, answered):
        return caller.wait_for_agent_speech(HEARD_S) - answered


def test_the_first_call_is_greeted_as_soon_as_the_next(tmp_path: Path) -> None:
    server = EchoServer("voicegw", tmp_path, agent="", config='[model]\nname = "local"\n')
    try:
        server.wait_ready(120)
        first = greeting_after_answer_s(server.port)
        second = greeting_after_answer_s(server.port)
    finally:
        stopped = server.stop()
    assert stopped, server.output()[-3000:]
    assert first <= 2 * second + 1.0, (first, second)
