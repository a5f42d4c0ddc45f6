"""SDK programs against an OpenAI-protocol endpoint chosen by ``model_config`` (the local fake):
the endpoint with no key in the environment, raw client messages, prompts and images, and the
SIP connector flow (signed webhook, accept, attach by ``call_id``)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import ClientSession, web

from examples.realtime.twilio_sip.openai_connector import CALLS, make_app
from tests.models.conftest import Recorder, openai_model
from voicegw.contracts.model import (
    CancelResponse,
    ModelToolCall,
    RealtimeModelConfig,
    SendAudio,
    ToolSpec,
    UserImage,
)
from voicegw.models.openai_webhooks import WebhookError, verify_webhook
from voicegw.realtime import RealtimeAgent, RealtimePlaybackTracker, RealtimeRunner
from voicegw.realtime.config import UnsupportedSetting
from voicegw.realtime.items import AssistantMessageItem
from voicegw.realtime.model_events import RealtimeModelToolCallEvent
from voicegw.realtime.model_inputs import (
    RealtimeModelSendAudio,
    RealtimeModelSendInterrupt,
    RealtimeModelSendRawMessage,
    RealtimeModelSendSessionUpdate,
    RealtimeModelSendToolOutput,
    RealtimeModelSendUserInput,
)
from voicegw.testing.fake_realtime import API_KEY, FakeRealtimeServer

pytestmark = pytest.mark.timeout(30)

SECRET = "whsec_c2VjcmV0LWZvci10ZXN0cw=="
GREETING = {"response": {"instructions": "Say exactly 'Welcome!' now."}}
IMAGE = "data:image/png;base64,iVBORw0KGgo="


async def wait_until(check: Callable[[], bool], what: str, timeout_s: float = 10.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not check():
            await asyncio.sleep(0.02)


async def test_app_pattern_on_an_endpoint_chosen_by_model_config_with_no_key_in_the_environment(
    fake_server: Callable[..., FakeRealtimeServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    agent = RealtimeAgent(name="A", instructions="Be brief.", prompt={"id": "pmpt_1", "version": "3"})
    async with fake_server("sdk_patterns") as server:
        runner = RealtimeRunner(agent)  # no model: model_config decides
        tracker = RealtimePlaybackTracker()
        model_config: Any = {
            "api_key": lambda: API_KEY,
            "url": f"{server.base_url}/realtime?model=gpt-realtime",
            "initial_model_settings": {"voice": "marin", "turn_detection": {"type": "semantic_vad"}},
            "playback_tracker": tracker,
        }
        events: list[Any] = []
        async with await runner.run(model_config=model_config) as session:
            await session.model.send_event(
                RealtimeModelSendRawMessage(message={"type": "response.create", "other_data": GREETING})
            )

            async def consume() -> None:
                async for event in session:
                    events.append(event)

            consumer = asyncio.create_task(consume())
            await wait_until(lambda: any(e.type == "audio_end" for e in events), "the spoken answer")
            # The browser played 300 ms of the 800 ms answer when the user pressed "interrupt".
            tracker.on_play_ms("item_ASSIST1", 0, 300)
            await session.interrupt()
            await session.send_message(
                {
                    "type": "message",
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "What is this?"},
                        {"type": "input_image", "image_url": IMAGE},
                    ],
                }
            )
            await asyncio.wait_for(server.finished.wait(), 10)
        await consumer
    update = server.connections[0].of_type("session.update")[0]["session"]
    assert update["prompt"] == {"id": "pmpt_1", "version": "3"}
    assert update["audio"]["output"]["voice"] == "marin"
    assert update["audio"]["input"]["turn_detection"]["type"] == "semantic_vad"
    truncate = server.connections[0].of_type("conversation.item.truncate")
    assert [(t["item_id"], t["audio_end_ms"]) for t in truncate] == [("item_ASSIST1", 300)]
    assert [(e.type, e.item_id) for e in events if e.type == "audio_interrupted"] == [
        ("audio_interrupted", "item_ASSIST1")
    ]
    answers = [i for i in session.history if isinstance(i, AssistantMessageItem)]
    assert [(a.text, a.status) for a in answers] == [("It", "incomplete")]  # 300 of 800 ms: the words heard
    assert sum(len(e.audio.data) for e in events if e.type == "audio") == 24000 * 2 * 800 // 1000


async def test_headers_replace_the_bearer_for_an_endpoint(
    fake_server: Callable[..., FakeRealtimeServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    async with fake_server("sdk_patterns") as server:
        runner = RealtimeRunner(RealtimeAgent(name="A"))
        model_config: Any = {
            "url": f"{server.base_url}/realtime?model=gpt-realtime",
            "headers": {"Authorization": f"Bearer {API_KEY}", "X-Tenant": "blue"},
        }
        async with await runner.run(model_config=model_config):
            await wait_until(lambda: bool(server.connections), "the connection")
    assert server.connections[0].headers["X-Tenant"] == "blue"


async def test_a_session_update_mid_session_changes_what_it_names_and_keeps_the_rest(
    fake_server: Callable[..., FakeRealtimeServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    async with fake_server("sdk_patterns") as server:
        runner = RealtimeRunner(RealtimeAgent(name="A", instructions="Be brief."))
        model_config: Any = {
            "api_key": API_KEY,
            "url": f"{server.base_url}/realtime?model=gpt-realtime",
            "initial_model_settings": {"voice": "marin", "turn_detection": {"type": "semantic_vad"}},
        }
        async with await runner.run(model_config=model_config) as session:
            await wait_until(lambda: bool(server.connections), "the connection")
            update = RealtimeModelSendSessionUpdate(
                session_settings={"instructions": "Speak French.", "audio": {"output": {"voice": "cedar"}}}
            )
            await session.model.send_event(update)
            connection = server.connections[0]
            await wait_until(lambda: len(connection.of_type("session.update")) == 2, "the second update")
    first, second = (event["session"] for event in connection.of_type("session.update"))
    assert (second["instructions"], second["audio"]["output"]["voice"]) == ("Speak French.", "cedar")
    for kept in (["audio", "input", "turn_detection"], ["audio", "input", "format"], ["tools"]):
        assert _at(second, kept) == _at(first, kept)


def _at(obj: Any, path: list[str]) -> Any:
    for key in path:
        obj = obj[key]
    return obj


def test_a_session_update_refuses_what_a_session_keeps_by_name() -> None:
    with pytest.raises(UnsupportedSetting, match="input_audio_format: fixed when the session starts"):
        RealtimeModelSendSessionUpdate(session_settings={"audio": {"input": {"format": "g711_ulaw"}}})
    with pytest.raises(UnsupportedSetting, match=r"unknown model setting.*: colour"):
        RealtimeModelSendSessionUpdate(session_settings={"colour": "blue"})  # type: ignore[typeddict-unknown-key]


async def test_the_embedded_model_refuses_an_endpoint_by_name() -> None:
    runner = RealtimeRunner(RealtimeAgent(name="A"), config={"model": "local"})
    session = await runner.run(model_config={"api_key": "sk-x"})
    with pytest.raises(ValueError, match="model_config api_key: only an OpenAI-protocol model"):
        await session.enter()


async def run_webhook_app(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}/openai/webhook"


async def test_the_sip_connector_flow_accepts_then_attaches_by_call_id(
    fake_server: Callable[..., FakeRealtimeServer],
) -> None:
    agent = RealtimeAgent(name="Phone", instructions="Answer the phone.")
    async with fake_server("sdk_patterns", calls_api=True) as server:
        app = make_app(
            agent,
            api_key=API_KEY,
            webhook_secret=SECRET,
            calls_url=server.calls_url,
            realtime_url=server.base_url,
        )
        runner, webhook_url = await run_webhook_app(app)
        try:
            assert await server.ring("rtc_u1_9b6", webhook_url, SECRET) == 200
            # The greeting (a raw response.create) is answered; the scenario then waits for more.
            await wait_until(
                lambda: bool(server.connections) and bool(server.connections[0].of_type("response.create")),
                "the greeting",
            )
            conn = server.connections[0]
            assert conn.path == "/v1/realtime?call_id=rtc_u1_9b6"
            assert conn.headers["Authorization"] == f"Bearer {API_KEY}"
            assert server.accepted["rtc_u1_9b6"] == {
                "type": "realtime",
                "model": "gpt-realtime",
                "instructions": "Answer the phone.",
            }
            assert "rtc_u1_9b6" in app[CALLS]
        finally:
            await runner.cleanup()
    assert app[CALLS] == {}


async def test_a_forged_webhook_is_refused_and_accepts_nothing(
    fake_server: Callable[..., FakeRealtimeServer],
) -> None:
    async with fake_server("sdk_patterns", calls_api=True) as server:
        app = make_app(
            RealtimeAgent(name="A"), api_key=API_KEY, webhook_secret=SECRET, calls_url=server.calls_url
        )
        runner, webhook_url = await run_webhook_app(app)
        try:
            assert await server.ring("rtc_forged", webhook_url, "whsec_b3RoZXItc2VjcmV0") == 400
            async with ClientSession() as client, client.post(webhook_url, data=b"{}") as response:
                assert response.status == 400  # no signature headers at all
        finally:
            await runner.cleanup()
    assert server.accepted == {} and server.connections == []


@pytest.mark.parametrize(
    ("headers", "now", "error"),
    [
        ({}, 1000, "without valid signature headers"),
        (
            {"webhook-id": "w", "webhook-timestamp": "1000", "webhook-signature": "v1,AAAA"},
            1000,
            "does not match",
        ),
        ({"webhook-id": "w", "webhook-timestamp": "1000", "webhook-signature": "v1,AAAA"}, 2000, "from now"),
    ],
)
def test_webhook_verification_errors_say_what_was_wrong(
    headers: dict[str, str], now: float, error: str
) -> None:
    with pytest.raises(WebhookError, match=error):
        verify_webhook(SECRET, headers, b"{}", now=now)


async def test_the_sdks_model_inputs_drive_a_model_directly(
    fake_server: Callable[..., FakeRealtimeServer], recorder: Recorder
) -> None:
    """``session.model.send_event`` with the SDK's inputs, as SDK code may call it."""
    weather = ToolSpec("get_weather", "The weather in a city.", {"type": "object", "properties": {}})
    async with fake_server("function_call") as server:
        model = openai_model(server)
        model.add_listener(recorder)
        await model.connect(RealtimeModelConfig(tools=(weather,), turn_detection=None))
        await model.send_event(RealtimeModelSendUserInput(user_input="What is the weather in Paris?"))
        call = await recorder.wait_for("function_call")
        assert isinstance(call, ModelToolCall)
        sdk_call = RealtimeModelToolCallEvent(name=call.name, call_id=call.call_id, arguments=call.arguments)
        await model.send_event(
            RealtimeModelSendToolOutput(tool_call=sdk_call, output='{"sky": "sunny"}', start_response=True)
        )
        await recorder.wait_for("response_done", lambda e: e.response_id == "resp_F2")
        await model.close()
    conn = server.connections[0]
    items = [e["item"] for e in conn.of_type("conversation.item.create")]
    assert items[0]["content"] == [{"type": "input_text", "text": "What is the weather in Paris?"}]
    assert items[1] == {"type": "function_call_output", "call_id": "call_W1", "output": '{"sky": "sunny"}'}
    assert len(conn.of_type("response.create")) == 2


