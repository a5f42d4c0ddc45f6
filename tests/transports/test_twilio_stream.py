"""`TwilioStreamTransport` under a real `RealtimeSession`, with a WebSocket client playing Twilio.

The client replays the documented message sequence (tests/transports/data/twilio_messages.json)
over a real WebSocket on 127.0.0.1: ``connected``, ``start``, the caller's espeak-ng question as
20 ms ``media`` messages of μ-law (encoded by the protocol server's independent G.711), then
``stop``. It collects what the transport sends back (``media``, ``mark``, ``clear``) and echoes
marks as Twilio does once audio has played. The agent is the OpenAI model against the local
protocol server, or a `ScriptedModel` with server-side turn detection, so its answer is known.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve

from tests.models.conftest import openai_model
from tests.signals import best_correlation, speech
from tests.transports.test_twilio_protocol import DOCUMENTED
from voicegw.contracts.model import CreateResponse, RealtimeModel, SendAudio, TruncateItem
from voicegw.models.testing import TONE_HZ as SCRIPTED_TONE_HZ
from voicegw.models.testing import ScriptedModel, ScriptStep
from voicegw.models.testing import speech as scripted_speech
from voicegw.realtime import (
    RealtimeAgent,
    RealtimeAudioInterrupted,
    RealtimeCallState,
    RealtimeDtmf,
    RealtimeResult,
    RealtimeRunner,
    RealtimeSession,
    RealtimeSessionEvent,
)
from voicegw.testing.fake_realtime import TONE_HZ, FakeRealtimeServer, dominant_hz, ulaw_decode, ulaw_encode
from voicegw.transports.twilio_stream import TwilioStreamTransport

pytestmark = pytest.mark.timeout(60)
RATE = 8000
CHUNK = 160  # μ-law bytes per 20 ms media message
WAIT_S = 15.0
AGENT = RealtimeAgent(name="Phone Assistant", instructions="Answer the caller briefly.")


async def eventually(predicate: Callable[[], bool], what: str) -> None:
    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(0.01)

    try:
        await asyncio.wait_for(poll(), WAIT_S)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


class Gateway:
    """The server side: each stream runs `AGENT` over a `TwilioStreamTransport`."""

    def __init__(self, model: RealtimeModel) -> None:
        self.model = model
        self.transport: TwilioStreamTransport | None = None
        self.events: list[RealtimeSessionEvent] = []
        self.result: RealtimeResult | None = None
        self.done = asyncio.Event()

    async def handle(self, ws: ServerConnection) -> None:
        transport = self.transport = await TwilioStreamTransport.accept(ws)
        session = RealtimeSession(transport, model=self.model)

        async def consume() -> None:
            async for event in session.all_events():
                self.events.append(event)

        consumer = asyncio.create_task(consume())
        try:
            self.result = await RealtimeRunner.run(AGENT, session=session)
            await consumer
        finally:
            consumer.cancel()
            self.done.set()

    def of(self, kind: type) -> list[Any]:
        return [event for event in self.events if isinstance(event, kind)]

    async def ended(self) -> RealtimeResult:
        await asyncio.wait_for(self.done.wait(), WAIT_S)
        assert self.result is not None
        return self.result


class TwilioClient:
    """Plays Twilio's side of one Media Stream."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.received: list[dict[str, Any]] = []
        self.stream_sid = DOCUMENTED["start"]["streamSid"]
        self._chunk = 0
        self._echoed = 0

    async def read(self) -> None:
        async for text in self.ws:
            self.received.append(json.loads(text))

    async def send(self, message: dict[str, Any] | str) -> None:
        await self.ws.send(message if isinstance(message, str) else json.dumps(message))

    async def begin(self) -> None:
        await self.send(DOCUMENTED["connected"])
        await self.send(DOCUMENTED["start"])

    async def say(self, pcm: bytes) -> None:
        """The caller's audio, as μ-law media messages of 20 ms."""
        wire = ulaw_encode(np.frombuffer(pcm, "<i2"))
        wire += b"\xff" * (-len(wire) % CHUNK)  # μ-law silence pads the last chunk
        for start in range(0, len(wire), CHUNK):
            self._chunk += 1
            message = copy.deepcopy(DOCUMENTED["media"])
            message["sequenceNumber"] = str(self._chunk + 2)
            message["media"].update(
                chunk=str(self._chunk),
                timestamp=str((self._chunk - 1) * 20),
                payload=base64.b64encode(wire[start : start + CHUNK]).decode(),
            )
            await self.send(message)

    async def stop(self) -> None:
        await self.send(DOCUMENTED["stop"])

    def of(self, event: str) -> list[dict[str, Any]]:
        return [message for message in self.received if message["event"] == event]

    def agent_audio(self) -> np.ndarray:
        """Every ``media`` payload received, decoded (independent G.711)."""
        wire = b"".join(base64.b64decode(m["media"]["payload"]) for m in self.of("media"))
        return ulaw_decode(wire)

    async def echo_marks(self, count: int | None = None) -> None:
        """Echo the next `count` marks received (all when None), as Twilio does once played."""
        marks = self.of("mark")[self._echoed :]
        for message in marks if count is None else marks[:count]:
            await self.send({"event": "mark", "sequenceNumber": "9", "streamSid": self.stream_sid,
                             "mark": {"name": message["mark"]["name"]}})  # fmt: skip
            self._echoed += 1


