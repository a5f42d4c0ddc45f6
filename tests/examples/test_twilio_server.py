"""`examples/realtime/twilio/server.py` as a user runs it: TwiML over HTTP, a call over the stream, Ctrl-C."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from tests.signals import speech
from tests.transports.test_twilio_stream import RATE, TwilioClient, eventually
from voicegw.testing.fake_realtime import API_KEY, TONE_HZ, FakeRealtimeServer, dominant_hz

SERVER = Path(__file__).resolve().parents[2] / "examples" / "realtime" / "twilio" / "server.py"
TIMEOUT_S = 15


async def http_get(port: int, path: str, host: str) -> tuple[int, str, str]:
    """A plain HTTP/1.1 GET, as Twilio's webhook request: (status, content type, body)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: TwilioProxy/1.1\r\n\r\n".encode())
        await writer.drain()
        head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT_S)).decode()
        length = int(re.search(r"(?im)^content-length:\s*(\d+)", head).group(1))  # type: ignore[union-attr]
        body = (await asyncio.wait_for(reader.readexactly(length), TIMEOUT_S)).decode()
    finally:
        writer.close()
        await writer.wait_closed()
    kind = re.search(r"(?im)^content-type:\s*(\S+)", head)
    return int(head.split()[1]), kind.group(1) if kind else "", body


@pytest.mark.timeout(60)
async def test_help() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(SERVER), "--help", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, _ = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0
    assert b"--public-host" in out and b"--port" in out and b"--model" in out


@pytest.mark.timeout(90)
async def test_twiml_a_call_and_ctrl_c(tmp_path: Path) -> None:
    question = speech(tmp_path / "question", RATE, "What time is it?")
    async with FakeRealtimeServer("conversation") as model_server:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(SERVER),
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--public-host",
            "voice.example.com",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "OPENAI_API_KEY": API_KEY, "OPENAI_BASE_URL": model_server.base_url},
        )
        try:
            assert process.stdout is not None
            line = (await asyncio.wait_for(process.stdout.readline(), TIMEOUT_S)).decode()
            match = re.search(r"\[listening\] http://127\.0\.0\.1:(\d+)/twiml", line)
            assert match, line
            port = int(match.group(1))

            status, kind, body = await http_get(port, "/twiml", f"127.0.0.1:{port}")
            assert (status, kind) == (200, "text/xml")
            assert "<Response><Connect><Stream " in body
            assert 'url="wss://voice.example.com/media-stream"' in body
            assert (await http_get(port, "/elsewhere", "x"))[0] == 404

            # Twilio opens the stream and the caller asks; the agent answers (800 ms, 440 Hz).
            async with connect(f"ws://127.0.0.1:{port}/media-stream") as ws:
                client = TwilioClient(ws)
                reader = asyncio.create_task(client.read())
                await client.begin()
                await client.say(question + bytes(RATE * 2))
                await eventually(lambda: len(client.of("media")) >= 40, "the agent's answer")
                # Ctrl-C in the middle of the call: the stream is closed, the process exits cleanly.
                process.send_signal(signal.SIGINT)
                await asyncio.wait_for(reader, TIMEOUT_S)
            out, err = await asyncio.wait_for(process.communicate(), TIMEOUT_S)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    assert process.returncode == 0, err.decode()
    assert b"Traceback" not in err, err.decode()
    text = out.decode()
    assert "[stopping]" in text and "[done] 1 call(s)" in text
    assert re.search(r"\[call CA\w+\] ended: ", text), text
    answer = client.agent_audio()
    assert abs(dominant_hz(answer[: 800 * RATE // 1000], RATE) - TONE_HZ) < 10
    assert model_server.violations == []