def test_each_sdk_model_input_is_the_voicegw_command_it_stands_for() -> None:
    image = {"type": "input_image", "image_url": "data:image/png;base64,AA==", "detail": "low"}
    message: Any = {
        "type": "message",
        "role": "user",
        "content": [{"type": "input_text", "text": "hi"}, image],
    }
    user = RealtimeModelSendUserInput(message)
    assert (user.text, user.images, user.user_input) == (
        "hi",
        (UserImage("data:image/png;base64,AA==", "low"),),
        message,
    )
    audio = RealtimeModelSendAudio(b"\x01\x00", commit=True)
    assert isinstance(audio, SendAudio) and (audio.pcm, audio.commit, audio.audio) == (
        b"\x01\x00",
        True,
        b"\x01\x00",
    )
    assert isinstance(RealtimeModelSendInterrupt(force_response_cancel=True), CancelResponse)
    assert RealtimeModelSendInterrupt().type == "cancel_response"


async def test_audio_with_commit_ends_the_turn_on_an_openai_model(
    fake_server: Callable[..., FakeRealtimeServer], recorder: Recorder
) -> None:
    async with fake_server("conversation") as server:
        model = openai_model(server)
        await model.connect(RealtimeModelConfig(sample_rate=24000, turn_detection=None))
        await model.send_event(RealtimeModelSendAudio(bytes(4800), commit=True))
        connection = server.connections[0]
        await wait_until(lambda: bool(connection.of_type("input_audio_buffer.commit")), "the commit")
        await model.close()
    kinds = [e["type"] for e in connection.received]
    assert kinds.index("input_audio_buffer.append") < kinds.index("input_audio_buffer.commit")
