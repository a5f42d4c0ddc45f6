"""A short soak: 20 echo calls kept up (re-placed as they end) for a minute and a half, then short
calls; every call succeeds, the server's descriptors are back to their baseline, its log has no
ERROR line and no traceback. Memory growth is a figure of scripts/soak.py, not asserted here.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from voicegw.testing.soak import SoakPlan, soak

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(420),
    pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp is not installed"),
]


def test_short_soak_leaves_no_descriptors_and_no_errors(tmp_path: Path) -> None:
    result = soak(SoakPlan(calls=20, minutes=1.5, call_seconds=10, short_calls=60), tmp_path, quiet=True)
    phases = {phase.name: phase for phase in result.phases}
    assert phases["long"].placed >= 20 * 8 and phases["long"].failed == 0, result
    assert phases["short"].placed == 60 and phases["short"].failed == 0, result
    assert result.calls_closed == phases["long"].placed + phases["short"].placed, result
    assert result.packets_echoed > 0.9 * result.packets_received > 0, result
    assert result.fds_back_to_baseline, result.samples
    assert (result.error_lines, result.tracebacks) == (0, 0), result.first_errors
    assert result.exited_cleanly
