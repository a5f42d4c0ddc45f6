"""Operations of a running `voicegw serve`: metrics and health over HTTP, per-call logs, transcripts
and recordings, checked during and after real calls (the pjsua2 caller, SIPp, raw SIP).

The agent is the OpenAI Realtime protocol played by the local fake server (the one fake allowed).
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from voicegw.testing.fake_realtime import API_KEY, TONE_HZ, FakeRealtimeServer, dominant_hz
from voicegw.testing.harness import EchoServer, free_udp_port, http_get, run_caller
from voicegw.testing.media import Pcm, windowed_correlation
from voicegw.testing.raw_sip import Dialog, offer_sdp

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]
RATE = 8000
WAIT_S = 20.0

PROCESS_EVENTS = {
    "serving", "sip_started", "http_started", "draining", "stopped", "sip_stopped", "pjsip", "clock_stopped",
    "apology_ready", "worker_started", "worker_ready", "worker_stopped", "allocator",
}  # fmt: skip
"""Lines about the process, not a call: the only ones allowed to carry no call id."""


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample of the exposition (0 when absent)."""
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        match = re.fullmatch(r"([a-z_]+)(?:\{(.*)\})? (\S+)", line)
        if match is None or match[1] != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match[2] or ""))
        if found == labels:
            return float(match[3])
    return 0.0


