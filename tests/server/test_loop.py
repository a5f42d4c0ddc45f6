"""The event loop `voicegw serve` and `voicegw call` run on: uvloop where it is installed."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest

from voicegw.server import loop

uvloop = pytest.importorskip("uvloop", reason="uvloop is a dependency; only a platform without it lacks it")


def test_uvloop_is_used_when_installed() -> None:
    assert loop.EVENT_LOOP == "uvloop"
    created = loop.new_event_loop()
    try:
        assert isinstance(created, uvloop.Loop)
    finally:
        created.close()

    async def running() -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    assert isinstance(loop.run(running()), uvloop.Loop)


def test_the_stdlib_loop_can_be_asked_for() -> None:
    code = "from voicegw.server import loop; print(loop.EVENT_LOOP, type(loop.new_event_loop()).__module__)"
    env = {**os.environ, loop.LOOP_ENV: "asyncio"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["asyncio", "asyncio.unix_events"]
