"""The usage patterns of the Agents SDK's four realtime examples, written from its documented
behaviour with only ``agents`` -> ``voicegw`` in the imports (our own code, not the examples):

- cli: ``RealtimeRunner(agent)``, ``async with await runner.run(model_config={"playback_tracker":
  ...})``, microphone audio in with ``send_audio``, ``audio`` events played and reported;
- twilio: ``await session.enter()``, ``g711_ulaw`` both ways, Twilio marks reported as played bytes;
- app: raw client messages, structured messages with images, ``interrupt()`` with reported
  playback (in tests/models/test_openai_sdk.py, against an endpoint given by ``model_config``);
- twilio_sip: the SIP connector's webhook, accept and attach by ``call_id`` (same file).

The cli and twilio patterns run here twice: on the embedded model with no key in the
environment, and on the local OpenAI-protocol server chosen by ``model_config``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.models.local.conftest import spoken
from voicegw.audio.codecs import PCMU
from voicegw.decorators import tool
from voicegw.realtime import (
    RealtimeAgent,
    RealtimePlaybackTracker,
    RealtimeRunner,
    RealtimeSession,
    RealtimeSessionEvent,
)
from voicegw.realtime.items import AssistantMessageItem, UserMessageItem
from voicegw.testing.fake_realtime import (
    API_KEY,
    TONE_HZ,
    FakeRealtimeServer,
    dominant_hz,
    ulaw_decode,
    ulaw_encode,
)

CHUNK_MS = 40
EMBEDDED_TIMEOUT_S = 120


@tool
def get_weather(city: str) -> str:
    """Get the weather in a city."""
    return f"The weather in {city} is sunny."


AGENT = RealtimeAgent(
    name="Assistant",
    instructions="You answer questions about the weather in one short sentence. Use get_weather.",
    tools=[get_weather],
)


class Player:
    """An application's audio output: plays ``audio`` events and reports them to the tracker."""

    def __init__(self, tracker: RealtimePlaybackTracker) -> None:
        self.tracker = tracker
        self.played = bytearray()
        self.events: list[RealtimeSessionEvent] = []

    async def run(self, session: RealtimeSession) -> None:
        async for event in session:
            self.events.append(event)
            if event.type == "audio":
                self.played += event.audio.data
                self.tracker.on_play_bytes(event.item_id, event.content_index, event.audio.data)

    def types(self) -> list[str]:
        return [e.type for e in self.events]


async def speak(session: RealtimeSession, audio: bytes, bytes_per_chunk: int) -> None:
    """Send `audio` in chunks as a microphone or a Media Stream does (no pacing: the model
    takes audio faster than real time)."""
    for start in range(0, len(audio), bytes_per_chunk):
        await session.send_audio(audio[start : start + bytes_per_chunk])
        await asyncio.sleep(0)


async def until(check: Callable[[], bool], timeout_s: float) -> None:
    async with asyncio.timeout(timeout_s):
        while not check():
            await asyncio.sleep(0.05)


def answered(player: Player) -> bool:
    return "audio_end" in player.types()


# --- the embedded model, no key ------------------------------------------------------------


@pytest.fixture
def no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


def heard_words(pcm: bytes, rate: int) -> set[str]:
    from voicegw.models.local.stt import SpeechToText

    text = SpeechToText().transcribe(pcm, rate).text.lower()
    return {word.strip(".,!?") for word in text.split()}


