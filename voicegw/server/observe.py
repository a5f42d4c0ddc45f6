"""What the server keeps of each call besides the call itself: metrics, transcript, recording, logs.

`CallWatch.wrap(handler)` runs around every answered call's handler (echo or agent), in the task
the user agent started with the call's id in structlog's context (so the session's and the model's
tasks inherit it): it binds the agent's name there too and records the call when configured.
`CallWatch.session(call, agent)` gives the agent handler a `SessionRecord` to hand each session
event to, and to finish with the session once it has ended (metrics of its result, transcript).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Protocol

import structlog

from voicegw.realtime.result import RealtimeResult
from voicegw.realtime.session import RealtimeSession
from voicegw.rtp.endpoint import RtpEndpoint
from voicegw.server.metrics import Metrics
from voicegw.server.records import DiskWriter, StereoRecorder, Transcript, call_file_stem
from voicegw.sip.call import SipCall
from voicegw.sip.ua import CallHandler

log = structlog.get_logger(__name__)


class CallFacts(Protocol):
    """Where a call's handler hands the facts of its record (`CallRecords.note`, or, in a call
    worker, the message that carries them to the server, which keeps the records)."""

    def note(self, call: SipCall, **facts: str | None) -> None: ...


class CallWatch:
    """Per-call observation for one server; `close()` once the calls are over."""

    def __init__(
        self,
        metrics: Metrics | None = None,
        *,
        transcripts_dir: Path | None = None,
        recordings_dir: Path | None = None,
        records: CallFacts | None = None,
    ) -> None:
        """`records`, when given, learn each call's agent, transcript and recording."""
        self.metrics = metrics
        self.records = records
        self.transcripts_dir = transcripts_dir
        self.recordings_dir = recordings_dir
        self._writer = DiskWriter() if transcripts_dir or recordings_dir else None

    def wrap(self, handler: CallHandler, *, agent: str | None = None) -> CallHandler:
        """`handler` with the agent's name in every log line and the call recorded."""

        async def run(call: SipCall) -> None:
            if agent is not None:
                structlog.contextvars.bind_contextvars(agent=agent)
                self.note(call, agent=agent)
            recorder = self._start_recording(call)
            try:
                await handler(call)
            finally:
                if recorder is not None:
                    if isinstance(call.endpoint, RtpEndpoint):
                        call.endpoint.set_tap(None)
                    await recorder.close()
                    log.info("call_recorded", path=str(recorder.path), frames=recorder.frames_recorded)

        return run

    def _start_recording(self, call: SipCall) -> StereoRecorder | None:
        if self.recordings_dir is None or self._writer is None or not isinstance(call.endpoint, RtpEndpoint):
            return None
        path = self.recordings_dir / f"{call_file_stem(call.call_id, time.time())}.wav"
        recorder = StereoRecorder(path, call.sample_rate, self._writer, call_id=call.call_id)
        self.note(call, recording=str(path))
        call.endpoint.set_tap(recorder.tick)
        return recorder

    def session(self, call: SipCall, agent: str) -> SessionRecord:
        """For an agent session of `call`; call it in the call's task (it binds the agent's name)."""
        structlog.contextvars.bind_contextvars(agent=agent)
        transcript = None
        if self.transcripts_dir is not None:
            path = self.transcripts_dir / f"{call_file_stem(call.call_id, time.time())}.jsonl"
            transcript = Transcript(path, call.call_id, started_at=call.answered_at or time.monotonic())
        self.note(call, agent=agent, transcript=str(transcript.path) if transcript else None)
        return SessionRecord(call, self.metrics, transcript, self._writer)

    def note(self, call: SipCall, **facts: str | None) -> None:
        """Facts for `call`'s record (`CallRecords.note`), when records are kept."""
        if self.records is not None:
            self.records.note(call, **facts)

    async def close(self) -> None:
        """Finish every pending write."""
        if self._writer is not None:
            await self._writer.close()


class SessionRecord:
    """What one agent session feeds: the metrics and its transcript."""

    def __init__(
        self, call: SipCall, metrics: Metrics | None, transcript: Transcript | None, writer: DiskWriter | None
    ) -> None:
        self._call = call
        self._metrics = metrics
        self._transcript = transcript
        self._writer = writer

    def on_event(self, event: object) -> None:
        """One session event (``async for event in session``)."""
        if self._metrics is not None:
            self._metrics.session_event(event)
        if self._transcript is not None:
            self._transcript.add(event)

    async def finish(self, session: RealtimeSession) -> None:
        """The session has ended (or failed): observe its result, write the transcript."""
        result = _result_of(session)
        if self._metrics is not None and result is not None:
            self._metrics.session_ended(result)
        if self._transcript is not None and self._writer is not None:
            lines = self._transcript.lines(result, sip_reason=self._call.end_detail)
            await self._writer.submit(self._transcript.write, lines)
            log.info("transcript_written", path=str(self._transcript.path), lines=len(lines))


def _result_of(session: RealtimeSession) -> RealtimeResult | None:
    try:
        return session.result
    except RuntimeError:  # never configured or started: nothing to report
        return None
