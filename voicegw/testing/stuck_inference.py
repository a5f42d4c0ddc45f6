"""`voicegw serve --agent voicegw.testing.stuck_inference:greeter` on the embedded model, whose
LLM blocks for good inside llama.cpp: importing this module in the server makes `Llama.eval`,
within an answer's step (not the warm-up), wait in its pool thread as a C call stuck on a lock
would (`voicegw.testing.spinning_inference`: computes without end instead). Used by
voicegw/testing/faults.py; nothing else may import it."""

import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import llama_cpp

from voicegw.models.local.llm import LlamaCppBackend
from voicegw.testing.agents import greeter

STUCK_S = 15.0
"""Longer than the call lasts; bounded, since the server's exit waits for the pool's threads."""

_answering = threading.local()
_stream = LlamaCppBackend.stream
_eval = llama_cpp.Llama.eval


def _answer(self: LlamaCppBackend, *args: Any, **kwargs: Any) -> Iterator[str]:
    _answering.on = True
    try:
        yield from _stream(self, *args, **kwargs)
    finally:
        _answering.on = False


def block(self: llama_cpp.Llama, tokens: Sequence[int]) -> None:
    """Within an answer, block without using the processor."""
    if getattr(_answering, "on", False):
        threading.Event().wait(STUCK_S)
    _eval(self, tokens)


def spin(self: llama_cpp.Llama, tokens: Sequence[int]) -> None:
    """Within an answer, compute without end (and without producing anything)."""
    if getattr(_answering, "on", False):
        until = time.monotonic() + STUCK_S
        while time.monotonic() < until:
            sum(range(10_000))
    _eval(self, tokens)


LlamaCppBackend.stream = _answer  # type: ignore[method-assign]
llama_cpp.Llama.eval = block  # type: ignore[method-assign]

__all__ = ["greeter"]
