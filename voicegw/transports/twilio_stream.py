"""`TwilioStreamTransport`: a phone call reaching the agent as a Twilio Media Stream.

Twilio runs ``<Connect><Stream url="wss://..."/>`` by opening a WebSocket to us and sending the
caller's audio as JSON ``media`` messages of 8 kHz μ-law (`twilio_protocol` parses and builds
the messages). Agent audio goes back as ``media`` messages of 20 ms, each followed by a
``mark``; Twilio buffers and plays it, and echoes each mark once the audio before it has played.
So `played_ms()` is what the caller heard, not what we sent, and `flush()` (barge-in) sends a
``clear`` and answers with the acknowledged ms of the item being played.

Works over any WebSocket object with ``async send(text)``, ``async recv()`` and ``async close()``
(a `websockets` server connection; an adapter makes an aiohttp one fit). Two tasks, owned and
cancelled by `close()`: a reader (messages in) and a writer (messages out, in order, so that a
``clear`` also drops the audio we had not yet written).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from typing import Any, Protocol

import structlog

from voicegw.audio.codecs import PCMU
from voicegw.audio.format import BYTES_PER_SAMPLE, FRAME_MS
from voicegw.contracts.transport import (
    AudioFrame,
    CallEvent,
    CallStateChanged,
    DtmfReceived,
    EndReason,
    TransportClosed,
)
from voicegw.transports.queues import until_end
from voicegw.transports.twilio_protocol import (
    SAMPLE_RATE,
    Connected,
    Dtmf,
    Mark,
    Media,
    PlaybackMarks,
    Start,
    Stop,
    TwilioMessage,
    TwilioProtocolError,
    clear_message,
    mark_message,
    media_message,
    parse_message,
)

log = structlog.get_logger()

FRAME_BYTES = SAMPLE_RATE * FRAME_MS // 1000 * BYTES_PER_SAMPLE
START_TIMEOUT_S = 10.0
"""How long `accept` waits for Twilio's ``start`` message."""

STOPPED_REASON = "the Twilio stream stopped (caller hung up)"
CLOSED_REASON = "the Twilio WebSocket closed (caller hung up)"


class TextWebSocket(Protocol):
    """The little of a WebSocket connection the transport uses."""

    async def send(self, message: str, /) -> None: ...

    async def recv(self) -> str | bytes: ...

    async def close(self) -> None: ...


