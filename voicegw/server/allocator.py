"""The server's malloc: jemalloc, preloaded by executing the server again once at start.

On glibc's malloc the server's RSS climbs for as long as calls come and go (heap fragmentation;
docs/architecture.md, "Memory"); on jemalloc it levels off. A library can only be preloaded before
the process starts, so `voicegw serve` executes itself again with ``LD_PRELOAD`` in its
environment; processes it starts inherit it. jemalloc runs with its default options: those meant
to make RSS follow live memory more closely (``background_thread``, a shorter ``dirty_decay_ms``,
fewer arenas) made no difference the soak could see and cost CPU (docs/architecture.md, "Memory");
``MALLOC_CONF`` in the environment still sets them.
"""

from __future__ import annotations

import ctypes.util
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import structlog

ALLOCATORS = ("jemalloc", "system")
"""The values of ``[server] allocator``."""

REEXEC_MARK = "VOICEGW_ALLOCATOR_REEXEC"
"""Set in the environment of the second execution, so that a preload that failed is not retried."""

log = structlog.get_logger("voicegw.server.allocator")


@dataclass(frozen=True, slots=True)
class Reexec:
    """Execute the server again with this environment."""

    env: dict[str, str]


@dataclass(frozen=True, slots=True)
class InUse:
    """Go on in this process: the allocator in use, and why when it is not the configured one."""

    name: str
    reason: str = ""


def jemalloc_loaded(maps: str) -> bool:
    """Whether jemalloc is mapped into a process whose /proc/PID/maps is `maps`."""
    return "libjemalloc" in maps


def decide(
    configured: str, *, loaded: bool, library: str | None, environ: Mapping[str, str]
) -> Reexec | InUse:
    """What to do at start for ``[server] allocator = configured``.

    `loaded`: jemalloc is already in this process (preloaded by systemd, or by the first
    execution); `library`: the name to preload, None if jemalloc is not installed.
    """
    if loaded:
        return InUse("jemalloc", "" if configured == "jemalloc" else "preloaded by the environment")
    if configured == "system":
        return InUse("system")
    if library is None:
        return InUse("system", "libjemalloc is not installed (Debian: libjemalloc2)")
    if environ.get(REEXEC_MARK):
        return InUse("system", f"preloading {library} failed")
    preload = " ".join(filter(None, (environ.get("LD_PRELOAD", ""), library)))
    return Reexec({**environ, "LD_PRELOAD": preload, REEXEC_MARK: "1"})


def use_configured_allocator(configured: str) -> None:
    """Execute the server again on jemalloc if that is configured and not yet so (this call does
    not return then); otherwise log the allocator in use."""
    loaded = jemalloc_loaded(Path("/proc/self/maps").read_text())
    match decide(configured, loaded=loaded, library=ctypes.util.find_library("jemalloc"), environ=os.environ):
        case Reexec(env):
            sys.stdout.flush()
            sys.stderr.flush()
            os.execve(sys.executable, sys.orig_argv, env)
        case InUse("jemalloc", reason):
            conf = os.environ.get("MALLOC_CONF", "")
            log.info("allocator", allocator="jemalloc", malloc_conf=conf, reason=reason)
        case InUse(name, reason) if reason and configured == "jemalloc":
            log.warning("allocator", allocator=name, reason=reason)
        case InUse(name, _):
            log.info("allocator", allocator=name)
