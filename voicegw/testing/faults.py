"""Model faults played against a real `voicegw serve`, and what the caller heard of each.

The model is the local OpenAI-protocol server (`FakeRealtimeServer`, the one fake allowed), made
to hang its handshake, refuse it, drop once, drop for good, or stall mid-response; an agent whose
instructions raise stands for a task of ours failing; and the embedded model with its LLM step
stuck inside llama.cpp, blocked (`voicegw/testing/stuck_inference.py`) or computing without end
(`voicegw/testing/spinning_inference.py`). The caller is the pjsua2 caller (its own
media stack), recording everything it hears until the server's BYE. `analyse` splits that
recording into the model's tone (440 Hz), other sound (the apology's speech) and silence.

Beyond the model: a caller that vanishes (SIGKILL, no BYE) and SIGTERM with calls up, on the echo.
Used by tests/e2e/test_model_faults.py and scripts/faults.py (no pytest here).
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from voicegw.audio.format import FRAME_MS
from voicegw.testing.fake_realtime import TONE_HZ, FakeRealtimeServer
from voicegw.testing.harness import (
    CALLER,
    ROOT,
    START_TIMEOUT,
    EchoServer,
    free_tcp_port,
    http_get,
    openai_agent_server,
    run_caller,
)
from voicegw.testing.media import Pcm, read_wav, write_wav

T = TypeVar("T")
Event = dict[str, Any]
"""One line of the server's JSON log."""

SOUND_RMS = 300.0
"""A frame louder than this is sound (the tone and the apology are far above; silence is 0)."""
TONE_TOLERANCE_HZ = 40.0
APOLOGY_MIN_S = 1.0
"""Non-tone sound needed to count as the apology (it lasts about 3.5 s)."""
CALL_WAIT_S = 20.0
"""How long the caller waits for the server's BYE."""
LOCAL_START_S = 120.0
"""A server on the embedded model loads Whisper, the LLM and Piper before it is ready."""


@dataclass(frozen=True)
class Fault:
    """One fault: the model's scenario and misbehaviour, the agent, how the caller behaves."""

    scenario: str
    agent: str = "voicegw.testing.agents:welcomer"
    reject_status: int | None = None
    hang_handshake: bool = False
    caller_seconds: float | None = None
    """The caller hangs up after this long (None: it waits for the server's BYE)."""
    local: bool = False
    """The embedded model instead of the OpenAI protocol (`scenario` unused). Its server reads
    the agent's prompt before it serves, so the call's silence is the fault's alone."""
    in_process: bool = False
    """The calls run in the server's own process (``workers = 0``), where nothing replaces a
    stuck model: its ``/health`` is read after the call instead."""


FAULTS: dict[str, Fault] = {
    "handshake_hangs": Fault("greeting", hang_handshake=True),
    "handshake_refused": Fault("greeting", reject_status=503),
    "drop_once": Fault("drop_once", caller_seconds=6.0),
    "drop_for_good": Fault("dropped", agent="voicegw.testing.agents:assistant"),
    "stall_mid_response": Fault("stall"),
    "task_raises": Fault("greeting", agent="voicegw.testing.agents:broken"),
    "local_inference_hangs": Fault("", agent="voicegw.testing.stuck_inference:greeter", local=True),
    "local_inference_spins": Fault("", agent="voicegw.testing.spinning_inference:greeter", local=True),
    "local_inference_hangs_in_process": Fault(
        "", agent="voicegw.testing.stuck_inference:greeter", local=True, in_process=True
    ),
}


@dataclass(frozen=True)
class Heard:
    """What the caller heard of a call, from its recording (20 ms frames)."""

    tone_s: float
    """The model's audio (the fake's 440 Hz tone)."""
    other_s: float
    """Other sound: the apology."""
    longest_silence_s: float
    """The longest stretch with nothing at all: dead air."""
    duration_s: float

    @property
    def apology(self) -> bool:
        return self.other_s >= APOLOGY_MIN_S


def analyse(pcm: Pcm, rate: int) -> Heard:
    """Classify each 20 ms frame of a recording as tone, other sound or silence."""
    size = rate * FRAME_MS // 1000
    kinds = []
    for start in range(0, len(pcm) - size + 1, size):
        frame = pcm[start : start + size].astype(np.float64)
        if np.sqrt(np.mean(frame**2)) < SOUND_RMS:
            kinds.append("silence")
            continue
        spectrum = np.abs(np.fft.rfft(frame * np.hanning(size), n=4 * size))
        peak = float(np.fft.rfftfreq(4 * size, 1 / rate)[int(np.argmax(spectrum))])
        kinds.append("tone" if abs(peak - TONE_HZ) < TONE_TOLERANCE_HZ else "other")
    longest = run = 0
    for kind in kinds:
        run = run + 1 if kind == "silence" else 0
        longest = max(longest, run)
    seconds = FRAME_MS / 1000
    return Heard(
        tone_s=kinds.count("tone") * seconds,
        other_s=kinds.count("other") * seconds,
        longest_silence_s=longest * seconds,
        duration_s=len(kinds) * seconds,
    )


