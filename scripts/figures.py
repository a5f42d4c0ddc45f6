"""The benchmark scripts' ``--markdown`` output: a table, the machine it was measured on, how
busy that machine was, and the command that reproduces it (the README's Figures section is
pasted from it).

Imported by the scripts beside it (their folder is first on ``sys.path`` when they run).
"""

from __future__ import annotations

import contextlib
import os
import platform
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine() -> str:
    """Cores, CPU model, system and Python, in one line."""
    return (
        f"{os.cpu_count()} cores, {cpu_model()}, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def load() -> str:
    """The load average: figures taken on a busy machine say so."""
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (1 min), {five:.1f} (5 min) on {os.cpu_count()} cores at the end"


def command() -> str:
    """The command line that produced these figures, as run from the repository's root."""
    script = Path(sys.argv[0]).resolve()
    with contextlib.suppress(ValueError):  # run from elsewhere: the absolute path
        script = script.relative_to(Path.cwd())
    return shlex.join([".venv/bin/python", str(script), *sys.argv[1:]])


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def print_markdown(
    title: str, header: Sequence[str], rows: Sequence[Sequence[str]], notes: Sequence[str] = ()
) -> None:
    """Print one figures table with its title, notes, machine and command."""
    print(f"\n### {title}\n")
    print(markdown_table(header, rows))
    print()
    for note in notes:
        print(f"{note}  ")
    print(f"Measured on {machine()}; {load()}.  ")
    print(f"Reproduce: `{command()}`")
