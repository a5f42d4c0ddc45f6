"""`OpenAIRealtimeModel` end to end against the local Realtime protocol server."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from tests.models.conftest import Recorder, openai_model, tone
from voicegw.contracts.model import (
    CancelResponse,
    CreateResponse,
    ModelAudio,
    ModelConnectionStatus,
    ModelError,
    ModelInputTranscript,
    ModelRawEvent,
    ModelResponseDone,
    ModelSpeechStarted,
    ModelToolCall,
    ModelTranscriptDelta,
    ModelUnavailable,
    ModelUsage,
    RealtimeModelConfig,
    RealtimeModelEvent,
    SendAudio,
    SendToolOutput,
    SendUserMessage,
    ToolSpec,
    TurnDetection,
)
from voicegw.models.openai import OpenAIRealtimeModel
from voicegw.models.openai_protocol import ServerEventDecoder
from voicegw.testing.fake_realtime import TONE_HZ, FakeRealtimeServer, dominant_hz

pytestmark = [pytest.mark.timeout(30), pytest.mark.usefixtures("no_tasks_left")]

FRAME_MS = 20
CALLER_HZ = 700.0
WEATHER = ToolSpec(
    "get_weather",
    "The weather in a city.",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)


async def stream_caller(model: OpenAIRealtimeModel, rate: int, ms: int) -> None:
    audio = tone(CALLER_HZ, ms, rate)
    step = rate * FRAME_MS // 1000 * 2
    for start in range(0, len(audio), step):
        await model.send_event(SendAudio(audio[start : start + step]))
        await asyncio.sleep(0)


@pytest.mark.parametrize(
    ("rate", "wire_format"), [(8000, "audio/pcmu"), (24000, "audio/pcm"), (16000, "audio/pcm")]
)
async def test_audio_in_and_out(
    fake_server: Callable[..., FakeRealtimeServer], recorder: Recorder, rate: int, wire_format: str
) -> None:
    async with fake_server("conversation") as server:
        model = openai_model(server)
        model.add_listener(recorder)
        await model.connect(RealtimeModelConfig(sample_rate=rate, instructions="Be brief.", voice="marin"))
        await stream_caller(model, rate, 1200)
        done = await recorder.wait_for("response_done")
        await model.close()

    conn = server.connections[0]
    update = conn.of_type("session.update")[0]["session"]
    assert update["audio"]["input"]["format"]["type"] == wire_format
    assert update["audio"]["output"]["format"]["type"] == wire_format
    assert update["instructions"] == "Be brief."
    assert update["audio"]["output"]["voice"] == "marin"
    assert update["audio"]["input"]["turn_detection"]["type"] == "server_vad"
    # Caller audio arrived whole and undistorted in the negotiated format.
    samples, wire_rate = conn.input_pcm()
    assert abs(conn.input_ms() - 1200) <= 30
    assert abs(dominant_hz(samples, wire_rate) - CALLER_HZ) < 15
    # Agent audio came back as PCM at the session rate: 800 ms of the server's tone.
    pcm = np.frombuffer(b"".join(e.data for e in recorder.of("audio") if isinstance(e, ModelAudio)), "<i2")
    assert abs(len(pcm) * 1000 / rate - 800) <= 5
    assert abs(dominant_hz(pcm, rate) - TONE_HZ) < 10
    partials = [e.transcript for e in recorder.of("input_transcript") if isinstance(e, ModelInputTranscript)]
    assert partials == ["What time", "What time is it?", "What time is it?"]
    assert [e.is_final for e in recorder.of("input_transcript") if isinstance(e, ModelInputTranscript)] == [
        False,
        False,
        True,
    ]
    assert isinstance(done, ModelResponseDone)
    assert (done.response_id, done.status) == ("resp_A1", "completed")
    (used,) = recorder.of("usage")
    assert isinstance(used, ModelUsage)
    assert (used.usage.input_tokens, used.usage.output_tokens, used.usage.total_tokens) == (132, 121, 253)
    assert used.usage.output_audio_ms == 800
    started = recorder.of("speech_started")[0]
    assert isinstance(started, ModelSpeechStarted) and started.item_id == "item_USER1"
    deltas = [e.delta for e in recorder.events if isinstance(e, ModelTranscriptDelta)]
    assert "".join(deltas) == "It is noon."
    assert len(recorder.of("audio_done")) == 1
    raw = [e.data["type"] for e in recorder.of("raw") if isinstance(e, ModelRawEvent)]
    assert raw[0] == "session.created" and raw[-1] == "response.done" and "rate_limits.updated" in raw


async def test_function_call_round_trip(
    fake_server: Callable[..., FakeRealtimeServer], recorder: Recorder
) -> None:
    async with fake_server("function_call") as server:
        model = openai_model(server)
        model.add_listener(recorder)
        await model.connect(RealtimeModelConfig(tools=(WEATHER,), turn_detection=None))
        await model.send_event(SendUserMessage("What is the weather in Paris?"))
        call = await recorder.wait_for("function_call")
        assert isinstance(call, ModelToolCall)
        await model.send_event(SendToolOutput(call.call_id, '{"sky": "sunny"}'))
        await recorder.wait_for("response_done", lambda e: e.response_id == "resp_F2")
        await model.close()

    assert (call.call_id, call.name, call.arguments) == ("call_W1", "get_weather", '{"city": "Paris"}')
    assert (call.item_id, call.response_id) == ("item_FC1", "resp_F1")
    assert len(recorder.of("function_call")) == 1  # arguments.done and output_item.done: one call
    conn = server.connections[0]
    tools = conn.of_type("session.update")[0]["session"]["tools"]
    assert tools == [
        {
            "type": "function",
            "name": "get_weather",
            "description": WEATHER.description,
            "parameters": WEATHER.parameters,
        }
    ]
    assert conn.of_type("session.update")[0]["session"]["audio"]["input"]["turn_detection"] is None
    outputs = [e["item"] for e in conn.of_type("conversation.item.create")]
    assert outputs[1] == {"type": "function_call_output", "call_id": "call_W1", "output": '{"sky": "sunny"}'}
    assert len(conn.of_type("response.create")) == 2
    assert recorder.of("audio")


async def test_error_event_is_reported_and_the_session_goes_on(
    fake_server: Callable[..., FakeRealtimeServer], recorder: Recorder
) -> None:
    async with fake_server("error") as server:
        model = openai_model(server)
        model.add_listener(recorder)
        await model.connect(RealtimeModelConfig())
        await model.send_event(CancelResponse())  # no response in progress: nothing may be sent
        from voicegw.contracts.model import CreateResponse

        await model.send_event(CreateResponse(say="Hello there."))
        await recorder.wait_for("raw", lambda e: e.data["type"] == "rate_limits.updated")
        await model.close()

    errors = [e for e in recorder.of("error") if isinstance(e, ModelError)]
    assert [(e.code, e.fatal) for e in errors] == [("invalid_value", False), ("protocol_error", False)]
    assert errors[0].message.startswith("Invalid value")
    conn = server.connections[0]
    assert conn.of_type("response.cancel") == []
    assert "Hello there." in conn.of_type("response.create")[0]["response"]["instructions"]


async def test_dropped_connection_reconnects_then_ends_cleanly(
    fake_server: Callable[..., FakeRealtimeServer], recorder: Recorder
) -> None:
    async with fake_server("dropped") as server:
        model = openai_model(server, reconnect_delays=(0.05, 0.05))
        model.add_listener(recorder)
        config = RealtimeModelConfig(
            instructions="Stay on the line.", turn_detection=TurnDetection("semantic_vad")
        )
        await model.connect(config)

        async def talk() -> None:
            while not any(isinstance(e, ModelError) and e.fatal for e in recorder.events):
                await model.send_event(SendAudio(tone(CALLER_HZ, FRAME_MS, 24000)))
                await asyncio.sleep(0.005)

        await asyncio.wait_for(talk(), 10)
        await model.close()

    statuses = [e.status for e in recorder.events if isinstance(e, ModelConnectionStatus)]
    assert statuses == [
        "connecting",
        "connected",
        "reconnecting",
        "connected",
        "reconnecting",
        "disconnected",
    ]
    errors = [(e.code, e.fatal) for e in recorder.events if isinstance(e, ModelError)]
    assert errors == [("connection_lost", False), ("connection_lost", False), ("connection_lost", True)]
    assert len(server.connections) == 2 and server.refused == 2  # both retries after the 2nd drop refused
    first, second = (c.of_type("session.update")[0]["session"] for c in server.connections)
    assert first == second  # the same session configured again
    assert second["audio"]["input"]["turn_detection"]["type"] == "semantic_vad"
    with pytest.raises(ConnectionError):
        await model.send_event(SendUserMessage("anyone?"))


async def test_a_bug_in_reading_the_server_ends_the_model_loudly(
    fake_server: Callable[..., FakeRealtimeServer], recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Whatever a server event trips over in our code, the model ends as if lost for good (the
    # call then hears the apology), instead of its reader dying and the call going silent.
    decode = ServerEventDecoder.decode

    def broken(self: ServerEventDecoder, event: dict[str, Any]) -> list[RealtimeModelEvent]:
        if event["type"] == "response.created":
            raise RuntimeError("a bug")
        return decode(self, event)

    monkeypatch.setattr(ServerEventDecoder, "decode", broken)
    async with fake_server("greeting") as server:
        model = openai_model(server)
        model.add_listener(recorder)
        await model.connect(RealtimeModelConfig())
        await model.send_event(CreateResponse(say="Hello there."))
        await recorder.wait_for("error", lambda e: isinstance(e, ModelError) and e.fatal)
        await model.close()

    errors = [(e.code, e.fatal) for e in recorder.events if isinstance(e, ModelError)]
    assert errors == [("internal_error", True)]
    assert "RuntimeError('a bug')" in recorder.of("error")[0].message
    statuses = [e.status for e in recorder.events if isinstance(e, ModelConnectionStatus)]
    assert statuses[-1] == "disconnected"
    with pytest.raises(ConnectionError):
        await model.send_event(SendUserMessage("anyone?"))


async def test_invalid_key_error_event_is_fatal(
    fake_server: Callable[..., FakeRealtimeServer], recorder: Recorder
) -> None:
    async with fake_server("auth_failure") as server:
        model = openai_model(server)
        model.add_listener(recorder)
        with pytest.raises(ModelUnavailable, match="Incorrect API key"):
            await model.connect(RealtimeModelConfig())
    errors = [e for e in recorder.events if isinstance(e, ModelError)]
    assert [(e.code, e.fatal) for e in errors] == [("invalid_api_key", True)]


@pytest.mark.parametrize("key", ["wrong-key", None])
async def test_refused_handshake_raises_model_unavailable(
    fake_server: Callable[..., FakeRealtimeServer], key: str | None
) -> None:
    async with fake_server("conversation", reject_status=None if key else 403) as server:
        model = OpenAIRealtimeModel(api_key=key or "test-key", base_url=server.base_url)
        with pytest.raises(ModelUnavailable, match=r"HTTP 40[13]"):
            await model.connect(RealtimeModelConfig())
        await model.close()


def test_missing_key_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ModelUnavailable, match="OPENAI_API_KEY"):
        OpenAIRealtimeModel()
    model = OpenAIRealtimeModel(headers={"api-key": "azure"}, base_url="wss://example.test/openai/v1/")
    assert model.url == "wss://example.test/openai/v1/realtime?model=gpt-realtime"


async def test_misuse_is_reported(fake_server: Callable[..., FakeRealtimeServer]) -> None:
    async with fake_server("error") as server:
        model = openai_model(server)
        with pytest.raises(ConnectionError, match="not connected"):
            await model.send_event(SendAudio(b"\x00\x00"))
        await model.connect(RealtimeModelConfig())
        with pytest.raises(TypeError, match="cannot send"):
            await model.send_event("hello")  # type: ignore[arg-type]
        await model.close()
        await model.close()
        with pytest.raises(RuntimeError, match="use a new one"):
            await model.connect(RealtimeModelConfig())