@dataclass
class Outcome:
    """One fault's call: the SIP outcome, what was heard, the server's log line about it."""

    name: str
    answered: bool
    status_codes: list[int]
    heard: Heard | None
    ended_after_answer_s: float | None
    """From the 200 OK to the BYE (either side's)."""
    log: list[dict[str, Any]] = field(default_factory=list)
    """The server's lines naming the cause (``model_fault``, errors)."""
    errors: list[dict[str, Any]] = field(default_factory=list)
    """The server's ERROR lines."""
    handshakes: int = 0
    restarted_worker: bool | None = None
    """The embedded model's faults: the worker whose model stuck retired once its call ended,
    and a new one took its place (None: not looked at)."""
    health_after: dict[str, Any] | None = None
    """Without workers: ``GET /health`` once the call ended, its JSON body with ``http_status``
    (None: not looked at)."""

    def summary(self) -> dict[str, Any]:
        heard = self.heard
        return {
            "fault": self.name,
            "answered": self.answered,
            "final_status": self.status_codes[-1] if self.status_codes else None,
            "tone_heard_s": heard.tone_s if heard else 0.0,
            "longest_silence_s": heard.longest_silence_s if heard else None,
            "apology": heard.apology if heard else False,
            "ended_after_answer_s": self.ended_after_answer_s,
            "log": [{k: e.get(k) for k in ("event", "cause", "detail", "level")} for e in self.log],
            "error_lines": len(self.errors),
            "restarted_worker": self.restarted_worker,
            "health_after": self.health_after,
        }


CAUSE_EVENTS = ("model_fault", "agent_failed", "call_handler_failed", "session task failed")


async def play_fault(name: str, workdir: Path) -> Outcome:
    """Place one call against `voicegw serve` with the model misbehaving as `FAULTS[name]` says."""
    fault = FAULTS[name]
    await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
    if fault.local:
        config = '[model]\nname = "local"\n'
        health_port = free_tcp_port() if fault.in_process else None
        if health_port is not None:
            config += f'[server]\nworkers = 0\nhttp = "127.0.0.1:{health_port}"\n'
        server = EchoServer("voicegw", workdir, agent=fault.agent, config=config)
        return await _call(name, fault, server, workdir, LOCAL_START_S, health_port)
    async with FakeRealtimeServer(
        fault.scenario, reject_status=fault.reject_status, hang_handshake=fault.hang_handshake
    ) as model:
        server = openai_agent_server(workdir, fault.agent, model.base_url)
        outcome = await _call(name, fault, server, workdir, START_TIMEOUT)
        outcome.handshakes = len(model.connections) + model.refused + model.hung
    return outcome


async def _call(
    name: str,
    fault: Fault,
    server: EchoServer,
    workdir: Path,
    start_timeout: float,
    health_port: int | None = None,
) -> Outcome:
    """The pjsua2 caller's call to `server` (stopped after it), and what it heard."""
    recording = workdir / f"{name}.wav"
    restarted: bool | None = None
    health: dict[str, Any] | None = None
    try:
        await asyncio.to_thread(server.wait_ready, start_timeout)
        args = ["--record", str(recording)]
        if fault.caller_seconds is not None:
            args += ["--play", str(silence_wav(workdir, fault.caller_seconds)), "--end", "hangup"]
        else:
            args += ["--end", "wait-bye", "--bye-timeout", str(CALL_WAIT_S)]
        report = await asyncio.to_thread(run_caller, server.uri, *args, timeout=CALL_WAIT_S + 30)
        if health_port is not None:
            status, body = await asyncio.to_thread(http_get, health_port, "/health")
            health = {"http_status": status, **json.loads(body)}
        elif fault.local:
            restarted = await asyncio.to_thread(_worker_replaced, server, LOCAL_START_S)
    finally:
        await asyncio.to_thread(server.stop)
    events = server.log_events()
    heard = analyse(*read_wav(recording)) if report["answered"] and recording.exists() else None
    ended = None
    if report["answered"]:
        ended = round(report.get("bye_after_s", report["duration_s"]) - report["setup_ms"] / 1000, 2)
    return Outcome(
        name,
        bool(report["answered"]),
        list(report["status_codes"]),
        heard,
        ended,
        log=[e for e in events if e.get("event") in CAUSE_EVENTS],
        errors=[e for e in events if e.get("level") in ("error", "critical")],
        restarted_worker=restarted,
        health_after=health,
    )