def wait_for(predicate: Any, what: str, timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def ops_config(tmp_path: Path, http_port: int, *, record: bool = True) -> str:
    return (
        f'[server]\nhttp = "127.0.0.1:{http_port}"\ntranscripts_dir = "{tmp_path / "transcripts"}"\n'
        f'record = {"true" if record else "false"}\nrecordings_dir = "{tmp_path / "recordings"}"\n'
    )


def read_stereo(path: Path) -> tuple[Pcm, Pcm, int]:
    with wave.open(str(path), "rb") as wav:
        assert wav.getnchannels() == 2 and wav.getsampwidth() == 2
        data = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
        return data[0::2], data[1::2], wav.getframerate()


async def test_agent_call_metrics_logs_transcript_and_recording(
    tmp_path: Path, speech_8k: tuple[Path, Pcm]
) -> None:
    speech_path, speech = speech_8k
    http_port = free_udp_port()
    during: dict[str, Any] = {}
    async with FakeRealtimeServer("conversation") as model:
        voicegw = EchoServer(
            "voicegw",
            tmp_path,
            agent="voicegw.testing.agents:assistant",
            config=ops_config(tmp_path, http_port),
            env={"OPENAI_API_KEY": API_KEY, "OPENAI_BASE_URL": model.base_url},
        )
        try:
            await asyncio.to_thread(voicegw.wait_ready)
            call = asyncio.create_task(
                asyncio.to_thread(
                    run_caller, voicegw.uri, "--play", str(speech_path), "--dtmf", "5", "--end", "hangup"
                )
            )

            # The call counts as active from its INVITE, but is answered only once its model is
            # known to be up: wait for both, or a slow model connect reads as a missing answer.
            def in_call() -> bool:
                text = during["metrics"] = http_get(http_port, "/metrics")[1]
                answered = metric(text, "voicegw_calls_total", outcome="answered", status="200")
                return metric(text, "voicegw_calls_active") == 1 and answered == 1

            await asyncio.to_thread(wait_for, in_call, "the call in the metrics")
            during["health"] = http_get(http_port, "/healthz")
            report = await call

            def ended() -> bool:
                during["after"] = http_get(http_port, "/metrics")[1]
                return metric(during["after"], "voicegw_calls_ended_total", reason="caller_hung_up") == 1

            await asyncio.to_thread(wait_for, ended, "the end of the call in the metrics")
            after = during["after"]
        finally:
            stopped = await asyncio.to_thread(voicegw.stop)
    assert stopped, voicegw.output()
    assert 200 in report["status_codes"], report
    status, body = during["health"]
    assert status == 200 and json.loads(body)["active_calls"] == 1

    # Metrics during and after the call.
    assert metric(during["metrics"], "voicegw_calls_total", outcome="answered", status="200") == 1
    assert metric(after, "voicegw_calls_active") == 0
    assert metric(after, "voicegw_calls_total", outcome="answered", status="200") == 1
    assert metric(after, "voicegw_call_setup_seconds_count") == 1
    # Gateway-added latency, both ways: the caller's audio reached the model's socket, and the
    # model's answer the caller's (voicegw.contracts.latency).
    for direction in ("inbound", "outbound"):
        count = metric(after, "voicegw_gateway_latency_seconds_count", direction=direction)
        total = metric(after, "voicegw_gateway_latency_seconds_sum", direction=direction)
        assert count >= 1 and 0 < total / count < 1.0, (direction, count, total)
    serving = [e for e in voicegw.log_events() if e.get("event") == "serving"]
    assert serving and serving[0]["event_loop"] == "uvloop", voicegw.output()
    assert 0 < metric(after, "voicegw_call_setup_seconds_sum") < 5
    assert metric(after, "voicegw_turn_latency_seconds_count") == 1
    assert metric(after, "voicegw_sessions_ended_total", reason="caller_hung_up") == 1
    assert metric(after, "voicegw_rtp_packets_received_total") > 100
    assert metric(after, "voicegw_rtp_packets_lost_total") == 0
    assert metric(after, "voicegw_rtp_jitter_seconds_count") == 1
    assert metric(after, "voicegw_barge_ins_total") == 0
    assert metric(after, "voicegw_model_errors_total", fatal="true") == 0

    # Every log line of the call names it (the session's and the model's too).
    events = voicegw.log_events()
    call_id = next(e["call_id"] for e in events if e.get("event") == "call_incoming")
    unnamed = [e for e in events if e.get("call_id") != call_id and e.get("event") not in PROCESS_EVENTS]
    assert unnamed == [], unnamed
    from_model = [e for e in events if str(e.get("logger", "")).startswith("voicegw.models")]
    session_lines = [e for e in events if e.get("event") in ("session_finished", "session_ended")]
    assert session_lines and all(e.get("agent") == "Assistant" for e in session_lines), session_lines
    assert all(e.get("call_id") == call_id for e in from_model)

    # The transcript: what was said, the key pressed, how it ended.
    transcripts = list((tmp_path / "transcripts").glob("*.jsonl"))
    assert len(transcripts) == 1, transcripts
    lines = [json.loads(line) for line in transcripts[0].read_text().splitlines()]
    assert all(line["call_id"] == call_id and "ts" in line and "t" in line for line in lines)
    said = [(line["type"], line.get("text")) for line in lines if line["type"] in ("user", "agent")]
    assert said == [("user", "What time is it?"), ("agent", "It is noon.")], lines
    assert [line["digit"] for line in lines if line["type"] == "dtmf"] == ["5"], lines
    assert lines[-1]["type"] == "end" and lines[-1]["reason"] == "caller_hung_up", lines[-1]
    times = [line["t"] for line in lines]
    assert times == sorted(times)

    # The recording: the caller on the left is what the caller sent; the agent's tone on the right.
    recordings = list((tmp_path / "recordings").glob("*.wav"))
    assert len(recordings) == 1, recordings
    left, right, rate = read_stereo(recordings[0])
    assert rate == RATE
    heard = windowed_correlation(speech, left, rate=RATE, max_lag=RATE)
    assert heard.mean >= 0.8, heard
    loud = np.flatnonzero(np.abs(right.astype(np.float64)) > 1500)
    assert len(loud), "no agent audio in the right channel"
    assert abs((loud[-1] - loud[0] + 1) * 1000 / rate - 800) <= 80
    assert abs(dominant_hz(right[loud[0] : loud[-1]].astype(np.float64), rate) - TONE_HZ) < 15
    # Left and right stay on one timeline: the answer comes after the caller started speaking.
    assert loud[0] > np.flatnonzero(np.abs(left.astype(np.float64)) > 1500)[0]


def test_draining_server_reports_503_and_counts_the_rejected_call(tmp_path: Path) -> None:
    http_port = free_udp_port()
    server = EchoServer("voicegw", tmp_path, config=ops_config(tmp_path, http_port, record=False))
    try:
        server.wait_ready()
        assert http_get(http_port, "/healthz")[0] == 200
        first, second = Dialog(server.port), Dialog(server.port)
        try:
            first.establish()
            active = lambda: metric(http_get(http_port, "/metrics")[1], "voicegw_calls_active")  # noqa: E731
            wait_for(lambda: active() == 1, "a call")
            server.proc.send_signal(signal.SIGTERM)  # drain: the call in progress keeps the server up
            wait_for(lambda: http_get(http_port, "/healthz")[0] == 503, "/healthz to say draining")
            assert http_get(http_port, "/health")[0] == 503
            second.invite(offer_sdp(second.local_port + 2))
            assert second.until(503).headers.get("retry-after")
            second.ack(for_error=True)
            text = http_get(http_port, "/metrics")[1]
            assert metric(text, "voicegw_calls_total", outcome="rejected", status="503") == 1
            assert metric(text, "voicegw_calls_total", outcome="answered", status="200") == 1
            first.request("BYE")
            first.until(200)
        finally:
            first.close()
            second.close()
    finally:
        stopped = server.stop()
    assert stopped, server.output()


async def agent_call(
    tmp_path: Path, scenario: str, agent: str, *caller_args: str
) -> tuple[EchoServer, FakeRealtimeServer, str]:
    """One pjsua2 call to `voicegw serve --agent` on the fake model; the server's metrics after it."""
    http_port = free_udp_port()
    async with FakeRealtimeServer(scenario) as model:
        voicegw = EchoServer(
            "voicegw",
            tmp_path,
            agent=agent,
            config=ops_config(tmp_path, http_port, record=False),
            env={"OPENAI_API_KEY": API_KEY, "OPENAI_BASE_URL": model.base_url},
        )
        try:
            await asyncio.to_thread(voicegw.wait_ready)
            await asyncio.to_thread(run_caller, voicegw.uri, *caller_args)
            seen: list[str] = []

            def session_over() -> bool:
                seen[:] = [http_get(http_port, "/metrics")[1]]
                # A call stops being active when it ends, and is counted in calls_ended once its
                # media closed (`CallObserver.call_ended`): wait for both.
                ended = all(
                    f"{name}{{" in seen[0]
                    for name in ("voicegw_sessions_ended_total", "voicegw_calls_ended_total")
                )
                return ended and metric(seen[0], "voicegw_calls_active") == 0

            await asyncio.to_thread(wait_for, session_over, "the end of the session in the metrics")
        finally:
            stopped = await asyncio.to_thread(voicegw.stop)
    assert stopped, voicegw.output()
    return voicegw, model, seen[0]


def transcript_lines(tmp_path: Path) -> list[dict[str, Any]]:
    paths = list((tmp_path / "transcripts").glob("*.jsonl"))
    assert len(paths) == 1, paths
    return [json.loads(line) for line in paths[0].read_text().splitlines()]


async def test_barge_in_is_counted_and_the_transcript_holds_what_was_heard(
    tmp_path: Path, speech_8k: tuple[Path, Pcm]
) -> None:
    _, model, after = await agent_call(
        tmp_path,
        "barge_in",
        "voicegw.testing.agents:welcomer",
        "--play",
        str(speech_8k[0]),
        "--end",
        "hangup",
    )
    assert model.violations == [], model.violations
    assert metric(after, "voicegw_barge_ins_total") == 1
    assert metric(after, "voicegw_model_errors_total", fatal="true") == 0
    lines = transcript_lines(tmp_path)
    agent = [line for line in lines if line["type"] == "agent"]
    interrupted = [line for line in lines if line["type"] == "interrupted"]
    assert len(agent) == 1 and agent[0]["status"] == "incomplete", lines
    assert len(interrupted) == 1 and interrupted[0]["item_id"] == agent[0]["item_id"], lines
    assert 0 < interrupted[0]["played_ms"] < 3000


async def test_model_log_lines_name_the_call_and_its_failure_is_counted(tmp_path: Path) -> None:
    voicegw, _, after = await agent_call(
        tmp_path, "dropped", "voicegw.testing.agents:assistant", "--end", "wait-bye"
    )
    events = voicegw.log_events()
    call_id = next(e["call_id"] for e in events if e.get("event") == "call_incoming")
    # openai.py's logger knows nothing of calls: the call id comes from the call task's context.
    lost_events = ("model_connection_lost", "model_reconnect_failed", "reconnected")
    lost = [e for e in events if e.get("event") in lost_events]
    assert lost and all(e.get("call_id") == call_id and e.get("agent") == "Assistant" for e in lost), lost
    assert metric(after, "voicegw_model_errors_total", fatal="true") == 1
    assert metric(after, "voicegw_sessions_ended_total", reason="error") == 1
    # Lost for good: the caller hears the apology, then the server hangs up (not a silent BYE).
    assert metric(after, "voicegw_calls_ended_total", reason="model_failed") == 1
    assert metric(after, "voicegw_model_faults_total", cause="model_lost") == 1
    assert transcript_lines(tmp_path)[-1]["reason"] == "error"
