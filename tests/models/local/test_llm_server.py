"""The LLM stage through an OpenAI-compatible endpoint: `python -m llama_cpp.server` serving the
packaged GGUF on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
import urllib.request
from collections.abc import AsyncIterator

import pytest

from voicegw.contracts.model import (
    ModelResponseDone,
    ModelToolCall,
    ModelTranscriptDelta,
    RealtimeModelConfig,
    SendToolOutput,
    SendUserMessage,
    ToolSpec,
)
from voicegw.models.local import LocalRealtimeModel
from voicegw.models.local.packaged import llm_model_file

from .conftest import RATE, Recorder

pytestmark = pytest.mark.timeout(120)
STARTUP_S = 60.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/models", timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
async def server() -> AsyncIterator[str]:
    pytest.importorskip("llama_cpp.server")
    port = _free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "llama_cpp.server", "--model", str(llm_model_file()),
        "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--n_threads", "2",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/v1"
    try:
        for _ in range(int(STARTUP_S * 10)):
            if process.returncode is not None:
                pytest.fail(f"llama_cpp.server exited with {process.returncode}")
            if await asyncio.to_thread(_ready, url):
                break
            await asyncio.sleep(0.1)
        else:
            pytest.fail("llama_cpp.server did not start")
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        await process.wait()


async def test_tool_call_and_answer_through_the_endpoint(server: str) -> None:
    model = LocalRealtimeModel(base_url=server)
    recorder = Recorder()
    model.add_listener(recorder)
    tool = ToolSpec("get_time", "Tells the current time.", {"type": "object", "properties": {}})
    await model.connect(RealtimeModelConfig(sample_rate=RATE, tools=(tool,), turn_detection=None))
    try:
        await model.send_event(SendUserMessage("What time is it right now?"))
        call = await recorder.wait_for(lambda e: isinstance(e, ModelToolCall))
        assert call.name == "get_time"
        await model.send_event(SendToolOutput(call.call_id, '{"time": "10:45"}'))
        await recorder.wait_for(
            lambda e: isinstance(e, ModelResponseDone) and len(recorder.of(ModelResponseDone)) == 2
        )
        spoken = "".join(d.delta for d in recorder.of(ModelTranscriptDelta))
        assert "10:45" in spoken or "10.45" in spoken, spoken
        assert recorder.of(ModelResponseDone)[-1].status == "completed"
    finally:
        await model.close()
