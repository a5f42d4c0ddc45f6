"""The pjsua2 of scripts/build_pjsua2.sh: pjproject 2.17, its assertions logged instead of aborting."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.timeout(60)

# pjsua_transport_close() opens with PJ_ASSERT_RETURN on the transport id: a debug build of
# pjsip aborts the process there, ours logs it and returns PJ_EINVAL (pjsua2 raises pj.Error).
PROBE = """
import pjsua2 as pj
ep = pj.Endpoint()
ep.libCreate()
cfg = pj.EpConfig()
cfg.uaConfig.threadCnt = 0
cfg.uaConfig.mainThreadOnly = True
cfg.logConfig.level = cfg.logConfig.consoleLevel = 1
ep.libInit(cfg)
print("version", ep.libVersion().full, flush=True)
try:
    ep.transportClose(9999)
except pj.Error as exc:
    print("refused", exc.status, flush=True)
ep.libDestroy()
"""
PJ_EINVAL = 70004


def test_a_failed_pjsip_assertion_is_logged_and_the_call_refused_and_the_process_lives() -> None:
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "version 2.17" in result.stdout
    assert f"refused {PJ_EINVAL}" in result.stdout
    assert "Assert failed" in result.stdout + result.stderr
