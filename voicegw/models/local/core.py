"""What the parts of the embedded model share: its configuration, its tasks and its event outbox.

Events are queued and delivered by one task of the model's own, in order. A listener that calls
`send_event` while it handles an event (the session cancels the response when the caller starts
speaking) therefore never finds itself called again from inside that call: the model's work
goes on, and what it has to say waits in the outbox until the listener has returned.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog

from voicegw.contracts.model import ModelError, RealtimeModelConfig, RealtimeModelEvent
from voicegw.models.local.dialog import History
from voicegw.models.local.llm import N_CTX
from voicegw.models.local.workers import StepProgress

log = structlog.get_logger()

T = TypeVar("T")

HISTORY_TOKENS = N_CTX // 2
"""History kept for the LLM: within the context with room to spare, and short to read (CPU)."""


@dataclass
class AnswerStats:
    """How answers after a tool were phrased: by the LLM (checked) or by the template."""

    llm_phrasing: int = 0
    template_fallback: int = 0
    tool_calls: int = 0
    failed_steps: int = 0


class ModelCore:
    """The embedded model's shared state and plumbing: config, the conversation as the LLM sees
    it, its inference steps' progress, owned tasks, ids, and the event outbox."""

    def __init__(self, deliver: Callable[[RealtimeModelEvent], Awaitable[None]], llm_name: str) -> None:
        """`deliver` hands one event to every listener (the model's `_emit`)."""
        self.config = RealtimeModelConfig()
        self.history = History(max_tokens=HISTORY_TOKENS)
        self.stats = AnswerStats()
        self.progress = StepProgress()
        """This conversation's inference steps (STT, LLM, TTS) running in the pool."""
        self.log = log.bind(model="local", llm=llm_name)
        self.closed = False
        self._deliver = deliver
        self._outbox: asyncio.Queue[RealtimeModelEvent | None] = asyncio.Queue()
        self._dispatcher: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._ids = itertools.count(1)
        self._id_prefix = f"{id(self) & 0xFFFF:x}"

    def emit(self, event: RealtimeModelEvent) -> None:
        """Queue `event` for the listeners; it is delivered after everything queued before it."""
        if self._dispatcher is None:
            self._dispatcher = asyncio.get_running_loop().create_task(
                self._dispatch(), name="local-model-events"
            )
        self._outbox.put_nowait(event)

    async def _dispatch(self) -> None:
        while (event := await self._outbox.get()) is not None:
            try:
                await self._deliver(event)
            except Exception as exc:  # a listener's bug must not stop the events of the others
                self.log.error("local_model_listener_failed", event_type=event.type, error=repr(exc))

    def spawn(self, coro: Awaitable[T]) -> asyncio.Task[T]:
        """Run `coro` as a task of the model (cancelled on close; a failure becomes an error event)."""
        task: asyncio.Task[T] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            self.log.error("local_model_task_failed", error=repr(exc))
            if not self.closed:
                self.emit(ModelError(f"local model failure: {exc}", code="internal"))

    def new_id(self, prefix: str) -> str:
        return f"{prefix}_local_{self._id_prefix}_{next(self._ids)}"

    async def close(self, last: RealtimeModelEvent) -> None:
        """Cancel every task, then deliver what is queued and `last`, and stop the outbox."""
        self.closed = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.emit(last)
        self._outbox.put_nowait(None)
        dispatcher = self._dispatcher
        if dispatcher is not None and dispatcher is not asyncio.current_task():
            await dispatcher
