"""`examples/realtime/app/server.py` in a real browser: headless Chromium talks to the agent over WebRTC.

Chromium's fake microphone plays a question synthesized by espeak-ng; the page's WebRTC goes to
the example server, whose agent runs on the OpenAI Realtime protocol played by the local test
server (the one fake allowed), with a scenario that answers through the `get_weather` tool. The
page must show both sides of the conversation, the tool call and the answer's latency, and count
the agent's audio packets arriving.

The body runs in a network namespace of its own with only the loopback interface (re-executed
under ``unshare -n``), so every ICE candidate is 127.0.0.1 and nothing leaves the machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import numpy as np
import pytest

from tests.examples.cdp import Cdp, chromium, wait_until
from tests.signals import speech
from voicegw.testing.fake_realtime import API_KEY, FakeRealtimeServer
from voicegw.testing.media import write_wav

ROOT = Path(__file__).resolve().parents[2]
SERVER = ROOT / "examples" / "realtime" / "app" / "server.py"
ARTIFACTS = ROOT / "test-artifacts"
INSIDE_NAMESPACE = "VOICEGW_TEST_LOOPBACK_NAMESPACE"
QUESTION = "What is the weather in Paris?"
ANSWER = "It is sunny in Paris."
RATE = 48000
SERVER_ADDRESS = "127.0.0.2"
TRANSCRIPT = "document.getElementById('transcript')"
ENERGY = "document.getElementById('rx-energy')"
MIN_ANSWER_ENERGY = 0.005
"""WebRTC's totalAudioEnergy of the answer: about 0.02 for the scenario's 600 ms tone, 0 for silence."""

pytestmark = pytest.mark.timeout(240)


class AppServer:
    """The example server as a subprocess; its stdout lines as they come."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []
        self._new_line = asyncio.Condition()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for raw in self.process.stdout:
            async with self._new_line:
                self.lines.append(raw.decode().rstrip("\n"))
                self._new_line.notify_all()

    async def wait_line(self, pattern: str, within: float = 20.0) -> re.Match[str]:
        """The first stdout line matching `pattern` (waiting for it)."""

        def find() -> re.Match[str] | None:
            return next((m for line in self.lines if (m := re.search(pattern, line))), None)

        async with self._new_line:
            await asyncio.wait_for(self._new_line.wait_for(find), within)
        match = find()
        assert match is not None
        return match

    def output(self) -> str:
        return "\n".join(self.lines)


@contextlib.asynccontextmanager
async def app_server(base_url: str) -> AsyncIterator[AppServer]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(SERVER),
        "--port",
        "0",
        stdout=asyncio.subprocess.PIPE,
        stderr=None,  # the server's warnings go to the test's output
        env={**os.environ, "OPENAI_API_KEY": API_KEY, "OPENAI_BASE_URL": base_url},
    )
    server = AppServer(process)
    try:
        yield server
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await asyncio.gather(server._reader, return_exceptions=True)


async def test_help() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(SERVER), "--help", stdout=asyncio.subprocess.PIPE
    )
    out, _ = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0
    assert b"--port" in out and b"--model" in out and b"--base-url" in out


