"""The OpenAI Realtime wire protocol without I/O: client events built, server events decoded."""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np
import pytest

from voicegw.contracts.model import (
    CachedTokensByModality,
    InputTokensByModality,
    InputTokensDetails,
    ModelAudio,
    ModelError,
    ModelInputTranscript,
    ModelRawEvent,
    ModelResponseDone,
    ModelToolCall,
    ModelUsage,
    OutputTokensByModality,
    RealtimeModelConfig,
    ToolSpec,
    TurnDetection,
    Usage,
    UserImage,
)
from voicegw.models.openai_protocol import (
    OpenAIProtocolError,
    ServerEventDecoder,
    WireAudio,
    append_audio_event,
    commit_audio_event,
    response_cancel_event,
    response_create_event,
    session_object,
    session_update_event,
    tool_output_event,
    truncate_event,
    turn_detection_object,
    user_message_event,
)
from voicegw.testing.realtime_schema import client_event_errors

TOOL = ToolSpec("get_time", "The time.", {"type": "object", "properties": {}})
CONFIGS = [
    RealtimeModelConfig(sample_rate=8000, instructions="Hi.", voice="marin", tools=(TOOL,)),
    RealtimeModelConfig(sample_rate=16000, turn_detection=TurnDetection("semantic_vad", eagerness="low")),
    RealtimeModelConfig(turn_detection=None, transcribe_input=False, max_output_tokens=300),
    RealtimeModelConfig(
        vocabulary=("voicegw", "Kamailio"),
        extra={
            "speed": 1.2,
            "modalities": ["audio"],
            "tool_choice": "auto",
            "input_audio_format": "pcm16",
            "noise_reduction": {"type": "near_field"},
        },
    ),
]


@pytest.mark.parametrize("config", CONFIGS)
def test_session_update_follows_the_reference(config: RealtimeModelConfig) -> None:
    event = session_update_event(session_object(config, transcription_model="gpt-4o-mini-transcribe"))
    assert client_event_errors(event) == []


def test_every_client_event_follows_the_reference() -> None:
    for event in [
        append_audio_event(b"\x01\x02"),
        commit_audio_event(),
        user_message_event("hello"),
        tool_output_event("call_1", '{"ok": true}'),
        response_create_event(),
        response_create_event(instructions="Greet."),
        response_create_event(say="Welcome to voicegw."),
        response_cancel_event(),
        response_cancel_event("resp_1"),
        truncate_event("item_1", 0, 1234),
    ]:
        assert client_event_errors(json.loads(json.dumps(event))) == [], event


def test_the_schema_check_catches_deviations() -> None:
    assert client_event_errors({"type": "input_audio_buffer.push", "audio": "AA=="}) == [
        "unknown client event type 'input_audio_buffer.push'"
    ]
    assert client_event_errors({"type": "conversation.item.truncate", "item_id": "i", "audio_end_ms": 5}) == [
        "conversation.item.truncate.content_index: required"
    ]
    bad = {
        "type": "session.update",
        "session": {"type": "realtime", "audio": {"input": {"format": {"type": "pcm16"}}}},
    }
    assert client_event_errors(bad) == [
        "session.update.session.audio.input.format.type: 'pcm16' is not one of "
        "['audio/pcm', 'audio/pcma', 'audio/pcmu']"
    ]
    assert client_event_errors({"type": "session.update", "session": {"type": "realtime", "voice": "x"}}) == [
        "session.update.session.voice: unknown field"
    ]


def test_session_object_maps_the_config() -> None:
    phone = session_object(CONFIGS[0], transcription_model="whisper-1")
    assert phone["audio"]["input"]["format"] == phone["audio"]["output"]["format"] == {"type": "audio/pcmu"}
    assert phone["audio"]["output"]["voice"] == "marin"
    assert phone["audio"]["input"]["transcription"] == {"model": "whisper-1"}
    assert phone["audio"]["input"]["turn_detection"] == {
        "type": "server_vad",
        "threshold": 0.5,
        "prefix_padding_ms": 300,
        "silence_duration_ms": 500,
        "create_response": True,
        "interrupt_response": True,
    }
    assert phone["tools"] == [
        {
            "type": "function",
            "name": "get_time",
            "description": "The time.",
            "parameters": {"type": "object", "properties": {}},
        }
    ]
    wide = session_object(CONFIGS[1], transcription_model="m")
    assert wide["audio"]["output"]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert wide["audio"]["input"]["turn_detection"] == {
        "type": "semantic_vad",
        "eagerness": "low",
        "create_response": True,
        "interrupt_response": True,
    }
    manual = session_object(CONFIGS[2], transcription_model="m")
    assert manual["audio"]["input"]["turn_detection"] is None
    assert manual["audio"]["input"]["transcription"] is None
    assert manual["max_output_tokens"] == 300
    extra = session_object(CONFIGS[3], transcription_model="m")
    assert extra["audio"]["output"]["speed"] == 1.2
    assert extra["output_modalities"] == ["audio"] and extra["tool_choice"] == "auto"
    assert extra["audio"]["input"]["noise_reduction"] == {"type": "near_field"}
    assert "input_audio_format" not in extra
    assert "voicegw, Kamailio" in extra["audio"]["input"]["transcription"]["prompt"]
    # Once the model has spoken the API refuses a voice change: the update leaves it out.
    assert (
        "voice"
        not in session_object(CONFIGS[0], transcription_model="m", include_voice=False)["audio"]["output"]
    )


