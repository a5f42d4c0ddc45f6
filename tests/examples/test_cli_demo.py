"""`examples/realtime/cli/demo.py` as a user runs it: WAV in, WAV out, against the protocol server."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import numpy as np
import pytest

from voicegw.testing.fake_realtime import API_KEY, TONE_HZ, FakeRealtimeServer, dominant_hz
from voicegw.testing.harness import run_process
from voicegw.transports.wav_files import read_wav, write_wav

DEMO = Path(__file__).resolve().parents[2] / "examples" / "realtime" / "cli" / "demo.py"
RATE = 8000  # a phone-line rate: the model speaks G.711 μ-law to the server


async def run_demo(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    return await run_process(sys.executable, str(DEMO), *args, env=env, time_limit=30)


@pytest.mark.timeout(60)
async def test_help() -> None:
    code, out, _ = await run_demo("--help")
    assert code == 0
    assert "--input" in out and "--output" in out and "--base-url" in out


@pytest.mark.timeout(60)
async def test_wav_question_gets_a_wav_answer(tmp_path: Path) -> None:
    t = np.arange(RATE * 1500 // 1000) / RATE
    write_wav(tmp_path / "q.wav", (6000 * np.sin(2 * np.pi * 700 * t)).astype("<i2").tobytes(), RATE)
    async with FakeRealtimeServer("conversation") as server:
        code, out, err = await run_demo(
            "--input",
            str(tmp_path / "q.wav"),
            "--output",
            str(tmp_path / "a.wav"),
            "--fast",
            "--base-url",
            server.base_url,
            env={"OPENAI_API_KEY": API_KEY},
        )
    assert code == 0, err
    assert server.violations == []
    assert "you: What time is it?" in out and "agent: It is noon." in out
    assert "[done] caller_hung_up" in out
    session = server.connections[0].of_type("session.update")[0]["session"]
    assert session["audio"]["output"]["format"] == {"type": "audio/pcmu"}
    assert [t["name"] for t in session["tools"]] == ["get_time", "get_weather"]
    pcm, rate = read_wav(tmp_path / "a.wav")
    samples = np.frombuffer(pcm, "<i2")
    assert rate == RATE
    loud = np.flatnonzero(np.abs(samples) > 1000)
    assert abs((loud[-1] - loud[0] + 1) * 1000 / RATE - 800) <= 25  # the server's 800 ms answer
    assert abs(dominant_hz(samples[loud[0] : loud[-1]], RATE) - TONE_HZ) < 10


@pytest.mark.timeout(60)
async def test_ctrl_c_ends_cleanly(tmp_path: Path) -> None:
    t = np.arange(RATE * 3000 // 1000) / RATE
    write_wav(tmp_path / "q.wav", (6000 * np.sin(2 * np.pi * 700 * t)).astype("<i2").tobytes(), RATE)
    async with FakeRealtimeServer("conversation") as server:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(DEMO),
            "--input",
            str(tmp_path / "q.wav"),
            "--output",
            str(tmp_path / "a.wav"),
            "--base-url",
            server.base_url,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "OPENAI_API_KEY": API_KEY},
        )
        try:
            assert process.stdout is not None
            assert b"is listening" in await asyncio.wait_for(process.stdout.readline(), 10)
            await asyncio.sleep(0.5)  # in the middle of the question (real time)
            process.send_signal(signal.SIGINT)
            out, err = await asyncio.wait_for(process.communicate(), 10)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    assert process.returncode == 0, err
    assert "[stopping]" in out.decode() and "[done] closed" in out.decode()
    assert read_wav(tmp_path / "a.wav")[1] == RATE  # the answer file is written even so