@pytest.mark.timeout(EMBEDDED_TIMEOUT_S)
@pytest.mark.usefixtures("no_key")
async def test_cli_pattern_on_the_embedded_model(tmp_path: Path) -> None:
    question = spoken("What is the weather in Paris?", tmp_path, rate=24000)
    silence = bytes(24000 * 2)
    tracker = RealtimePlaybackTracker()
    player = Player(tracker)
    runner = RealtimeRunner(AGENT)
    async with await runner.run(model_config={"playback_tracker": tracker}) as session:
        playing = asyncio.create_task(player.run(session))
        await speak(session, silence[: len(silence) // 4] + question + silence, 24000 * 2 * CHUNK_MS // 1000)
        await until(lambda: answered(player), EMBEDDED_TIMEOUT_S - 20)
    await playing
    assert type(session.model).__name__ == "LocalRealtimeModel"
    [user] = [i for i in session.history if isinstance(i, UserMessageItem)][:1]
    assert "weather" in user.text.lower()
    assert "tool_start" in player.types() and "tool_end" in player.types()
    answer = next(
        i for i in session.history if isinstance(i, AssistantMessageItem) and i.status == "completed"
    )
    state = tracker.get_state()
    assert state["current_item_id"] == answer.item_id
    assert state["elapsed_ms"] == pytest.approx(len(player.played) * 1000 / (2 * 24000), abs=1)
    assert heard_words(bytes(player.played), 24000) & {"sunny", "paris", "weather"}


@pytest.mark.timeout(EMBEDDED_TIMEOUT_S)
@pytest.mark.usefixtures("no_key")
async def test_twilio_pattern_g711_both_ways_on_the_embedded_model(tmp_path: Path) -> None:
    question = spoken("What is the weather in Paris?", tmp_path, rate=8000)
    codec = PCMU()
    caller_ulaw = codec.encode(bytes(8000) + question + bytes(16000))  # a Twilio Media Stream's payloads
    tracker = RealtimePlaybackTracker()
    player = Player(tracker)
    runner = RealtimeRunner(AGENT)
    session = await runner.run(
        model_config={
            "initial_model_settings": {
                "input_audio_format": "g711_ulaw",
                "output_audio_format": "g711_ulaw",
                "turn_detection": {"type": "server_vad", "interrupt_response": True, "create_response": True},
            },
            "playback_tracker": tracker,
        }
    )
    await session.enter()
    try:
        playing = asyncio.create_task(player.run(session))
        await speak(session, caller_ulaw, 8000 * CHUNK_MS // 1000)  # one byte a sample
        await until(lambda: answered(player), EMBEDDED_TIMEOUT_S - 20)
    finally:
        await session.close()
    await playing
    user = next(i for i in session.history if isinstance(i, UserMessageItem))
    assert "weather" in user.text.lower()  # the μ-law input was decoded, not taken for PCM
    ulaw = bytes(player.played)
    # The audio events carry μ-law: one byte per 8 kHz sample; it decodes to the agent's words.
    state = tracker.get_state()
    assert state["elapsed_ms"] == pytest.approx(len(ulaw) / 8, abs=1)
    assert heard_words(codec.decode(ulaw), 8000) & {"sunny", "paris", "weather"}


# --- an OpenAI-protocol endpoint given by model_config ---------------------------------------


def endpoint(server: FakeRealtimeServer, tracker: RealtimePlaybackTracker, **settings: Any) -> Any:
    """The ``model_config`` of a program pointed at the local server."""
    return {
        "api_key": API_KEY,
        "url": f"{server.base_url}/realtime?model=gpt-realtime",
        "initial_model_settings": settings,
        "playback_tracker": tracker,
    }


@pytest.mark.timeout(30)
@pytest.mark.usefixtures("no_key")
async def test_twilio_pattern_g711_both_ways_on_an_openai_endpoint(
    fake_server: Callable[..., FakeRealtimeServer],
) -> None:
    caller = (6000 * np.sin(2 * np.pi * 700 * np.arange(8000) / 8000)).astype(np.int16)
    tracker = RealtimePlaybackTracker()
    player = Player(tracker)
    async with fake_server("conversation") as server:
        runner = RealtimeRunner(AGENT)
        pcmu = {"format": {"type": "audio/pcmu"}}
        session = await runner.run(
            model_config=endpoint(server, tracker, audio={"input": pcmu, "output": pcmu})
        )
        await session.enter()
        try:
            playing = asyncio.create_task(player.run(session))
            await speak(session, ulaw_encode(caller), 8000 * CHUNK_MS // 1000)
            await until(lambda: answered(player), 20)
        finally:
            await session.close()
        await playing
    conn = server.connections[0]
    assert conn.negotiated("input") == conn.negotiated("output") == "audio/pcmu"
    samples, rate = conn.input_pcm()
    assert rate == 8000 and abs(dominant_hz(samples, rate) - 700) < 20
    out = ulaw_decode(bytes(player.played))  # an independent μ-law decoder
    assert len(out) == 8000 * 800 // 1000 and abs(dominant_hz(out, 8000) - TONE_HZ) < 20
    assert tracker.get_state()["elapsed_ms"] == pytest.approx(800, abs=1)


@pytest.mark.timeout(30)
@pytest.mark.usefixtures("no_key")
async def test_cli_pattern_on_an_openai_endpoint(fake_server: Callable[..., FakeRealtimeServer]) -> None:
    microphone = (6000 * np.sin(2 * np.pi * 700 * np.arange(24000 * 2) / 24000)).astype("<i2").tobytes()
    tracker = RealtimePlaybackTracker()
    player = Player(tracker)
    async with fake_server("conversation") as server:
        runner = RealtimeRunner(AGENT)
        async with await runner.run(model_config=endpoint(server, tracker)) as session:
            playing = asyncio.create_task(player.run(session))
            await speak(session, microphone, 24000 * 2 * CHUNK_MS // 1000)
            await until(lambda: answered(player), 20)
        await playing
    pcm = np.frombuffer(bytes(player.played), "<i2")
    assert len(pcm) == 24000 * 800 // 1000 and abs(dominant_hz(pcm, 24000) - TONE_HZ) < 20
    assert [i.text for i in session.history if isinstance(i, AssistantMessageItem)] == ["It is noon."]
