"""`voicegw serve --agent voicegw.testing.spinning_inference:greeter` on the embedded model, whose
LLM computes without end inside llama.cpp and produces nothing (`voicegw.testing.stuck_inference`
blocks instead). Used by voicegw/testing/faults.py; nothing else may import it."""

import llama_cpp

from voicegw.testing import stuck_inference

llama_cpp.Llama.eval = stuck_inference.spin  # type: ignore[method-assign]
greeter = stuck_inference.greeter

__all__ = ["greeter"]