async def test_talk_to_the_agent_in_chromium(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    if os.environ.get(INSIDE_NAMESPACE) != "1":
        await rerun_in_loopback_namespace(request.node.nodeid)
        return
    interfaces = [name for _, name in socket.if_nameindex()]
    assert interfaces == ["lo"], f"not in a loopback-only network namespace: {interfaces}"

    spoken = np.frombuffer(speech(tmp_path / "question", RATE, QUESTION), "<i2")
    # Chromium's fake microphone loops the file: the question, then a pause the model hears as the end.
    question = write_wav(tmp_path / "question.wav", np.concatenate([spoken, np.zeros(3 * RATE, "<i2")]), RATE)

    async with FakeRealtimeServer("spoken_tool_call") as model, app_server(model.base_url) as app:
        port = (await app.wait_line(r"listening on http://127\.0\.0\.1:(\d+)/")).group(1)
        async with chromium(
            tmp_path / "chromium", f"--use-file-for-fake-audio-capture={question}"
        ) as browser:
            page = await browser.open(f"http://127.0.0.1:{port}/")
            await page.evaluate("document.getElementById('talk').click()")
            try:
                await wait_until(
                    page, f"document.getElementById('transcript').innerText.includes({ANSWER!r})", 40
                )
                # The answer's audio: 600 ms of tone are 30 packets; count them arriving.
                await wait_until(page, "Number(document.getElementById('rx-packets').textContent) > 60", 10)
            finally:
                ARTIFACTS.mkdir(exist_ok=True)
                await page.screenshot(ARTIFACTS / "webrtc_app.png")
            shown = await page_state(page)
            await page.evaluate("document.getElementById('hangup').click()")
            await app.wait_line(r"ended: caller_hung_up", 20)
            await page.close()
        app.process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(app.process.wait(), 20) == 0, app.output()

    assert model.violations == [], model.violations
    assert model.connections[0].input_ms() >= 1200  # the browser's microphone reached the model

    transcript = shown["transcript"]
    assert ["You", QUESTION] in transcript, transcript
    assert ["Agent", ANSWER] in transcript, transcript
    assert ["Tool", 'get_weather({"city": "Paris"}) → sunny, 21 °C'] in transcript, transcript
    assert re.fullmatch(r"answered in \d+ ms", shown["latency"]), shown
    assert float(shown["energy"]) > MIN_ANSWER_ENERGY and int(shown["rx_packets"]) > 50, shown
    assert int(shown["tx_packets"]) > 50, shown
    assert shown["connection"] == "connected", shown
    assert "[stopping]" in app.output()


async def page_state(page: Cdp) -> dict[str, object]:
    """What the page shows: transcript lines as [who, text], the stats."""
    return await page.evaluate(
        """(() => ({
            transcript: [...document.querySelectorAll('#transcript li')].map(
                (li) => [li.querySelector('.who').textContent, li.querySelector('.text').textContent]),
            latency: (document.querySelector('#transcript li.agent .latency') || {}).textContent,
            rx_packets: document.getElementById('rx-packets').textContent,
            energy: document.getElementById('rx-energy').textContent,
            tx_packets: document.getElementById('tx-packets').textContent,
            connection: document.getElementById('connection-state').textContent,
        }))()"""
    )


async def rerun_in_loopback_namespace(nodeid: str) -> None:
    """Run this test again inside ``unshare -n`` with the loopback interface up; fail if it fails."""
    if os.geteuid() != 0:
        pytest.fail("the browser test creates a network namespace: run it as root")
    for tool in ("unshare", "ip"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing (util-linux, iproute2)")
    process = await asyncio.create_subprocess_exec(
        "unshare",
        "-n",
        "--",
        "sh",
        "-c",
        # aioice never offers 127.0.0.1 as a host candidate: a second loopback address it does offer.
        f"ip link set lo up && ip addr add {SERVER_ADDRESS}/32 dev lo && "
        'exec "$0" -m pytest -q -p no:cacheprovider "$1"',
        sys.executable,
        nodeid,
        cwd=ROOT,
        env={**os.environ, INSIDE_NAMESPACE: "1"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(process.communicate(), 200)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, out.decode(errors="replace")[-6000:]


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[" * 100_000, b'{"sdp": ["v=0"]}', b'{"sdp": "v=0\\r\\nm=audio 0 RTP/AVP 0\\r\\n"}',
     b'{"type": "offer"}'],
)  # fmt: skip
async def test_a_bad_offer_gets_400_and_the_server_carries_on(body: bytes) -> None:
    async with app_server("http://127.0.0.1:9") as app:
        port = (await app.wait_line(r"listening on http://127\.0\.0\.1:(\d+)/")).group(1)
        async with aiohttp.ClientSession() as http:
            async with http.post(f"http://127.0.0.1:{port}/offer", data=body) as response:
                assert response.status == 400, await response.text()
                assert "error" in await response.json()
            async with http.get(f"http://127.0.0.1:{port}/") as response:
                assert response.status == 200
        assert app.process.returncode is None
