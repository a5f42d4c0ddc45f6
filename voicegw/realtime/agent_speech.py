"""The agent's side of a session: its audio to the caller, its transcript, what the caller heard.

`AgentSpeech` is a part of `RealtimeSession` (a mixin: the session is the only class that uses
it): model audio goes to the transport and out as ``audio`` events, held back while output
guardrails read the text; history items follow the transcript; a barge-in or an interrupt flushes
the transport, cancels the response and truncates each item at what was played.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any

from voicegw.contracts.model import (
    CancelResponse,
    ModelAudio,
    ModelTranscriptDelta,
    RealtimeModelCommand,
    SendUserMessage,
    TruncateItem,
)
from voicegw.contracts.transport import AudioTransport, TransportClosed
from voicegw.realtime.agent import RealtimeAgent
from voicegw.realtime.audio_formats import SessionAudio
from voicegw.realtime.config import RealtimeRunConfig
from voicegw.realtime.context import RunContextWrapper
from voicegw.realtime.events import (
    RealtimeAudio,
    RealtimeAudioEnd,
    RealtimeAudioInterrupted,
    RealtimeEventInfo,
    RealtimeGuardrailTripped,
    RealtimeHistoryAdded,
    RealtimeHistoryUpdated,
    RealtimeSessionEvent,
    VoicegwSessionEvent,
)
from voicegw.realtime.guardrails import TranscriptGate, run_output_guardrails
from voicegw.realtime.items import History, RealtimeItem, assistant_audio_item, heard_part
from voicegw.realtime.model import RealtimePlaybackTracker
from voicegw.realtime.playback import AgentPlayback
from voicegw.realtime.tool_calls import ToolCallRunner


class AgentSpeech:
    """The agent's speech, as a part of `RealtimeSession` (which provides the attributes below)."""

    _transport: AudioTransport | None
    _tracker: RealtimePlaybackTracker | None
    _config: RealtimeRunConfig
    _context: RunContextWrapper[Any]
    _info: RealtimeEventInfo
    _formats: SessionAudio
    _gate: TranscriptGate[ModelAudio]
    _playback: AgentPlayback
    _tools: ToolCallRunner
    _history: History
    _transcripts: dict[str, str]
    _latencies: list[float]
    _turn_ended_at: float | None
    _log: Any
    _send: Callable[[RealtimeModelCommand], Awaitable[None]]
    _emit: Callable[[RealtimeSessionEvent | VoicegwSessionEvent], None]
    _spawn: Callable[[Coroutine[Any, Any, None]], Any]
    _now: Callable[[], float]

    if TYPE_CHECKING:

        @property
        def current_agent(self) -> RealtimeAgent[Any]: ...

    async def _on_audio(self, event: ModelAudio) -> None:
        if not self._playback.accepts(event.item_id, event.response_id):
            return  # what the model still sends after a cancel must not be played
        self._tools.stop_filler()
        if self._playback.audio(event.item_id, event.content_index, event.response_id, len(event.data)):
            self._ensure_assistant_item(event.item_id)
        if self._turn_ended_at is not None:
            self._latencies.append((self._now() - self._turn_ended_at) * 1000)
            self._turn_ended_at = None
        if not self._gate.hold(event.item_id, event):
            await self._deliver_audio(event)

    async def _deliver_audio(self, event: ModelAudio) -> None:
        """Agent audio to the caller: the transport, and the ``audio`` event (apps without one play
        it, in the run's ``output_audio_format``)."""
        if self._transport is not None:
            try:
                await self._transport.play(event.data, item_id=event.item_id)
            except TransportClosed:
                return  # the caller hung up as the audio came: the call's events say so, no error
        if self._formats.output.name != "pcm16":
            event = dataclasses.replace(event, data=self._formats.output.from_pcm(event.data))
        self._emit(RealtimeAudio(event, event.item_id, event.content_index, self._info))

    def _on_transcript_delta(self, event: ModelTranscriptDelta) -> None:
        if not self._playback.accepts(event.item_id, event.response_id):
            return
        self._ensure_assistant_item(event.item_id)
        self._transcripts[event.item_id] = self._transcripts.get(event.item_id, "") + event.delta
        if self._guardrails() and (text := self._gate.add_text(event.item_id, event.delta)) is not None:
            self._spawn(self._check_output(event.item_id, event.response_id, text))

    def _on_audio_done(self, item_id: str, content_index: int) -> None:
        self._emit(RealtimeAudioEnd(item_id, content_index, self._info))
        if self._playback.interrupted(item_id):
            return
        transcript = self._transcripts.get(item_id, "")
        self._put_history(assistant_audio_item(item_id, transcript, "completed"))
        if self._guardrails() and (text := self._gate.finish(item_id)) is not None:
            self._spawn(self._check_output(item_id, self._playback.response_of(item_id), text))

    def _ensure_assistant_item(self, item_id: str) -> None:
        if self._history.get(item_id) is None:
            self._put_history(assistant_audio_item(item_id, ""))

    # --- guardrails --------------------------------------------------------------------------

    def _guardrails(self) -> list[Any]:
        combined = [*self.current_agent.output_guardrails, *self._config.get("output_guardrails", [])]
        return list({id(g): g for g in combined}.values())

    async def _check_output(self, item_id: str, response_id: str, text: str) -> None:
        agent = self.current_agent
        tripped = await run_output_guardrails(self._guardrails(), self._context, agent, text)
        if not tripped:
            for audio in self._gate.check_passed(item_id):
                if self._playback.accepts(audio.item_id, audio.response_id):  # no barge-in meanwhile
                    await self._deliver_audio(audio)
            return
        if self._playback.interrupted(item_id):
            return  # an earlier check of this item already tripped
        names = ", ".join(result.guardrail.get_name() for result in tripped)
        self._log.info("output_guardrail_tripped", item_id=item_id, guardrails=names)
        await self._interrupt(item_id)
        self._emit(RealtimeGuardrailTripped(tripped, text, self._info))
        await self._send(SendUserMessage(f"guardrail triggered: {names}"))

    # --- barge-in ----------------------------------------------------------------------------

    async def _barge_in(self) -> None:
        if self._playback.speaking():
            await self._interrupt()

    async def _interrupt(self, item_id: str | None = None) -> None:
        """Flush, cancel, truncate: the agent stops at once and its items hold what was heard."""
        if self._transport is not None:
            self._transport.flush()  # first, in this very call: nothing stale reaches the caller
        self._tools.filler_flushed()
        if self._tracker is not None:
            self._tracker.on_interrupted()
        if self._playback.cancel_active() is not None:
            await self._send(CancelResponse())
        for cut in self._playback.cut(item_id):
            self._gate.drop(cut.item_id)
            heard = heard_part(self._transcripts.get(cut.item_id, ""), cut.played_ms, cut.received_ms)
            self._put_history(assistant_audio_item(cut.item_id, heard, "incomplete"))
            # After our estimate: a model that knows the exact cut answers with ModelItemTruncated.
            await self._send(TruncateItem(cut.item_id, cut.played_ms, cut.content_index))
            self._emit(RealtimeAudioInterrupted(cut.item_id, cut.content_index, cut.played_ms, self._info))
            self._log.info("audio_interrupted", item_id=cut.item_id, played_ms=cut.played_ms, heard=heard)

    def _put_history(self, item: RealtimeItem) -> None:
        if self._history.put(item):
            self._emit(RealtimeHistoryAdded(self._history.items[-1], self._info))
        else:
            self._emit(RealtimeHistoryUpdated(self._history.items, self._info))
