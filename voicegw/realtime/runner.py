"""`RealtimeRunner`: runs an agent over a session, in the spec's form and in the Agents SDK's.

Spec form, on the class — runs the session to its end::

    result = await RealtimeRunner.run(agent, session=RealtimeSession(transport), context=ctx)

SDK form, on an instance — returns the session, started by ``async with``::

    runner = RealtimeRunner(agent, config={...})
    async with await runner.run(transport=transport) as session:
        async for event in session:
            ...
    session.result

Both drive the same `RealtimeSession` loop and leave the same `RealtimeResult`.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, Protocol, overload

from voicegw.contracts.model import RealtimeModel
from voicegw.contracts.transport import AudioTransport
from voicegw.realtime.agent import RealtimeAgent
from voicegw.realtime.config import RealtimeRunConfig
from voicegw.realtime.hooks import RealtimeRunHooks
from voicegw.realtime.model import RealtimeModelConfig
from voicegw.realtime.result import RealtimeResult
from voicegw.realtime.session import RealtimeSession


class _RunToEnd(Protocol):
    def __call__(
        self,
        starting_agent: RealtimeAgent[Any],
        *,
        session: RealtimeSession,
        context: Any = None,
        hooks: RealtimeRunHooks[Any] | None = None,
        config: RealtimeRunConfig | None = None,
    ) -> Awaitable[RealtimeResult]: ...


class _StartSession(Protocol):
    def __call__(
        self,
        *,
        transport: AudioTransport | None = None,
        context: Any = None,
        hooks: RealtimeRunHooks[Any] | None = None,
        model_config: RealtimeModelConfig | None = None,
    ) -> Awaitable[RealtimeSession]: ...


async def _run_to_end(
    starting_agent: RealtimeAgent[Any],
    *,
    session: RealtimeSession,
    context: Any = None,
    hooks: RealtimeRunHooks[Any] | None = None,
    config: RealtimeRunConfig | None = None,
) -> RealtimeResult:
    """Run `starting_agent` over `session` until it ends (the call ends, a fatal error, `close()`).

    Events can be consumed meanwhile with ``async for event in session`` in another task.
    """
    session.configure(agent=starting_agent, context=context, hooks=hooks, config=config)
    async with session:
        await session.wait()
    return session.result


class _Run:
    """`RealtimeRunner.run`: the spec's form on the class, the SDK's on an instance."""

    @overload
    def __get__(self, instance: None, owner: type[RealtimeRunner]) -> _RunToEnd: ...

    @overload
    def __get__(self, instance: RealtimeRunner, owner: type[RealtimeRunner]) -> _StartSession: ...

    def __get__(
        self, instance: RealtimeRunner | None, owner: type[RealtimeRunner]
    ) -> _RunToEnd | _StartSession:
        if instance is None:
            return _run_to_end
        return instance._session


class RealtimeRunner:
    """Runs realtime agents; see the module docstring for its two forms."""

    def __init__(
        self,
        starting_agent: RealtimeAgent[Any],
        *,
        model: RealtimeModel | None = None,
        config: RealtimeRunConfig | None = None,
        hooks: RealtimeRunHooks[Any] | None = None,
    ) -> None:
        self._starting_agent = starting_agent
        self._model = model
        self._config = config
        self._hooks = hooks

    async def _session(
        self,
        *,
        transport: AudioTransport | None = None,
        context: Any = None,
        hooks: RealtimeRunHooks[Any] | None = None,
        model_config: RealtimeModelConfig | None = None,
    ) -> RealtimeSession:
        """A new session of the starting agent, not started yet (``async with`` or
        ``await session.enter()`` starts it).

        Without a transport, feed audio with `session.send_audio` and play the ``audio`` events.
        `model_config` is the SDK's (`voicegw.realtime.model.RealtimeModelConfig`): its
        ``initial_model_settings`` go over the run's model settings; ``api_key``, ``url``,
        ``headers`` and ``call_id`` choose the endpoint; ``playback_tracker`` says what was played.
        """
        return RealtimeSession(
            transport,
            model=self._model,
            config=self._config,
            agent=self._starting_agent,
            context=context,
            hooks=hooks or self._hooks,
            model_config=model_config,
        )

    run = _Run()
    """``RealtimeRunner.run(agent, *, session, ...)`` runs to the end and returns the result;
    ``runner.run(*, transport=None, context=None)`` returns a session (the SDK's form)."""
