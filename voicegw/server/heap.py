"""The cyclic garbage collector in a process that runs calls.

A call leaves reference cycles behind (an RTP endpoint and its sockets' protocols, a call and its
tasks, futures and queues), which only the cyclic collector frees. Its oldest generation is
collected when it has grown by a quarter, and start-up leaves some 80,000 long-lived objects
(modules, numpy, codecs, models, configuration): a worker's ended calls piled up for minutes
between two full collections, and RSS grew with them (`scripts/soak.py`, docs/architecture.md
"Memory"). Frozen after start-up, those objects are no longer scanned nor counted: a full
collection comes after a few hundred ended calls' objects and scans little more than those.
"""

from __future__ import annotations

import gc


def freeze_start_up() -> int:
    """Collect what start-up left, then move every live object to the permanent generation;
    the number moved (for the log)."""
    gc.collect()
    gc.freeze()
    # The collector sizes the next full collection by the objects the last one left in the
    # oldest generation: the start-up's, until a collection finds that generation empty.
    gc.collect()
    return gc.get_freeze_count()