def test_say_asks_for_the_exact_words() -> None:
    event = response_create_event(say="Thanks for calling.")
    assert event["response"]["instructions"].endswith(": Thanks for calling.")


# --- decoding ------------------------------------------------------------------------------


def decoder(rate: int = 24000) -> ServerEventDecoder:
    return ServerEventDecoder(WireAudio(rate))


def mapped(dec: ServerEventDecoder, event: dict[str, Any]) -> list[Any]:
    events = dec.decode(event)
    assert events[0] == ModelRawEvent(event)  # every event is also passed on raw, first
    return events[1:]


def delta(item: str, text: str) -> dict[str, Any]:
    return {
        "type": "conversation.item.input_audio_transcription.delta",
        "event_id": "e",
        "item_id": item,
        "content_index": 0,
        "delta": text,
    }


def test_input_transcription_partials_accumulate_per_item() -> None:
    dec = decoder()
    assert mapped(dec, delta("a", "Hel")) == [ModelInputTranscript("a", "Hel", is_final=False)]
    assert mapped(dec, delta("b", "Other")) == [ModelInputTranscript("b", "Other", is_final=False)]
    assert mapped(dec, delta("a", "lo")) == [ModelInputTranscript("a", "Hello", is_final=False)]
    completed = {
        "type": "conversation.item.input_audio_transcription.completed",
        "event_id": "e",
        "item_id": "a",
        "content_index": 0,
        "transcript": "Hello.",
    }
    assert mapped(dec, completed) == [ModelInputTranscript("a", "Hello.", is_final=True)]
    assert mapped(dec, delta("a", "x")) == [ModelInputTranscript("a", "x", is_final=False)]


def args_done(call_id: str = "c1", response_id: str = "r1") -> dict[str, Any]:
    return {
        "type": "response.function_call_arguments.done",
        "event_id": "e",
        "response_id": response_id,
        "item_id": "fc1",
        "output_index": 0,
        "call_id": call_id,
        "name": "get_time",
        "arguments": "{}",
    }


def item_done(status: str, call_id: str = "c1") -> dict[str, Any]:
    return {
        "type": "response.output_item.done",
        "event_id": "e",
        "response_id": "r1",
        "output_index": 0,
        "item": {
            "id": "fc1",
            "type": "function_call",
            "object": "realtime.item",
            "status": status,
            "name": "get_time",
            "call_id": call_id,
            "arguments": "{}",
        },
    }


def response(kind: str, status: str, **fields: Any) -> dict[str, Any]:
    return {
        "type": kind,
        "event_id": "e",
        "response": {"object": "realtime.response", "id": "r1", "status": status, **fields},
    }


def test_a_function_call_is_emitted_once() -> None:
    dec = decoder()
    assert mapped(dec, args_done()) == []
    assert mapped(dec, item_done("completed")) == [ModelToolCall("c1", "get_time", "{}", "fc1", "r1")]
    assert mapped(dec, item_done("completed")) == []
    assert [type(e) for e in mapped(dec, response("response.done", "completed"))] == [ModelResponseDone]


def test_a_cut_off_function_call_is_not_run() -> None:
    dec = decoder()
    mapped(dec, args_done())
    assert mapped(dec, item_done("incomplete")) == []
    dec = decoder()
    mapped(dec, args_done())
    assert [type(e) for e in mapped(dec, response("response.done", "cancelled"))] == [ModelResponseDone]


def test_a_call_without_output_item_done_runs_when_its_response_completes() -> None:
    dec = decoder()
    mapped(dec, args_done())
    events = mapped(dec, response("response.done", "completed"))
    assert [type(e) for e in events] == [ModelToolCall, ModelResponseDone]


def test_response_lifecycle_usage_and_audio() -> None:
    dec = decoder(16000)
    mapped(dec, response("response.created", "in_progress"))
    assert dec.active_response == "r1"
    pcm = (3000 * np.sin(np.arange(2400) / 5)).astype("<i2").tobytes()  # 100 ms at 24 kHz
    audio = {
        "type": "response.output_audio.delta",
        "event_id": "e",
        "response_id": "r1",
        "item_id": "i1",
        "output_index": 0,
        "content_index": 0,
        "delta": base64.b64encode(pcm).decode(),
    }
    (chunk,) = mapped(dec, audio)
    assert isinstance(chunk, ModelAudio) and chunk.item_id == "i1"
    assert abs(len(chunk.data) - 3200) <= 128  # resampled to 16 kHz (the resampler keeps a tail)
    assert dec.spoke
    usage = {"total_tokens": 10, "input_tokens": 4, "output_tokens": 6}
    (used, done) = mapped(dec, response("response.done", "completed", usage=usage))
    assert done == ModelResponseDone("r1", "completed")
    assert used == ModelUsage(Usage(4, 6, 10, output_audio_ms=100, requests=1))  # no details given
    assert dec.active_response is None


