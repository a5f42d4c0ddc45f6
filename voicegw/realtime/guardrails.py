"""Output guardrails: checks on what the agent says, run on its transcript as it is produced.

`output_guardrail` makes one of a function ``(ctx, agent, text) -> GuardrailFunctionOutput``
(sync or async), as in the Agents SDK. `TranscriptGate` is the sans-I/O bookkeeping the session
uses: it decides when the accumulated text of an item is checked (its first words, then every
`debounce_text_length` characters, then the rest at the end) and holds back audio of an item
while a check of it is running, so that a model that produces text before audio (the embedded
cascade) never plays speech whose text has not been checked.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeAlias, TypeVar, overload

import structlog

from voicegw.realtime.context import RunContextWrapper

if TYPE_CHECKING:
    from voicegw.realtime.agent import RealtimeAgent

DEFAULT_DEBOUNCE_TEXT_LENGTH = 100

Chunk = TypeVar("Chunk")

log = structlog.get_logger()

GuardrailFunction: TypeAlias = Callable[
    [RunContextWrapper[Any], "RealtimeAgent[Any]", str],
    "GuardrailFunctionOutput | Awaitable[GuardrailFunctionOutput]",
]


@dataclass(frozen=True)
class GuardrailFunctionOutput:
    """What a guardrail function returns."""

    output_info: Any
    """Anything the guardrail wants to report (why it tripped, scores)."""

    tripwire_triggered: bool
    """True stops the agent: its answer is interrupted."""


@dataclass(frozen=True)
class OutputGuardrailResult:
    guardrail: OutputGuardrail
    agent_output: str
    """The transcript text that was checked."""

    agent: RealtimeAgent[Any]
    output: GuardrailFunctionOutput


@dataclass(frozen=True)
class OutputGuardrail:
    """A check on the agent's output text."""

    guardrail_function: GuardrailFunction
    name: str | None = None

    def get_name(self) -> str:
        return self.name or str(getattr(self.guardrail_function, "__name__", "output_guardrail"))

    async def run(
        self, context: RunContextWrapper[Any], agent: RealtimeAgent[Any], agent_output: str
    ) -> OutputGuardrailResult:
        output = self.guardrail_function(context, agent, agent_output)
        if inspect.isawaitable(output):
            output = await output
        if not isinstance(output, GuardrailFunctionOutput):
            raise TypeError(
                f"guardrail {self.get_name()!r} returned {type(output).__name__}, not GuardrailFunctionOutput"
            )
        return OutputGuardrailResult(self, agent_output, agent, output)


@overload
def output_guardrail(func: GuardrailFunction, /) -> OutputGuardrail: ...


@overload
def output_guardrail(*, name: str | None = None) -> Callable[[GuardrailFunction], OutputGuardrail]: ...


def output_guardrail(
    func: GuardrailFunction | None = None, /, *, name: str | None = None
) -> OutputGuardrail | Callable[[GuardrailFunction], OutputGuardrail]:
    """Make an `OutputGuardrail` of a function; usable as ``@output_guardrail`` or with ``name=``."""

    def build(function: GuardrailFunction) -> OutputGuardrail:
        return OutputGuardrail(function, name)

    return build if func is None else build(func)


async def run_output_guardrails(
    guardrails: list[OutputGuardrail],
    context: RunContextWrapper[Any],
    agent: RealtimeAgent[Any],
    text: str,
) -> list[OutputGuardrailResult]:
    """Run every guardrail on `text`; return those that tripped. A failing guardrail is skipped."""
    tripped = []
    for guardrail in guardrails:
        try:
            result = await guardrail.run(context, agent, text)
        except Exception:
            log.warning("output_guardrail_failed", guardrail=guardrail.get_name(), exc_info=True)
            continue
        if result.output.tripwire_triggered:
            tripped.append(result)
    return tripped


@dataclass
class _ItemText(Generic[Chunk]):
    text: str = ""
    checks_started: int = 0
    checked_length: int = 0
    running: int = 0
    held: list[Chunk] = field(default_factory=list)


class TranscriptGate(Generic[Chunk]):
    """When to check an item's transcript, and which of its audio waits for a running check."""

    def __init__(self, debounce_text_length: int = DEFAULT_DEBOUNCE_TEXT_LENGTH) -> None:
        if debounce_text_length < 1:
            raise ValueError(f"debounce_text_length must be at least 1, got {debounce_text_length}")
        self._debounce = debounce_text_length
        self._items: dict[str, _ItemText[Chunk]] = {}

    def add_text(self, item_id: str, delta: str) -> str | None:
        """Add transcript text; returns the whole text so far when it is due for a check."""
        item = self._items.setdefault(item_id, _ItemText[Chunk]())
        item.text += delta
        due = item.checks_started == 0 or len(item.text) >= item.checks_started * self._debounce
        return self._start(item) if due and item.text.strip() else None

    def finish(self, item_id: str) -> str | None:
        """The item's text is complete; returns it when part of it has not been checked yet."""
        item = self._items.get(item_id)
        if item is None or len(item.text) <= item.checked_length:
            return None
        return self._start(item)

    def _start(self, item: _ItemText[Chunk]) -> str:
        item.checks_started += 1
        item.checked_length = len(item.text)
        item.running += 1
        return item.text

    def hold(self, item_id: str, chunk: Chunk) -> bool:
        """True when `chunk` (of audio) must wait, as a check of its item runs: the gate keeps it."""
        item = self._items.get(item_id)
        if item is None or item.running == 0:
            return False
        item.held.append(chunk)
        return True

    def check_passed(self, item_id: str) -> list[Chunk]:
        """A check ended without tripping: the audio to play now, once no other check runs."""
        item = self._items.get(item_id)
        if item is None:
            return []
        item.running = max(0, item.running - 1)
        if item.running:
            return []
        released, item.held = item.held, []
        return released

    def drop(self, item_id: str) -> None:
        """Forget the item (it was interrupted, or its response is over)."""
        self._items.pop(item_id, None)