def _event_time(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(str(event["timestamp"])).timestamp()


def caller_vanishes(workdir: Path, media_timeout: float) -> dict[str, Any]:
    """A caller killed mid-call (SIGKILL: no BYE) on the echo: when does the server end the call?"""
    workdir.mkdir(parents=True, exist_ok=True)
    server = EchoServer("voicegw", workdir, media_timeout=media_timeout)
    try:
        server.wait_ready()
        caller = subprocess.Popen(
            [sys.executable, str(CALLER), server.uri, "--end", "wait-bye", "--bye-timeout", "60"],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        answered = _wait_for(server, "call_answered", CALL_WAIT_S)
        time.sleep(1.0)
        killed_at = time.time()
        caller.kill()
        caller.wait()
        # Our BYE to a caller that is gone is retransmitted until pjsip gives up: the call's
        # record ends later than the hang-up, which is when the media timeout fires.
        ended = _wait_for(server, "call_ended", media_timeout + CALL_WAIT_S)
        hung_up = _wait_for(server, "media_timeout", 0)
    finally:
        stopped = server.stop()
    events = server.log_events()
    return {
        "fault": "caller_vanishes",
        "answered": answered is not None,
        "media_timeout_s": media_timeout,
        "hung_up_after_kill_s": round(_event_time(hung_up) - killed_at, 2) if hung_up else None,
        "ended_after_kill_s": round(_event_time(ended) - killed_at, 2) if ended else None,
        "end_reason": ended.get("reason") if ended else None,
        "log": [e.get("event") for e in events if e.get("event") == "media_timeout"],
        "error_lines": sum(1 for e in events if e.get("level") in ("error", "critical")),
        "exited_cleanly": stopped,
    }


def sigterm_with_live_calls(workdir: Path, calls: int, call_seconds: float) -> dict[str, Any]:
    """SIGTERM while `calls` echo calls are up: do they finish, is a new INVITE refused, exit 0?"""
    from voicegw.testing.raw_sip import Dialog, offer_sdp

    workdir.mkdir(parents=True, exist_ok=True)
    server = EchoServer("voicegw", workdir, max_calls=calls + 5)
    callers = []
    try:
        server.wait_ready()
        callers = [
            subprocess.Popen(
                [sys.executable, str(CALLER), server.uri, "--play", str(silence_wav(workdir, call_seconds))],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            for _ in range(calls)
        ]
        deadline = time.monotonic() + CALL_WAIT_S
        while (
            len(server.media_stats()) + _count(server, "call_answered") < calls
            and time.monotonic() < deadline
        ):
            time.sleep(0.2)
        signalled_at = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        late = Dialog(server.port)
        try:
            late.invite(offer_sdp(late.local_port + 2))
            refusal = late.until(503)
            late.ack(for_error=True)
        finally:
            late.close()
        reports = [json.loads(c.communicate(timeout=call_seconds + 30)[0].splitlines()[-1]) for c in callers]
        exit_code = server.proc.wait(timeout=call_seconds + 30)
        exited_after = time.monotonic() - signalled_at
    finally:
        for caller in callers:
            if caller.poll() is None:
                caller.kill()
        server.stop()
    ended = [e for e in server.log_events() if e.get("event") == "call_ended"]
    return {
        "fault": "sigterm_with_live_calls",
        "calls": calls,
        "finished_by_caller": sum(1 for e in ended if e.get("reason") == "caller hung up"),
        "all_played": all(r.get("played") for r in reports),
        "late_invite": f"{refusal.status} Retry-After: {refusal.headers.get('retry-after')}",
        "exit_code": exit_code,
        "exited_after_s": round(exited_after, 1),
    }


def silence_wav(workdir: Path, seconds: float) -> Path:
    """A WAV of `seconds` of silence for the pjsua2 caller to play (8 kHz)."""
    return write_wav(workdir / f"silence-{seconds:g}.wav", np.zeros(int(8000 * seconds), np.int16), 8000)


def _count(server: EchoServer, event: str) -> int:
    return sum(1 for e in server.log_events() if e.get("event") == event)


def _worker_replaced(server: EchoServer, timeout: float) -> bool:
    """A worker retired itself (`worker_retired`) and a new one started in its place."""

    def replaced(events: list[Event]) -> bool | None:
        retired = next((i for i, e in enumerate(events) if e.get("event") == "worker_retired"), None)
        if retired is None:
            return None
        worker = events[retired].get("worker")
        started = (e.get("event") == "worker_started" and e.get("worker") == worker for e in events[retired:])
        return True if any(started) else None

    return _log_until(server, replaced, timeout) is not None


def _wait_for(server: EchoServer, event: str, timeout: float) -> dict[str, Any] | None:
    """The first `event` line of the server's log, waited for."""

    def first(events: list[Event]) -> Event | None:
        return next((e for e in events if e.get("event") == event), None)

    return _log_until(server, first, timeout)


def _log_until(server: EchoServer, found: Callable[[list[Event]], T | None], timeout: float) -> T | None:
    """What `found` finds in the server's log lines, read again until it finds something."""
    deadline = time.monotonic() + timeout
    while (result := found(server.log_events())) is None:
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.2)
    return result