@asynccontextmanager
async def call(gateway: Gateway) -> AsyncIterator[TwilioClient]:
    async with (
        serve(gateway.handle, "127.0.0.1", 0) as server,
        connect(f"ws://127.0.0.1:{next(iter(server.sockets)).getsockname()[1]}/media-stream") as ws,
    ):
        client = TwilioClient(ws)
        reader = asyncio.create_task(client.read())
        try:
            yield client
        finally:
            await ws.close()
            await asyncio.gather(reader, return_exceptions=True)


@pytest.fixture
def question(tmp_path: Path) -> bytes:
    return speech(tmp_path / "question", RATE, "What time is it in Paris right now?")


async def test_the_agent_answers_a_spoken_question_over_the_stream(question: bytes) -> None:
    async with FakeRealtimeServer("conversation") as server:
        gateway = Gateway(openai_model(server))
        async with call(gateway) as client:
            await client.begin()
            await client.say(question + bytes(RATE * 2))  # the question, one second of silence
            # The protocol server answers with 800 ms of a 440 Hz tone, in four deltas.
            await eventually(lambda: len(client.of("media")) >= 40, "the agent's answer")
            await asyncio.sleep(0.2)  # nothing more is coming
            assert gateway.transport is not None
            assert gateway.transport.played_ms("item_ASSIST1") == 0  # sent, not yet confirmed
            await client.echo_marks()
            await eventually(lambda: gateway.transport.played_ms("item_ASSIST1") == 800, "800 ms played")
            await client.stop()
            result = await gateway.ended()

    assert server.violations == []
    answer = client.agent_audio()
    assert len(answer) == 800 * RATE // 1000
    assert abs(dominant_hz(answer, RATE) - TONE_HZ) < 10
    # Every 20 ms media message is followed by its mark.
    kinds = [m["event"] for m in client.received]
    assert kinds == ["media", "mark"] * 40
    assert all(m["streamSid"] == client.stream_sid for m in client.received)
    # The caller's question reached the model intact (μ-law in, μ-law on to the model).
    heard, rate = server.connections[0].input_pcm()
    assert rate == RATE
    correlation, _ = best_correlation(question, heard.astype("<i2").tobytes(), max_lag=RATE // 10)
    assert correlation > 0.95
    assert result.end_reason == "caller_hung_up" and result.error is None
    assert gateway.of(RealtimeCallState)[-1].state == "ended"


def story_model() -> ScriptedModel:
    """Answers the first turn with 3 s of a 220 Hz tone (item_1), in 100 ms chunks."""
    answer = scripted_speech("Once upon a time there was a gateway.", sample_rate=RATE, duration_ms=3000)
    return ScriptedModel([ScriptStep(CreateResponse, answer)])


@pytest.mark.parametrize("echoed", [0, 25])
async def test_barge_in_clears_twilio_and_truncates_at_the_echoed_marks(
    question: bytes, tmp_path: Path, echoed: int
) -> None:
    interruption = speech(tmp_path / "stop", RATE, "Stop, stop, wait a moment please.")
    model = story_model()
    gateway = Gateway(model)
    async with call(gateway) as client:
        await client.begin()
        await client.say(question + bytes(RATE * 2))
        await eventually(lambda: len(client.of("mark")) == 150, "the 3 s answer")
        assert gateway.transport is not None
        transport = gateway.transport
        answer = client.agent_audio()
        assert len(answer) == 3 * RATE
        assert abs(dominant_hz(answer, RATE) - SCRIPTED_TONE_HZ) < 5

        await client.echo_marks(echoed)  # Twilio has played this much of the answer
        await eventually(lambda: transport.played_ms("item_1") == echoed * 20, "the echoes")
        await client.say(interruption)  # the caller talks over the agent
        await eventually(lambda: bool(client.of("clear")), "a clear")
        assert client.of("clear") == [{"event": "clear", "streamSid": client.stream_sid}]
        # Twilio echoes the marks of the audio the clear dropped: they do not count as heard.
        await client.echo_marks()
        await client.say(bytes(RATE))
        await asyncio.sleep(0.2)
        assert transport.played_ms("item_1") == echoed * 20
        await client.stop()
        result = await gateway.ended()

    truncations = model.sent(TruncateItem)
    assert [(t.item_id, t.audio_end_ms) for t in truncations] == [("item_1", echoed * 20)]
    assert [e.played_ms for e in gateway.of(RealtimeAudioInterrupted)] == [echoed * 20]
    assert client.received.index(client.of("clear")[0]) == len(client.received) - 1  # no audio after
    assert result.end_reason == "caller_hung_up"


async def test_garbage_and_unknown_events_are_ignored_dtmf_is_an_event_stop_ends() -> None:
    model = ScriptedModel(supports_turn_detection=True)  # every caller frame goes to the model
    gateway = Gateway(model)
    async with call(gateway) as client:
        await client.send(DOCUMENTED["connected"])
        await client.send("{this is not JSON")  # before the start: skipped too
        await client.send(DOCUMENTED["start"])
        await client.send("{this is not JSON")
        await client.send('["media"]')
        await client.send({"event": "transcription", "streamSid": client.stream_sid})
        await client.send({"event": "media", "streamSid": client.stream_sid, "media": {"payload": "@@"}})
        await client.send({"event": "mark", "streamSid": client.stream_sid, "mark": {"name": "not ours"}})
        await client.send(DOCUMENTED["dtmf"])
        await client.say(bytes(RATE))  # 500 ms: the stream is still open and carries audio
        await eventually(lambda: len(gateway.of(RealtimeDtmf)) == 1, "the DTMF event")
        await eventually(lambda: len(model.sent(SendAudio)) == 25, "the caller's audio")
        assert not gateway.done.is_set()
        await client.stop()
        result = await gateway.ended()

    dtmf = gateway.of(RealtimeDtmf)[0]
    assert (dtmf.digit, dtmf.duration_ms) == ("1", 0)
    assert sum(len(c.pcm) for c in model.sent(SendAudio)) == RATE
    states = [(e.state, e.reason) for e in gateway.of(RealtimeCallState)]
    assert states[0][0] == "answered" and states[-1][0] == "ended" and "stopped" in states[-1][1]
    assert result.end_reason == "caller_hung_up" and result.error is None


async def test_the_socket_closing_without_stop_ends_the_session() -> None:
    gateway = Gateway(ScriptedModel(supports_turn_detection=True))
    async with call(gateway) as client:
        await client.begin()
        await client.say(bytes(RATE // 5 * 2))
        await client.ws.close()
        result = await gateway.ended()
    assert result.end_reason == "caller_hung_up"
    assert "closed" in gateway.of(RealtimeCallState)[-1].reason
    assert gateway.transport is not None
    with pytest.raises(Exception, match="ended"):
        await gateway.transport.play(bytes(320), item_id="late")
