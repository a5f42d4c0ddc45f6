"""Conventions the whole package keeps, checked on its source: log event names, shared constants.

Log lines are JSON whose ``event`` field tests, dashboards and alerts select on: every event
name is a snake_case constant, so it can be grepped for and never changes with its wording.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "voicegw"
LEVELS = {"debug", "info", "warning", "error", "exception", "critical", "msg"}
SNAKE_CASE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")


def _log_calls(tree: ast.AST) -> list[tuple[int, ast.expr]]:
    """(line, event argument) of every call like ``log.info(event, ...)`` on a logger."""
    calls = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in LEVELS
            and "log" in ast.unparse(node.func.value).lower()
            and node.args
        ):
            calls.append((node.lineno, node.args[0]))
    return calls


def _bad_event_names(source: str) -> list[str]:
    bad = []
    for line, event in _log_calls(ast.parse(source)):
        if not (isinstance(event, ast.Constant) and isinstance(event.value, str)):
            bad.append(f"{line}: {ast.unparse(event)} (not a constant)")
        elif not SNAKE_CASE.match(event.value):
            bad.append(f"{line}: {event.value!r}")
    return bad


def test_every_log_event_name_is_a_snake_case_constant() -> None:
    bad = {
        str(path.relative_to(PACKAGE)): names
        for path in sorted(PACKAGE.rglob("*.py"))
        if (names := _bad_event_names(path.read_text()))
    }
    assert bad == {}


def test_the_check_sees_prose_and_built_names() -> None:
    source = (
        'log.info("call_answered", codec="PCMU")\n'
        'self._log.warning("session error", error=message)\n'
        'call.log.info(f"dtmf {digit}")\n'
        'logger.debug("ok")\n'
        'counter.info("not a logger")\n'
    )
    assert _bad_event_names(source) == ["2: 'session error'", "3: f'dtmf {digit}' (not a constant)"]


def test_frame_and_sample_sizes_are_defined_once() -> None:
    definitions = [
        f"{path.relative_to(PACKAGE)}: {name}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for name in re.findall(r"^(FRAME_MS|BYTES_PER_SAMPLE)\s*=", path.read_text(), re.M)
    ]
    assert definitions == ["audio/format.py: FRAME_MS", "audio/format.py: BYTES_PER_SAMPLE"]
