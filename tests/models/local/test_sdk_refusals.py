"""The embedded model under Agents SDK code: what it cannot do (stored prompts, images, OpenAI-only
settings) is said, not dropped; raw client events that have a meaning run."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import structlog

from tests.models.conftest import Recorder
from tests.models.local.conftest import spoken
from voicegw.contracts.model import ModelError, RealtimeModelConfig, SendUserMessage, UserImage
from voicegw.models.local import LocalRealtimeModel
from voicegw.models.local.cascade import IMAGES_REFUSED, PROMPT_REFUSED, SDK_DEFAULT_VOICE
from voicegw.models.local.settings import unhonoured_settings
from voicegw.realtime import RealtimeAgent, RealtimeRunConfig, RealtimeRunner, RealtimeSession
from voicegw.realtime.model_inputs import RealtimeModelSendRawMessage, RealtimeModelSendSessionUpdate


async def test_a_stored_prompt_is_refused_before_anything_loads() -> None:
    model = LocalRealtimeModel()
    try:
        with pytest.raises(ValueError, match="cannot use a stored prompt"):
            await model.connect(RealtimeModelConfig(prompt={"id": "pmpt_1"}))
    finally:
        await model.close()


async def test_a_session_with_an_agent_prompt_fails_to_start_with_the_reason() -> None:
    runner = RealtimeRunner(RealtimeAgent(name="A", prompt={"id": "pmpt_1"}), model=LocalRealtimeModel())
    session = await runner.run()
    with pytest.raises(ValueError, match=r"agent\.prompt"):
        await session.enter()
    assert session.result.end_reason == "error"
    assert PROMPT_REFUSED in (session.result.error or "")


async def test_an_image_gets_an_error_event_naming_input_image() -> None:
    model = LocalRealtimeModel()
    recorder = Recorder()
    model.add_listener(recorder)
    try:
        await model.send_event(SendUserMessage("", (UserImage("data:image/png;base64,iVBORw0KGgo="),)))
    finally:
        await model.close()
    assert recorder.events[0] == ModelError(IMAGES_REFUSED, code="unsupported_input_image")
    assert [e.type for e in recorder.events[1:]] == ["connection_status"]  # closed: nothing else
    assert "input_image" in IMAGES_REFUSED


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"speed": 1.2}, "speed=1.2"),
        ({"modalities": ["text"]}, "modalities=['text']"),
        ({"tool_choice": "required"}, "tool_choice='required'"),
        ({"reasoning": {"effort": "low"}}, "reasoning="),
        ({"turn_detection": {"model_version": "vad-2"}}, "turn_detection.model_version='vad-2'"),
    ],
)
async def test_openai_only_settings_are_refused_by_name(settings: dict[str, object], named: str) -> None:
    runner = RealtimeRunner(RealtimeAgent(name="A"), model=LocalRealtimeModel())
    session = await runner.run(model_config={"initial_model_settings": settings})  # type: ignore[typeddict-item]
    with pytest.raises(ValueError, match=re.escape(named)):
        await session.enter()


def test_what_the_embedded_model_does_anyway_is_accepted() -> None:
    assert (
        unhonoured_settings(
            {
                "modalities": ["audio"],
                "tool_choice": "auto",
                "input_audio_transcription": {"model": "whisper-1"},
            }
        )
        == []
    )


async def one_spoken_answer(
    config: RealtimeRunConfig, ask: Callable[[RealtimeSession], Awaitable[None]]
) -> RealtimeSession:
    """A session on the embedded model, asked by `ask`, run until its first spoken answer ended."""
    runner = RealtimeRunner(
        RealtimeAgent(name="A", instructions="You are a phone assistant."),
        model=LocalRealtimeModel(),
        config=config,
    )
    audio = 0
    async with await runner.run() as session:
        await ask(session)
        async for event in session:
            if event.type == "audio":
                audio += len(event.audio.data)
            if event.type == "audio_end":
                break
    assert audio > 0
    return session


@pytest.mark.timeout(120)
async def test_a_raw_response_create_greets_on_the_embedded_model() -> None:
    """The SDK's twilio_sip example greets with a raw ``response.create``: the embedded model speaks."""
    greeting = RealtimeModelSendRawMessage(
        message={
            "type": "response.create",
            "other_data": {"response": {"instructions": "Say exactly 'Welcome!' now."}},
        }
    )
    session = await one_spoken_answer({}, lambda session: session.model.send_event(greeting))
    [answer] = [item for item in session.history if item.type == "message"]
    assert answer.status == "completed" and answer.content[0].transcript


async def test_a_voice_it_does_not_have_is_refused_by_name_its_own_and_the_sdk_default_are_not() -> None:
    model = LocalRealtimeModel()
    try:
        with pytest.raises(
            ValueError, match=re.escape(f"voice='marin': the embedded model has one voice, {model.voice!r}")
        ):
            await model.send_event(RealtimeModelSendSessionUpdate(session_settings={"voice": "marin"}))
        for voice in (model.voice, SDK_DEFAULT_VOICE):
            await model.send_event(RealtimeModelSendSessionUpdate(session_settings={"voice": voice}))
    finally:
        await model.close()
    assert model.voice == "en_US-joe-medium"


async def test_a_model_name_is_not_refused_but_logged_as_not_used() -> None:
    """Every SDK example names an OpenAI model: the embedded model runs them, saying it has its own."""
    model = LocalRealtimeModel()
    try:
        with structlog.testing.capture_logs() as logs:
            await model.send_event(
                RealtimeModelSendSessionUpdate(session_settings={"model_name": "gpt-realtime"})
            )
    finally:
        await model.close()
    assert [(e["event"], e["model_name"]) for e in logs] == [("model_name_not_used", "gpt-realtime")]


@pytest.mark.timeout(120)
async def test_a_session_update_mid_session_changes_the_embedded_model_or_names_what_it_cannot() -> None:
    model = LocalRealtimeModel()
    runner = RealtimeRunner(RealtimeAgent(name="A", instructions="Be brief."), model=model)
    async with await runner.run() as session:
        update = RealtimeModelSendSessionUpdate(
            session_settings={"instructions": "Speak like a pirate.", "temperature": 0.7}
        )
        await session.model.send_event(update)
        with pytest.raises(ValueError, match=re.escape(PROMPT_REFUSED)):
            await session.model.send_event(
                RealtimeModelSendSessionUpdate(session_settings={"prompt": {"id": "pmpt_1"}})
            )
        with pytest.raises(ValueError, match=re.escape("speed=1.2")):
            await session.model.send_event(RealtimeModelSendSessionUpdate(session_settings={"speed": 1.2}))
    config = model._core.config  # what the LLM is prompted with next
    assert (config.instructions, config.temperature, config.sample_rate) == (
        "Speak like a pirate.",
        0.7,
        24000,
    )


@pytest.mark.timeout(120)
async def test_push_to_talk_without_turn_detection_is_heard_and_answered(tmp_path: Path) -> None:
    """``turn_detection: None`` and ``send_audio(..., commit=True)``: the turn is the audio sent
    until the commit (it was dropped unheard before)."""
    question = spoken("Hello, can you hear me?", tmp_path, rate=24000)
    session = await one_spoken_answer(
        {"turn_detection": None}, lambda session: session.send_audio(question, commit=True)
    )
    user, answer = [item for item in session.history if item.type == "message"][:2]
    assert "hear" in user.content[0].transcript.lower()
    assert answer.role == "assistant" and answer.content[0].transcript