def test_usage_details_are_the_sdks_conversion_of_response_done() -> None:
    """As the SDK's `RealtimeModelUsageEvent`: cached tokens in `Usage`, modalities beside it."""
    usage = {
        "total_tokens": 253,
        "input_tokens": 132,
        "output_tokens": 121,
        "input_token_details": {
            "text_tokens": 119,
            "audio_tokens": 13,
            "cached_tokens": 64,
            "cached_tokens_details": {"text_tokens": 64, "audio_tokens": 0},
        },
        "output_token_details": {"text_tokens": 30, "audio_tokens": 91},
    }
    dec = decoder()
    mapped(dec, response("response.created", "in_progress"))
    used, _done = mapped(dec, response("response.done", "completed", usage=usage))
    assert used == ModelUsage(
        Usage(132, 121, 253, requests=1, input_tokens_details=InputTokensDetails(cached_tokens=64)),
        InputTokensByModality(119, 13, None, 64, CachedTokensByModality(64, 0, None)),
        OutputTokensByModality(30, 91),
    )


def test_a_response_without_usage_has_no_usage_event() -> None:
    dec = decoder()
    mapped(dec, response("response.created", "in_progress"))
    assert mapped(dec, response("response.done", "cancelled", usage=None)) == [
        ModelResponseDone("r1", "cancelled")
    ]


def test_a_failed_response_reports_its_error() -> None:
    details = {"type": "failed", "error": {"type": "server_error", "code": "internal"}}
    events = mapped(decoder(), response("response.done", "failed", status_details=details))
    assert events[0] == ModelError("the model reported an error (internal)", code="internal")
    assert isinstance(events[1], ModelResponseDone) and events[1].status == "failed"


def error_event(code: str, kind: str = "invalid_request_error") -> dict[str, Any]:
    return {
        "type": "error",
        "event_id": "e",
        "error": {"type": kind, "code": code, "message": "m", "param": None},
    }


def test_errors() -> None:
    dec = decoder()
    assert mapped(dec, error_event("invalid_api_key")) == [
        ModelError("m", code="invalid_api_key", fatal=True)
    ]
    assert mapped(dec, error_event("invalid_value")) == [ModelError("m", code="invalid_value")]
    assert mapped(dec, error_event("x", "authentication_error"))[0].fatal
    assert mapped(dec, error_event("response_cancel_not_active")) == []  # a lost race, not an error


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ("not json", "not JSON"),
        ("[1, 2]", "not an event"),
        ('{"type": "input_audio_buffer.speech_started", "audio_start_ms": 5}', "no valid 'item_id'"),
        (
            '{"type": "input_audio_buffer.speech_stopped", "item_id": "i", "audio_end_ms": true}',
            "audio_end_ms",
        ),
        (
            '{"type": "response.output_audio.delta", "response_id": "r", "item_id": "i", "content_index": 0,'
            ' "delta": "***"}',
            "not base64",
        ),
        (
            '{"type": "response.done", "response": {"id": "r", "status": "in_progress"}}',
            "status 'in_progress'",
        ),
    ],
)
def test_garbage_from_the_server_is_a_protocol_error(message: str, error: str) -> None:
    with pytest.raises(OpenAIProtocolError, match=error):
        decoder().decode_text(message)


def test_wire_audio_pcmu_and_split_samples() -> None:
    phone = WireAudio(8000)
    pcm = (8000 * np.sin(np.arange(160) / 3)).astype("<i2").tobytes()
    wire = phone.encode(pcm)
    assert len(wire) == 160  # one byte per sample: μ-law, not resampled
    back = np.frombuffer(phone.decode(wire), "<i2").astype(int)
    assert np.abs(back - np.frombuffer(pcm, "<i2")).max() < 300
    assert phone.wire_ms(wire) == 20
    wide = WireAudio(24000)
    assert wide.encode(pcm) == pcm
    assert wide.decode(b"\x01\x02\x03") == b"\x01\x02"
    assert wide.decode(b"\x04") == b"\x03\x04"


def test_a_vad_model_version_reaches_openais_turn_detection() -> None:
    assert turn_detection_object(TurnDetection(model_version="vad-2"))["model_version"] == "vad-2"  # type: ignore[index]
    assert "model_version" not in (turn_detection_object(TurnDetection()) or {})


def test_an_image_keeps_the_detail_asked_for() -> None:
    images = (UserImage("data:image/png;base64,AA==", "high"), UserImage("https://example.org/a.png"))
    content = user_message_event("look", images)["item"]["content"]
    assert content == [
        {"type": "input_text", "text": "look"},
        {"type": "input_image", "image_url": "data:image/png;base64,AA==", "detail": "high"},
        {"type": "input_image", "image_url": "https://example.org/a.png"},
    ]
