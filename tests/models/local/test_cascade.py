"""The embedded model end to end through the RealtimeModel interface, with the real models.

Questions are spoken by espeak-ng through 8 kHz μ-law; answers are transcribed back by Whisper.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re

import pytest

from voicegw.contracts.model import (
    CancelResponse,
    CreateResponse,
    ModelAudio,
    ModelAudioDone,
    ModelInputTranscript,
    ModelItemTruncated,
    ModelResponseDone,
    ModelResponseStarted,
    ModelSpeechStarted,
    ModelToolCall,
    ModelTranscriptDelta,
    ModelUsage,
    RealtimeModelConfig,
    RealtimeModelEvent,
    SendToolOutput,
    ToolSpec,
    TruncateItem,
    TurnDetection,
)
from voicegw.models.local import LocalRealtimeModel
from voicegw.models.local.stt import SpeechToText
from voicegw.realtime.model_inputs import RealtimeModelSendAudio

from .conftest import RATE, Recorder, feed, silence

pytestmark = pytest.mark.timeout(120)

GET_TIME = ToolSpec("get_time", "Tells the current time.", {"type": "object", "properties": {}})
LOOKUP_ORDER = ToolSpec(
    "lookup_order",
    "Finds where an order is, by its number.",
    {"type": "object", "properties": {"order_number": {"type": "string"}}, "required": ["order_number"]},
)
CONFIG = RealtimeModelConfig(
    sample_rate=RATE,
    instructions="You are the phone assistant of Acme Parcels.",
    tools=(GET_TIME, LOOKUP_ORDER),
    turn_detection=TurnDetection(silence_duration_ms=600),
    vocabulary=("Acme",),
)


async def connected(config: RealtimeModelConfig = CONFIG) -> tuple[LocalRealtimeModel, Recorder]:
    model = LocalRealtimeModel()
    recorder = Recorder()
    model.add_listener(recorder)
    await model.connect(config)
    return model, recorder


def answer_audio(recorder: Recorder, response_id: str) -> bytes:
    return b"".join(e.data for e in recorder.of(ModelAudio) if e.response_id == response_id)


def heard(pcm: bytes) -> str:
    return SpeechToText().transcribe(pcm, RATE).text.lower()


async def ask(model: LocalRealtimeModel, recorder: Recorder, pcm: bytes) -> ModelToolCall:
    await feed(model, silence(300) + pcm + silence(900))
    event = await recorder.wait_for(lambda e: isinstance(e, ModelToolCall | ModelResponseDone))
    assert isinstance(event, ModelToolCall), f"no tool call; transcripts: {recorder.of(ModelInputTranscript)}"
    return event


async def tool_answer(model: LocalRealtimeModel, recorder: Recorder, call: ModelToolCall, output: str) -> str:
    done = len(recorder.of(ModelResponseDone))
    await model.send_event(SendToolOutput(call.call_id, output))
    await recorder.wait_for(
        lambda e: isinstance(e, ModelResponseDone) and len(recorder.of(ModelResponseDone)) > done
    )
    response = recorder.of(ModelResponseDone)[-1]
    assert response.status == "completed"
    return heard(answer_audio(recorder, response.response_id))


async def test_spoken_question_calls_the_tool_and_speaks_its_result(speech) -> None:
    model, recorder = await connected()
    try:
        call = await ask(model, recorder, speech("What time is it right now?"))
        final = [e for e in recorder.of(ModelInputTranscript) if e.is_final]
        assert "time" in final[0].transcript.lower()
        assert recorder.of(ModelSpeechStarted)[0].item_id == final[0].item_id
        assert call.name == "get_time" and json.loads(call.arguments) == {}
        text = await tool_answer(model, recorder, call, '{"time": "10:45"}')
        assert re.search(r"10\W?45|ten forty", text), text
        # Text goes out before the audio it belongs to (guardrails read it first).
        kinds = [type(e) for _, e in recorder.events]
        last = kinds.index(ModelResponseStarted, len(kinds) - 1 - kinds[::-1].index(ModelResponseStarted))
        assert kinds.index(ModelTranscriptDelta, last) < kinds.index(ModelAudio, last)
        assert ModelAudioDone in kinds[last:]
        call_timings, answer_timings = (done.timings_ms for done in recorder.of(ModelResponseDone)[:2])
        # get_time takes no arguments and is the only tool routed: called without an LLM step.
        assert {"stt", "llm"} <= call_timings.keys() and "llm_first_token" not in call_timings
        assert {"llm_first_token", "tts_first_audio"} <= answer_timings.keys()
        # Usage, as the SDK's models report it: one LLM request and its tokens per step run.
        call_usage, answer_usage = (used.usage for used in recorder.of(ModelUsage)[:2])
        assert (call_usage.requests, call_usage.output_tokens) == (0, 0)
        assert answer_usage.requests == 1 and answer_usage.output_tokens > 0
        assert answer_usage.total_tokens == answer_usage.output_tokens and answer_usage.output_audio_ms > 0
    finally:
        await model.close()


async def test_tool_arguments_are_valid_and_a_tool_error_is_apologised_for(speech) -> None:
    model, recorder = await connected()
    try:
        call = await ask(model, recorder, speech("Where is my order number forty two?"))
        assert call.name == "lookup_order"
        assert "42" in json.loads(call.arguments)["order_number"] or "forty" in call.arguments
        text = await tool_answer(model, recorder, call, "Error: the order service is not reachable")
        assert "sorry" in text or "unfortunately" in text or "apolog" in text, text
    finally:
        await model.close()


async def test_cancel_stops_audio_within_one_chunk_and_truncate_keeps_what_was_heard() -> None:
    model, recorder = await connected()
    long_text = "Thank you for calling Acme Parcels. We deliver every day of the week. How can I help?"
    try:
        await model.send_event(CreateResponse(say=long_text))
        await recorder.wait_for(lambda e: len(recorder.of(ModelAudio)) >= 12)
        before_cancel = len(recorder.of(ModelAudio))
        await model.send_event(CancelResponse())
        await recorder.wait_for(lambda e: isinstance(e, ModelResponseDone))
        after_cancel = len(recorder.of(ModelAudio))
        await asyncio.sleep(0.5)
        assert len(recorder.of(ModelAudio)) == after_cancel <= before_cancel + 1
        assert recorder.of(ModelResponseDone)[-1].status == "cancelled"
        item_id = recorder.of(ModelAudio)[0].item_id
        await model.send_event(TruncateItem(item_id, audio_end_ms=400))
        truncated = await recorder.wait_for(lambda e: isinstance(e, ModelItemTruncated))
        assert isinstance(truncated, ModelItemTruncated)
        assert truncated.transcript and long_text.startswith(truncated.transcript)
        assert len(truncated.transcript) < len("Thank you for calling Acme Parcels.")
        assistant = [m["content"] for m in model.history if m["role"] == "assistant"]
        assert assistant == [truncated.transcript]
    finally:
        await model.close()


async def test_a_listener_is_not_called_again_while_it_handles_an_event(speech) -> None:
    # The session's barge-in: on speech started it cancels the response, from inside its handler.
    # A model that delivered the cancel's events (audio done, response done) from inside that
    # `send_event` called the session again before its handler had returned.
    model, recorder = await connected(
        dataclasses.replace(
            CONFIG, turn_detection=TurnDetection(silence_duration_ms=600, interrupt_response=False)
        )
    )
    handling: list[str] = []
    reentered: list[str] = []

    class BargingIn:
        async def on_event(self, event: RealtimeModelEvent) -> None:
            if handling:
                reentered.append(event.type)
            if isinstance(event, ModelSpeechStarted):
                handling.append(event.type)
                await model.send_event(CancelResponse())
                handling.pop()

    model.add_listener(BargingIn())
    try:
        await model.send_event(CreateResponse(say="Thank you for calling. We deliver every day of the week."))
        await recorder.wait_for(lambda e: isinstance(e, ModelAudio))
        await feed(model, speech("Stop please"))
        await recorder.wait_for(lambda e: isinstance(e, ModelResponseDone))
        assert recorder.of(ModelResponseDone)[0].status == "cancelled"
        assert reentered == []
    finally:
        await model.close()


async def test_caller_speech_barges_in(speech) -> None:
    model, recorder = await connected()
    try:
        await model.send_event(CreateResponse(say="Thank you for calling. We deliver every day of the week."))
        await recorder.wait_for(lambda e: isinstance(e, ModelAudio))
        await feed(model, speech("Stop please"))
        started = await recorder.wait_for(lambda e: isinstance(e, ModelSpeechStarted))
        audio_after = [
            e
            for t, e in recorder.events
            if isinstance(e, ModelAudio)
            and t > recorder.events[[ev for _, ev in recorder.events].index(started)][0]
        ]
        assert len(audio_after) <= 1
        assert recorder.of(ModelResponseDone)[0].status == "cancelled"
    finally:
        await model.close()


async def test_two_calls_share_the_models_without_cross_talk(speech) -> None:
    (a, rec_a), (b, rec_b) = await connected(), await connected()
    try:
        calls = await asyncio.gather(
            ask(a, rec_a, speech("What time is it right now?")),
            ask(b, rec_b, speech("Where is my order number forty two?")),
        )
        assert [c.name for c in calls] == ["get_time", "lookup_order"]
        texts = await asyncio.gather(
            tool_answer(a, rec_a, calls[0], '{"time": "10:45"}'),
            tool_answer(b, rec_b, calls[1], '{"status": "delivered", "city": "Boston"}'),
        )
        assert re.search(r"10\W?45|ten forty", texts[0]) and "boston" not in texts[0], texts
        assert "boston" in texts[1] and not re.search(r"10\W?45", texts[1]), texts
    finally:
        await a.close()
        await b.close()


async def test_audio_sent_with_commit_ends_the_turn_without_turn_detection(speech) -> None:
    """The Agents SDK's ``RealtimeModelSendAudio(audio, commit=True)``, sent to the model directly."""
    model, recorder = await connected(dataclasses.replace(CONFIG, turn_detection=None))
    try:
        pcm = silence(200) + speech("What time is it right now?") + silence(200)
        chunk = RATE * 2 // 10
        for start in range(0, len(pcm), chunk):
            last = start + chunk >= len(pcm)
            await model.send_event(RealtimeModelSendAudio(pcm[start : start + chunk], commit=last))
        final = await recorder.wait_for(lambda e: isinstance(e, ModelInputTranscript) and e.is_final)
        assert isinstance(final, ModelInputTranscript) and "time" in final.transcript.lower()
    finally:
        await model.close()