class TwilioStreamTransport:
    """An `AudioTransport` over one Twilio Media Stream (see the module docs); build it with `accept`."""

    sample_rate = SAMPLE_RATE

    def __init__(self, socket: TextWebSocket, start: Start) -> None:
        """For a stream whose ``start`` has been read; `accept` does that and starts the tasks."""
        self.start = start
        """Twilio's ``start`` message: stream and call SIDs, custom parameters."""
        self.call_id = start.call_sid or start.stream_sid
        self._socket = socket
        self._log = log.bind(call_id=self.call_id, stream_sid=start.stream_sid)
        self._decoder = PCMU()
        self._encoder = PCMU()
        self._marks = PlaybackMarks(SAMPLE_RATE)
        self._inbound = bytearray()
        self._in_ms = 0
        self._frames: asyncio.Queue[AudioFrame | None] = asyncio.Queue()
        self._events: asyncio.Queue[CallEvent | None] = asyncio.Queue()
        self._events.put_nowait(CallStateChanged("answered"))
        self._outbox: deque[str] = deque()
        self._outbox_ready = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._frames_taken = False
        self._ended = False
        self._closed = False
        self.sent_messages = 0
        """Messages written to Twilio so far (media, marks, clears)."""

    @classmethod
    async def accept(
        cls, socket: TextWebSocket, *, start_timeout: float = START_TIMEOUT_S
    ) -> TwilioStreamTransport:
        """Read the stream's opening (``connected``, ``start``) and start the transport.

        Raises `TwilioProtocolError` when the stream ends before its ``start`` and `TimeoutError`
        when none comes within `start_timeout` seconds.
        """
        start = await asyncio.wait_for(_read_start(socket), start_timeout)
        transport = cls(socket, start)
        transport._run()
        transport._log.info(
            "twilio_stream_started", tracks=list(start.tracks), parameters=dict(start.custom_parameters)
        )
        return transport

    def _run(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._read(), name=f"twilio-read-{self.call_id}"),
            loop.create_task(self._write(), name=f"twilio-write-{self.call_id}"),
        ]

    # --- AudioTransport ----------------------------------------------------------------------

    def frames(self) -> AsyncIterator[AudioFrame]:
        if self._frames_taken:
            raise RuntimeError("frames() can be iterated once")
        self._frames_taken = True
        return until_end(self._frames)

    def events(self) -> AsyncIterator[CallEvent]:
        return until_end(self._events)

    async def play(self, pcm: bytes, *, item_id: str) -> None:
        """Queue agent audio: 20 ms ``media`` messages, each followed by its ``mark``."""
        if self._ended or self._closed:
            raise TransportClosed("the Twilio stream has ended")
        sid = self.start.stream_sid
        for offset in range(0, len(pcm), FRAME_BYTES):
            chunk = pcm[offset : offset + FRAME_BYTES]
            self._outbox.append(media_message(sid, self._encoder.encode(chunk)))
            name = self._marks.audio_sent(item_id, len(chunk) // BYTES_PER_SAMPLE)
            self._outbox.append(mark_message(sid, name))
        self._outbox_ready.set()

    def flush(self) -> int:
        """Drop what is not yet written, tell Twilio to ``clear`` its buffer; ms of the item heard."""
        self._outbox.clear()
        played = self._marks.clear()
        if not self._ended:
            self._outbox.append(clear_message(self.start.stream_sid))
            self._outbox_ready.set()
        self._log.debug("twilio_playback_cleared", played_ms=played, item_id=self._marks.current)
        return played

    def played_ms(self, item_id: str) -> int:
        """Milliseconds of `item_id` that Twilio has confirmed played (its echoed marks)."""
        return self._marks.played_ms(item_id)

    async def close(self) -> None:
        """Stop both tasks and close the WebSocket; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        current = asyncio.current_task()
        tasks = [task for task in self._tasks if task is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._end(EndReason.CLOSED)
        try:
            await self._socket.close()
        except Exception as exc:  # already gone: nothing left to release
            self._log.debug("twilio_socket_close_failed", error=repr(exc))

    # --- the two tasks -----------------------------------------------------------------------

    async def _read(self) -> None:
        while True:
            try:
                text = await self._socket.recv()
            except Exception as exc:  # any library's "connection closed"
                self._log.info("twilio_socket_closed", error=repr(exc))
                self._end(EndReason.CALLER_HUNG_UP, CLOSED_REASON)
                return
            try:
                message = parse_message(text)
            except TwilioProtocolError as exc:
                self._log.warning("twilio_message_ignored", error=str(exc))
                continue
            if self._handle(message):
                self._end(EndReason.CALLER_HUNG_UP, STOPPED_REASON)
                return

    def _handle(self, message: TwilioMessage) -> bool:
        """Act on one message; True when the stream is over."""
        match message:
            case Media(payload=payload, track=track):
                if track == "inbound":
                    self._caller_audio(self._decoder.decode(payload))
            case Mark(name=name):
                if not self._marks.echoed(name):
                    self._log.warning("twilio_mark_ignored", reason="not one of ours", mark=name)
            case Dtmf(digit=digit):
                self._log.info("twilio_dtmf", digit=digit)
                # Twilio reports the key, not how long it was held.
                self._events.put_nowait(DtmfReceived(digit, 0))
            case Stop():
                self._log.info("twilio_stream_stopped")
                return True
            case Start() | Connected():
                self._log.warning(
                    "twilio_message_ignored", reason="the stream has started", twilio_event=message.type
                )
        return False

    def _caller_audio(self, pcm: bytes) -> None:
        # Twilio sends 20 ms chunks; re-cut anyway so every frame is exactly 20 ms.
        self._inbound.extend(pcm)
        while len(self._inbound) >= FRAME_BYTES:
            frame = bytes(self._inbound[:FRAME_BYTES])
            del self._inbound[:FRAME_BYTES]
            self._frames.put_nowait(AudioFrame(frame, SAMPLE_RATE, self._in_ms))
            self._in_ms += FRAME_MS

    async def _write(self) -> None:
        while True:
            while not self._outbox:
                self._outbox_ready.clear()
                await self._outbox_ready.wait()
            message = self._outbox.popleft()
            try:
                await self._socket.send(message)
            except Exception as exc:
                self._log.info("twilio_send_failed", error=repr(exc))
                self._end(EndReason.CALLER_HUNG_UP, CLOSED_REASON)
                return
            self.sent_messages += 1

    def _end(self, reason: EndReason, detail: str = "") -> None:
        if self._ended:
            return
        self._ended = True
        self._outbox.clear()
        self._frames.put_nowait(None)
        self._events.put_nowait(CallStateChanged("ended", detail or reason.words, reason))
        self._events.put_nowait(None)


async def _read_start(socket: TextWebSocket) -> Start:
    """Messages up to the stream's ``start`` (``connected`` and garbage are skipped)."""
    while True:
        try:
            message: Any = parse_message(await socket.recv())
        except TwilioProtocolError as exc:
            log.warning("twilio_message_ignored", error=str(exc))
            continue
        match message:
            case Start():
                return message
            case Stop():
                raise TwilioProtocolError("the Twilio stream stopped before it started")
            case _:
                continue
