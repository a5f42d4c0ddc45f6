"""`voicegw serve --agent voicegw.testing.stuck_inference:greeter` on the embedded model, whose
LLM step never comes back: importing this module in the server makes the step wait in its pool
thread, as an inference call stuck inside a C library would. Used by voicegw/testing/faults.py;
nothing else may import it."""

import threading
from collections.abc import Iterator
from typing import Any

from voicegw.models.local.llm import LlamaCppBackend
from voicegw.testing.agents import greeter

STUCK_S = 15.0
"""Longer than the call lasts; bounded, since the server's exit waits for the pool's threads."""


def _stuck_stream(self: LlamaCppBackend, *args: Any, **kwargs: Any) -> Iterator[str]:
    threading.Event().wait(STUCK_S)
    yield from ()


LlamaCppBackend.stream = _stuck_stream  # type: ignore[method-assign]

__all__ = ["greeter"]
