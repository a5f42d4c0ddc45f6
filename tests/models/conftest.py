"""Shared pieces of the OpenAI model tests: a recording listener and the fake server fixture."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import numpy as np
import pytest

from voicegw.contracts.model import RealtimeModelEvent
from voicegw.models.openai import OpenAIRealtimeModel
from voicegw.testing.fake_realtime import API_KEY, FakeRealtimeServer

EVENT_TIMEOUT_S = 5.0


class Recorder:
    """A model listener that keeps every event and lets a test wait for one."""

    def __init__(self) -> None:
        self.events: list[RealtimeModelEvent] = []
        self._changed = asyncio.Event()

    async def on_event(self, event: RealtimeModelEvent) -> None:
        self.events.append(event)
        self._changed.set()

    def of(self, kind: str) -> list[RealtimeModelEvent]:
        return [e for e in self.events if e.type == kind]

    async def wait_for(
        self, kind: str, predicate: Callable[[Any], bool] = lambda e: True
    ) -> RealtimeModelEvent:
        async def find() -> RealtimeModelEvent:
            while True:
                for event in self.events:
                    if event.type == kind and predicate(event):
                        return event
                self._changed.clear()
                await self._changed.wait()

        return await asyncio.wait_for(find(), EVENT_TIMEOUT_S)


def tone(hz: float, ms: int, rate: int, amplitude: int = 6000) -> bytes:
    t = np.arange(rate * ms // 1000) / rate
    return (amplitude * np.sin(2 * np.pi * hz * t)).astype("<i2").tobytes()


def openai_model(server: FakeRealtimeServer, **kwargs: object) -> OpenAIRealtimeModel:
    return OpenAIRealtimeModel(api_key=API_KEY, base_url=server.base_url, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def fake_server() -> Iterator[Callable[..., FakeRealtimeServer]]:
    """Build a server for a scenario; the test must leave it with no protocol violation."""
    servers: list[FakeRealtimeServer] = []

    def make(scenario: str, **kwargs: object) -> FakeRealtimeServer:
        server = FakeRealtimeServer(scenario, **kwargs)  # type: ignore[arg-type]
        servers.append(server)
        return server

    yield make
    for server in servers:
        assert server.violations == [], f"client broke the protocol: {server.violations}"


@pytest.fixture
async def no_tasks_left() -> AsyncIterator[None]:
    """Fails when a test leaves a task of ours running."""
    before = asyncio.all_tasks()
    yield
    await asyncio.sleep(0)
    left = {t for t in asyncio.all_tasks() - before if not t.done() and "openai" in t.get_name()}
    assert not left, f"tasks left running: {left}"
