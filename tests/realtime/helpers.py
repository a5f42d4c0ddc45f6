"""Shared set-up for the session tests: a scripted model, a fake transport, an event log."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, TypeVar

from voicegw.models.testing import ScriptedModel, ScriptStep
from voicegw.realtime import (
    RealtimeAgent,
    RealtimeRunConfig,
    RealtimeRunHooks,
    RealtimeSession,
    RealtimeSessionEvent,
)
from voicegw.transports.testing import FakeTransport, settle

RATE = 16000
E = TypeVar("E")


@dataclass
class Run:
    """A started session with everything a test looks at."""

    session: RealtimeSession
    model: ScriptedModel
    transport: FakeTransport
    events: list[RealtimeSessionEvent] = field(default_factory=list)
    consumer: asyncio.Task[None] | None = None

    def of(self, kind: type[E]) -> list[E]:
        return [e for e in self.events if isinstance(e, kind)]

    def types(self) -> list[str]:
        return [e.type for e in self.events if e.type != "raw_model_event"]

    async def close(self) -> None:
        await self.session.close()
        if self.consumer is not None:
            await self.consumer


async def start(
    agent: RealtimeAgent[Any],
    steps: list[ScriptStep],
    *,
    config: RealtimeRunConfig | None = None,
    supports_turn_detection: bool = False,
    context: Any = None,
    hooks: RealtimeRunHooks[Any] | None = None,
    transport: FakeTransport | None = None,
) -> Run:
    """Start a session of `agent` over `transport` (a new `FakeTransport`); no server VAD unless asked."""
    model = ScriptedModel(steps, supports_turn_detection=supports_turn_detection)
    transport = transport if transport is not None else FakeTransport(RATE)
    merged: RealtimeRunConfig = {"turn_detection": None}
    merged.update(config or {})
    session = RealtimeSession(
        transport, model=model, config=merged, agent=agent, context=context, hooks=hooks
    )
    await session.start()
    run = Run(session, model, transport)

    async def consume() -> None:
        async for event in session.all_events():
            run.events.append(event)

    run.consumer = asyncio.create_task(consume())
    await settle()
    return run
