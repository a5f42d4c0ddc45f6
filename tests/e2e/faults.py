"""Model faults played against a real `voicegw serve`, and what the caller heard of each.

The model is the local OpenAI-protocol server (`FakeRealtimeServer`, the one fake allowed), made
to hang its handshake, refuse it, drop once, drop for good, or stall mid-response; an agent whose
instructions raise stands for a task of ours failing. The caller is the pjsua2 caller (its own
media stack), recording everything it hears until the server's BYE. `analyse` splits that
recording into the model's tone (440 Hz), other sound (the apology's speech) and silence.

Used by tests/e2e/test_model_faults.py and scripts/faults.py (no pytest here).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tests.e2e.harness import EchoServer, run_caller
from tests.e2e.media import Pcm, read_wav, write_wav
from tests.models.fake_realtime import API_KEY, TONE_HZ, FakeRealtimeServer

FRAME_MS = 20
SOUND_RMS = 300.0
"""A frame louder than this is sound (the tone and the apology are far above; silence is 0)."""
TONE_TOLERANCE_HZ = 40.0
APOLOGY_MIN_S = 1.0
"""Non-tone sound needed to count as the apology (it lasts about 3.5 s)."""
CALL_WAIT_S = 20.0
"""How long the caller waits for the server's BYE."""


@dataclass(frozen=True)
class Fault:
    """One fault: the model's scenario and misbehaviour, the agent, how the caller behaves."""

    scenario: str
    agent: str = "tests.e2e.agents:welcomer"
    reject_status: int | None = None
    hang_handshake: bool = False
    caller_seconds: float | None = None
    """The caller hangs up after this long (None: it waits for the server's BYE)."""


FAULTS: dict[str, Fault] = {
    "handshake_hangs": Fault("greeting", hang_handshake=True),
    "handshake_refused": Fault("greeting", reject_status=503),
    "drop_once": Fault("drop_once", caller_seconds=6.0),
    "drop_for_good": Fault("dropped", agent="tests.e2e.agents:assistant"),
    "stall_mid_response": Fault("stall"),
    "task_raises": Fault("greeting", agent="tests.e2e.agents:broken"),
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
        }


CAUSE_EVENTS = ("model_fault", "agent_failed", "call_handler_failed", "session task failed")


async def play_fault(name: str, workdir: Path, *, silence_wav: Path | None = None) -> Outcome:
    """Place one call against `voicegw serve` with the model misbehaving as `FAULTS[name]` says."""
    fault = FAULTS[name]
    await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
    recording = workdir / f"{name}.wav"
    async with FakeRealtimeServer(
        fault.scenario, reject_status=fault.reject_status, hang_handshake=fault.hang_handshake
    ) as model:
        server = EchoServer(
            "voicegw",
            workdir,
            agent=fault.agent,
            env={"OPENAI_API_KEY": API_KEY, "OPENAI_BASE_URL": model.base_url},
        )
        try:
            await asyncio.to_thread(server.wait_ready)
            args = ["--record", str(recording)]
            if fault.caller_seconds is not None:
                wav = silence_wav or write_wav(
                    workdir / "silence.wav", np.zeros(int(8000 * fault.caller_seconds), np.int16), 8000
                )
                args += ["--play", str(wav), "--end", "hangup"]
            else:
                args += ["--end", "wait-bye", "--bye-timeout", str(CALL_WAIT_S)]
            report = await asyncio.to_thread(run_caller, server.uri, *args, timeout=CALL_WAIT_S + 30)
        finally:
            await asyncio.to_thread(server.stop)
        handshakes = len(model.connections) + model.refused + model.hung
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
        handshakes=handshakes,
    )
