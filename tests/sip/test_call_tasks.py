"""`spawn_for_call`: a call's tasks are kept until done, and one that fails says so, naming the call."""

from __future__ import annotations

import asyncio

from structlog.testing import capture_logs

from voicegw.contracts.transport import CallInfo
from voicegw.sip.call import SipCall, spawn_for_call


def _call() -> SipCall:
    info = CallInfo("call-7@test", "sip:a@test", "sip:echo@test", ("127.0.0.1", 5060))
    return SipCall(info, hang_up=lambda status, detail: None, transfer=print)


async def test_a_failing_task_logs_an_error_naming_the_call_and_the_task() -> None:
    tasks: set[asyncio.Task[object]] = set()

    async def broken() -> None:
        raise ValueError("argument out of range")

    async def forever() -> None:
        await asyncio.Event().wait()

    with capture_logs() as logs:
        call = _call()
        failed = spawn_for_call(broken(), call, tasks, "end")
        cancelled = spawn_for_call(forever(), call, tasks, "call")
        await asyncio.sleep(0)
        cancelled.cancel()
        await asyncio.gather(failed, cancelled, return_exceptions=True)
    assert tasks == set()
    errors = [e for e in logs if e["log_level"] == "error"]
    named = [(e["event"], e["task"], e["call_id"]) for e in errors]
    assert named == [("call_task_failed", "end", "call-7@test")]
    assert isinstance(errors[0]["exc_info"], ValueError)
