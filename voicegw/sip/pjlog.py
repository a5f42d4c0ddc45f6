"""pjsip's own log lines, routed into structlog instead of pjsip's console writer.

pjsip logs from the thread that drives it (ours, the event loop's), so writing to structlog
here is safe. Its levels (1 error .. 6 trace) map one step lower onto stdlib levels: pjsip's
"errors" are mostly a peer's bad request (a 488 it answered itself), and its level 3 and up is
per-message chatter, DEBUG.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator

import pjsua2 as pj
import structlog

PJ_LOG_DECOR = 0
"""No pjsip time/thread decoration: structlog stamps the time itself."""

_LEVELS = {0: logging.WARNING, 1: logging.WARNING, 2: logging.INFO}

log = structlog.get_logger("pjsip")


def stdlib_level(pj_level: int) -> int:
    """The stdlib logging level for a pjsip log level."""
    return _LEVELS.get(pj_level, logging.DEBUG)


class PjLogWriter(pj.LogWriter):
    """Hands each pjsip log entry to structlog; the caller keeps it referenced until libDestroy."""

    def write(self, entry: pj.LogEntry) -> None:
        try:
            log.log(stdlib_level(entry.level), "pjsip", pj_level=entry.level, message=entry.msg.rstrip())
        except Exception:  # never raise into C++
            return


def configure(log_config: pj.LogConfig, writer: PjLogWriter, level: int) -> None:
    """Route pjsip's log at `level` (0 = off, 1 errors .. 5 SIP messages) to `writer`."""
    log_config.writer = writer
    log_config.level = level
    log_config.consoleLevel = level
    log_config.decor = PJ_LOG_DECOR
    log_config.msgLogging = level >= 5


@contextlib.contextmanager
def console_silenced() -> Iterator[None]:
    """Mute stdout and stderr (the file descriptors) around `Endpoint.libCreate`.

    pjsua2 offers no log setting before libCreate, which prints half a dozen lines to stdout at
    pjlib's default level; our writer takes over at libInit. Only this brief call is muted.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 1)
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        for fd, copy in zip((1, 2), saved, strict=True):
            os.dup2(copy, fd)
            os.close(copy)
