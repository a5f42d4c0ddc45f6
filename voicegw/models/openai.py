"""`OpenAIRealtimeModel`: the OpenAI Realtime API (GA) over a WebSocket.

A thin asyncio shell around `openai_protocol`: it owns the connection and one reader task,
turns commands into client events and server events into typed model events for the listeners.
When the socket drops it says so (a connection status and an error), reconnects with backoff a
bounded number of times (re-sending the session configuration), and otherwise ends with a fatal
error, so the session always learns how the model ended. A reconnection opens a new server
session, into which the conversation so far is re-sent as text (`ConversationMirror`: the API
cannot take assistant audio back); caller audio sent meanwhile is dropped, not queued.

A server session lives `session_limit` seconds at most (`SESSION_LIMIT_S`). Near that limit the
model rolls over: it opens and configures the next session in the background and, between turns
(`TurnQuiet`), re-sends the conversation into it and swaps it in, so the caller hears no gap. A session the
server ends first (``session_expired``) is replaced the same way as a dropped connection, without
the error reaching the listeners.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

import structlog
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from voicegw.contracts.latency import GATEWAY_LATENCY, Direction, caller_audio_received, model_audio_received
from voicegw.contracts.model import (
    CancelResponse,
    CommitAudio,
    CreateResponse,
    ModelAudio,
    ModelConnectionStatus,
    ModelError,
    ModelUnavailable,
    RealtimeModel,
    RealtimeModelCommand,
    RealtimeModelConfig,
    SendAudio,
    SendRawMessage,
    SendToolOutput,
    SendUserMessage,
    TruncateItem,
    UpdateSession,
    UpdateSettings,
)
from voicegw.models.openai_history import SESSION_EXPIRED, SESSION_LIMIT_S, ConversationMirror, TurnQuiet
from voicegw.models.openai_protocol import (
    DEFAULT_TRANSCRIPTION_MODEL,
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
    user_message_event,
)

log = structlog.get_logger()

DEFAULT_MODEL = "gpt-realtime"
DEFAULT_BASE_URL = "wss://api.openai.com/v1"


def websocket_url(base_url: str) -> str:
    """The WebSocket form of an API base URL: ``http(s)://`` becomes ``ws(s)://``."""
    for http, ws in (("https://", "wss://"), ("http://", "ws://")):
        if base_url.startswith(http):
            base_url = ws + base_url[len(http) :]
    return base_url.rstrip("/")


DEFAULT_RECONNECT_DELAYS: tuple[float, ...] = (0.2, 0.4, 0.6)
"""Backoff before each reconnection attempt; its length bounds the attempts."""

RECONNECT_BUDGET_S = 1.5
"""All reconnection attempts together: a caller waits this long in silence at most before the
model is given up for good (and the server apologises), even when a handshake hangs."""

CONNECT_TIMEOUT_S = 10.0
"""Handshake plus the server's ``session.created``."""

AUTH_STATUS_CODES = frozenset({401, 403})

ROLLOVER_AT = 0.9
"""Share of `session_limit` after which the next session is prepared (54 of 60 minutes): the rest
is the time a quiet moment has to come before the server ends the session."""

QUIET_POLL_S = 0.02
"""How often a prepared session checks for a quiet moment to swap in (one media frame)."""


class ModelNotConnected(ConnectionError):
    """A command was sent while the model has no connection (before connect, reconnecting, closed)."""


class OpenAIRealtimeModel(RealtimeModel):
    """The OpenAI Realtime API as a `RealtimeModel`.

    Audio crosses the seam as PCM at the configured rate: 8 kHz goes over the wire as G.711
    μ-law both ways (no resampling on a phone line), any other rate as 24 kHz PCM.
    """

    supports_turn_detection = True

    def __init__(
        self,
        *,
        api_key: str | None = None,
        model: str = DEFAULT_MODEL,
        base_url: str | None = None,
        headers: Mapping[str, str] | None = None,
        transcription_model: str = DEFAULT_TRANSCRIPTION_MODEL,
        reconnect_delays: Sequence[float] = DEFAULT_RECONNECT_DELAYS,
        connect_timeout: float = CONNECT_TIMEOUT_S,
        reconnect_budget: float = RECONNECT_BUDGET_S,
        session_limit: float = SESSION_LIMIT_S,
    ) -> None:
        """`headers` replace the bearer authorization (Azure's ``api-key``, a proxy's token).

        `session_limit` is the server's session lifetime in seconds: the model rolls over to a new
        session before it (`ROLLOVER_AT`).

        `base_url` defaults to ``OPENAI_BASE_URL`` (as in OpenAI's SDKs; ``https://`` becomes
        ``wss://``), then to the public API.

        Raises `ModelUnavailable` when there is neither an API key (argument or
        ``OPENAI_API_KEY``) nor `headers`.
        """
        super().__init__()
        api_key = api_key or os.environ.get("OPENAI_API_KEY")
        if headers is None:
            if not api_key:
                raise ModelUnavailable("the openai model needs an API key: set OPENAI_API_KEY")
            headers = {"Authorization": f"Bearer {api_key}"}
        self._headers = dict(headers)
        self._model = model
        self._url: str | None = None
        self._call_id: str | None = None
        self._base_url = websocket_url(base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL)
        self._transcription_model = transcription_model
        self._reconnect_delays = tuple(reconnect_delays)
        self._connect_timeout = connect_timeout
        self._reconnect_budget = reconnect_budget
        self._preconnected = False
        self._config: RealtimeModelConfig | None = None
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._decoder: ServerEventDecoder | None = None
        self._fatal = False
        self._fatal_message = ""
        self._closing = False
        self._reconnecting = False
        self._dropped_audio_ms = 0.0
        if session_limit <= 0:
            raise ValueError(f"session_limit must be more than 0 seconds, not {session_limit:g}")
        self._session_limit = session_limit
        self._mirror = ConversationMirror(8000)
        self._quiet = TurnQuiet(8000)
        self._rollover: asyncio.Task[None] | None = None
        self._retired: set[asyncio.Task[None]] = set()
        """Rollovers made void by a newer session, finishing their cancellation (closing a socket)."""
        self._switched = False
        """The reader's socket was swapped for a rolled-over session: read the new one."""
        self._expired = False
        """The server said the session expired: the coming close is a rollover, not a failure."""
        self._log = log.bind(model=model)

    @property
    def url(self) -> str:
        """The WebSocket endpoint: the one given, else ``{base_url}/realtime?call_id=...`` when
        attaching to a call, else ``{base_url}/realtime?model=...`` (the settings' model name first)."""
        if self._url is not None:
            return self._url
        if self._call_id is not None:
            return f"{self._base_url}/realtime?call_id={self._call_id}"
        config = self._config
        model = config.model_name if config is not None and config.model_name else self._model
        return f"{self._base_url}/realtime?model={model}"

    def use_endpoint(
        self,
        *,
        api_key: str | None = None,
        url: str | None = None,
        headers: Mapping[str, str] | None = None,
        call_id: str | None = None,
    ) -> None:
        """Connect to this endpoint (the Agents SDK's ``model_config`` keys); only before `connect`.

        `headers` replace the authorization; else `api_key` becomes the bearer token.
        """
        if self._reader is not None:
            raise RuntimeError("the model is already connected: set its endpoint before")
        if headers is not None:
            self._headers = dict(headers)
        elif api_key:
            self._headers = {"Authorization": f"Bearer {api_key}"}
        self._url = url if url is not None else self._url
        self._call_id = call_id if call_id is not None else self._call_id

    # --- RealtimeModel ---------------------------------------------------------------------

    async def connect(self, config: RealtimeModelConfig) -> None:
        """Open the socket, configure the session, start reading (after `preconnect`: configure).

        Raises `ModelUnavailable` when the server refuses us (a bad key, no access) and
        `ConnectionError`/`TimeoutError` when it cannot be reached.
        """
        if self._preconnected and self._reader is not None:
            self._preconnected = False
            if self._fatal:  # lost for good between the call ringing and being answered
                await self.close()
                raise ConnectionError(f"the OpenAI Realtime connection is lost: {self._fatal_message}")
            self._config = config
            await self._send_session_update()
        else:
            await self._open_session(config)
        await self._emit(ModelConnectionStatus("connected"))

    async def preconnect(self, config: RealtimeModelConfig) -> None:
        """Connect ahead of the conversation (while a call rings): the socket open and the server
        session created, so that `connect` only configures it. Raises as `connect` does.

        `config` gives the audio rate; the server session stays unconfigured until `connect`."""
        await self._open_session(config, configure=False)
        self._preconnected = True

    async def _open_session(self, config: RealtimeModelConfig, *, configure: bool = True) -> None:
        if self._reader is not None or self._closing:
            raise RuntimeError("the model is already connected (or closed): use a new one")
        self._config = config
        self._mirror = ConversationMirror(config.sample_rate)
        self._quiet = TurnQuiet(config.sample_rate)
        await self._emit(ModelConnectionStatus("connecting"))
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self._open()
        self._reader = asyncio.create_task(self._run(ready), name="openai-realtime-reader")
        try:
            # Closed at once? The reader has the server's reason (an auth error event).
            with contextlib.suppress(ModelNotConnected):
                if configure:
                    await self._send_session_update()
            await asyncio.wait_for(asyncio.shield(ready), self._connect_timeout)
        except BaseException:
            await self.close()
            raise

    async def send_event(self, command: RealtimeModelCommand) -> None:
        """Send one command as client events.

        `SendAudio` -> ``input_audio_buffer.append`` (dropped while reconnecting; and ``commit`` when
        `commit`), `CommitAudio` ->
        ``input_audio_buffer.commit``, `SendUserMessage` -> a user ``conversation.item.create`` and
        ``response.create``, `SendToolOutput` -> a ``function_call_output`` item (and
        ``response.create`` when `start_response`), `CreateResponse` -> ``response.create``,
        `CancelResponse` -> ``response.cancel`` when a response is in progress, `TruncateItem` ->
        ``conversation.item.truncate``, `UpdateSession` and `UpdateSettings` -> ``session.update``,
        `SendRawMessage` -> its client event as is. Raises `ModelNotConnected` when there is no
        connection, `TypeError` for an unknown command.
        """
        self._mirror.on_command(command)
        self._quiet.on_command(command)
        match command:
            case SendAudio(pcm=pcm):
                if self._reconnecting:
                    # Caller audio of these seconds is lost, not queued: replaying it late would
                    # only confuse turn detection. (bytes / 2 per sample / rate, in ms)
                    self._dropped_audio_ms += len(pcm) * 500 / self._sample_rate
                    return
                if self._decoder is None:
                    raise ModelNotConnected("cannot send audio: the model is not connected")
                try:
                    await self._send(append_audio_event(self._decoder.audio.encode(pcm)))
                except ModelNotConnected:
                    # The socket closed under this send: dropped before the reader noticed (it
                    # reconnects), or swapped for a rolled-over session. This audio is lost like
                    # a reconnection's; only a model closed or lost for good refuses it.
                    if self._closing or not (self._reconnecting or self._ws is not None):
                        raise
                    self._dropped_audio_ms += len(pcm) * 500 / self._sample_rate
                    return
                if (received_at := caller_audio_received.get()) is not None:
                    GATEWAY_LATENCY[Direction.INBOUND].since(received_at)
                if command.commit:
                    await self._send(commit_audio_event())
            case CommitAudio():
                await self._send(commit_audio_event())
            case SendUserMessage(text=text, images=images):
                await self._send(user_message_event(text, images))
                await self._send(response_create_event())
            case SendToolOutput(call_id=call_id, output=output, start_response=start):
                await self._send(tool_output_event(call_id, output))
                if start:
                    await self._send(response_create_event())
            case CreateResponse(instructions=instructions, say=say):
                await self._send(response_create_event(instructions, say))
            case CancelResponse():
                await self._cancel_response()
            case TruncateItem(item_id=item_id, audio_end_ms=end_ms, content_index=index):
                await self._send(truncate_event(item_id, index, end_ms))
            case UpdateSession(config=config):
                self._config = config
                await self._send_session_update()
            case UpdateSettings(changes=changes):
                if self._config is None:
                    raise ModelNotConnected("cannot update the session: the model is not connected")
                self._config = self._config.updated(changes)
                await self._send_session_update()
            case SendRawMessage(message=message):
                await self._send({**message.get("other_data", {}), "type": message["type"]})
            case _:
                raise TypeError(f"OpenAIRealtimeModel cannot send {type(command).__name__}")

    async def close(self) -> None:
        """Close the socket, cancel and await the reader; safe to call twice."""
        self._closing = True
        rollover, self._rollover = self._rollover, None
        pending = [task for task in (rollover, *self._retired) if task and task is not asyncio.current_task()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        reader, self._reader = self._reader, None
        if reader is not None and reader is not asyncio.current_task():
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
        await self._close_socket()

    # --- connection ------------------------------------------------------------------------

    async def _open(self, timeout: float | None = None) -> None:  # noqa: ASYNC109 (the handshake's bound)
        """Open a socket (a new server session: a new decoder) within `timeout` (default: connect's)."""
        assert self._config is not None
        self._ws = await self._connect(timeout)
        self._decoder = ServerEventDecoder(WireAudio(self._config.sample_rate))

    async def _connect(self, timeout: float | None = None) -> ClientConnection:  # noqa: ASYNC109
        try:
            return await websockets.connect(
                self.url,
                additional_headers=self._headers,
                max_size=None,  # audio deltas of a long answer can be large
                # Base64 audio hardly compresses: deflating 50 appends a second per call cost more
                # CPU than anything else on the agent path (py-spy, scripts/bench_capacity.py).
                compression=None,
                open_timeout=self._connect_timeout if timeout is None else timeout,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status in AUTH_STATUS_CODES:
                raise ModelUnavailable(
                    f"the OpenAI Realtime API refused the connection (HTTP {status}): check OPENAI_API_KEY"
                ) from exc
            raise ConnectionError(f"the OpenAI Realtime API answered HTTP {status}") from exc
        except InvalidHandshake as exc:  # TCP taken, then no valid HTTP upgrade
            raise ConnectionError(f"the OpenAI Realtime handshake failed: {exc}") from exc
        except OSError as exc:
            raise ConnectionError(f"cannot reach {self.url}: {exc}") from exc

    async def _close_socket(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None:
            await ws.close()

    async def _run(self, ready: asyncio.Future[None]) -> None:
        """The reader: read until closed; on a drop reconnect, or end with a fatal error. A bug of
        ours on the server's input ends the model too, loudly, never leaving the call silent."""
        try:
            await self._read_connections(ready)
        except Exception as exc:
            self._log.exception("model_reader_failed")
            self._fatal, self._fatal_message = True, f"the model reader failed: {exc!r}"
            if not ready.done():
                ready.set_exception(ModelUnavailable(self._fatal_message))
            ws, self._ws = self._ws, None
            if ws is not None:
                # Not a closing handshake: nobody reads the server's frames any more, so its close
                # frame would wait behind them until the close timeout.
                ws.transport.abort()
            await self._emit(ModelConnectionStatus("disconnected"))
            await self._emit(ModelError(self._fatal_message, code="internal_error", fatal=True))

    async def _read_connections(self, ready: asyncio.Future[None]) -> None:
        """Each connection in turn, through drops and rollovers, until closed or fatal."""
        while True:
            error = await self._read(ready)
            if self._closing:
                return
            if self._switched:  # a rolled-over session took the old one's place
                self._switched = False
                continue
            # From now on caller audio is dropped, not refused: a reconnection follows.
            self._reconnecting = not self._fatal and ready.done()
            await self._close_socket()
            if self._fatal or not ready.done():
                if not ready.done():
                    ready.set_exception(error)
                await self._emit(ModelConnectionStatus("disconnected"))
                return
            expired, self._expired = self._expired, False
            if not await self._reconnect(str(error), expired=expired):
                return

    async def _read(self, ready: asyncio.Future[None]) -> Exception:
        """Read one connection until it ends; what ended it."""
        ws, decoder = self._ws, self._decoder
        assert ws is not None and decoder is not None
        try:
            async for message in ws:
                if ws is not self._ws:  # swapped for a rolled-over session: the old one is done
                    break
                await self._handle(message, ready, decoder)
                if self._fatal:
                    return ModelUnavailable(self._fatal_message)
        except ConnectionClosed as exc:
            return ConnectionError(f"the OpenAI Realtime connection closed ({exc})")
        return ConnectionError("the OpenAI Realtime server closed the connection")

    async def _handle(
        self, message: str | bytes, ready: asyncio.Future[None], decoder: ServerEventDecoder
    ) -> None:
        try:
            events = decoder.decode_text(message)
        except OpenAIProtocolError as exc:  # the peer's garbage: report it and go on
            self._log.warning("model_bad_server_event", error=str(exc))
            await self._emit(ModelError(str(exc), code="protocol_error"))
            return
        now = asyncio.get_running_loop().time()
        received_at = time.monotonic()
        for event in events:
            if isinstance(event, ModelError) and event.code == SESSION_EXPIRED:
                # Not the listeners' concern: the close that follows opens the next session.
                self._expired = True
                self._log.info("model_session_expired", detail=event.message)
                continue
            if isinstance(event, ModelError) and event.fatal:
                self._fatal = True
                self._fatal_message = event.message
            self._mirror.on_event(event)
            self._quiet.on_event(event, now)
            if isinstance(event, ModelAudio):
                # The session plays it within this delivery: the transport times it from here.
                token = model_audio_received.set(received_at)
                try:
                    await self._emit(event)
                finally:
                    model_audio_received.reset(token)
            else:
                await self._emit(event)
        if decoder.session_id is not None and not ready.done():
            ready.set_result(None)
            self._session_began()

    async def _reconnect(self, reason: str, *, expired: bool = False) -> bool:
        """Reconnect with backoff; False (after a fatal error event) when every attempt failed.

        `expired`: the server ended the session at its time limit, which is no error."""
        if expired:
            self._log.info("model_session_replaced", reason="the server session expired")
        else:
            self._log.warning("model_connection_lost", reason=reason)
        self._reconnecting = True
        try:
            return await self._reconnect_with_backoff(reason, expired=expired)
        finally:
            self._reconnecting = False

    async def _reconnect_with_backoff(self, reason: str, *, expired: bool) -> bool:
        await self._emit(ModelConnectionStatus("reconnecting"))
        if not expired:
            await self._emit(ModelError(f"the model connection dropped: {reason}", code="connection_lost"))
        last = reason
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._reconnect_budget
        for attempt, delay in enumerate(self._reconnect_delays, start=1):
            await asyncio.sleep(delay)
            left = deadline - loop.time()
            if left <= 0:
                last = f"{last} (no reconnection within {self._reconnect_budget:g} s)"
                break
            try:
                await self._open(left)
                await self._send_session_update()  # the new server session starts unconfigured
                for event in self._mirror.replay():
                    await self._send(event)
            except ModelUnavailable as exc:
                last = str(exc)
                break  # refused, not unreachable: retrying cannot help
            except (ConnectionError, TimeoutError) as exc:
                last = str(exc)
                self._log.info("model_reconnect_failed", attempt=attempt, error=last)
                await self._close_socket()  # opened, then closed before it was configured
                continue
            self._log.info(
                "reconnected",
                attempt=attempt,
                dropped_audio_ms=round(self._dropped_audio_ms),
                replayed_items=len(self._mirror),
            )
            await self._emit(ModelConnectionStatus("connected"))
            self._quiet.session_replaced()
            self._session_began()
            return True
        await self._emit(ModelConnectionStatus("disconnected"))
        await self._emit(
            ModelError(f"the model connection is lost for good: {last}", code="connection_lost", fatal=True)
        )
        return False

    # --- rollover --------------------------------------------------------------------------

    def _session_began(self) -> None:
        """A server session is up: time its rollover (the previous one's timer is void)."""
        old = self._rollover
        if old is not None and old is not asyncio.current_task():
            old.cancel()
            self._retired.add(old)
            old.add_done_callback(self._retired.discard)
        delay = self._session_limit * ROLLOVER_AT
        self._rollover = asyncio.create_task(self._roll_over(delay), name="openai-realtime-rollover")

    async def _roll_over(self, delay: float) -> None:
        """After `delay`, prepare the next session and swap it in at the first quiet moment.

        Never mid-turn: if no quiet moment comes before the server ends the session, the
        reconnection after ``session_expired`` takes over and this attempt is dropped."""
        await asyncio.sleep(delay)
        current = self._ws
        try:
            ws, decoder = await self._open_standby()
        except (ConnectionError, TimeoutError, ModelUnavailable, OpenAIProtocolError) as exc:
            self._log.warning("model_rollover_failed", error=str(exc) or type(exc).__name__)
            return
        swapped = False
        try:
            if not await self._wait_quiet(ws, decoder, current) or current is None:
                return
            try:  # the conversation as it stands now, the turn that just ended included
                for event in self._mirror.replay():
                    await ws.send(json.dumps(event))
            except ConnectionClosed as exc:
                self._log.warning("model_rollover_failed", error=f"the next session closed: {exc}")
                return
            self._switched = True
            self._ws, self._decoder = ws, decoder
            swapped = True
            self._log.info("model_session_rolled_over", session=decoder.session_id, items=len(self._mirror))
            self._session_began()
            await current.close()
        finally:
            if not swapped:
                await ws.close()

    async def _open_standby(self) -> tuple[ClientConnection, ServerEventDecoder]:
        """The next server session: connected and configured (the conversation goes in at the swap)."""
        assert self._config is not None
        ws = await self._connect()
        decoder = ServerEventDecoder(WireAudio(self._config.sample_rate))
        try:
            async with asyncio.timeout(self._connect_timeout):
                while decoder.session_id is None:
                    for event in decoder.decode_text(await ws.recv()):
                        if isinstance(event, ModelError):
                            raise ConnectionError(f"the next session failed: {event.message}")
            session = session_object(self._config, transcription_model=self._transcription_model)
            await ws.send(json.dumps(session_update_event(session)))
        except ConnectionClosed as exc:
            await ws.close()
            raise ConnectionError(f"the next session closed: {exc}") from exc
        except BaseException:
            await ws.close()
            raise
        return ws, decoder

    async def _wait_quiet(
        self, ws: ClientConnection, decoder: ServerEventDecoder, current: ClientConnection | None
    ) -> bool:
        """Until the conversation is between turns, reading the prepared session meanwhile for its
        errors; False when the swap is off (that session closed, the current one was replaced or
        the model is closing)."""
        drain = asyncio.create_task(self._drain(ws, decoder), name="openai-realtime-standby")
        loop = asyncio.get_running_loop()
        try:
            while not self._quiet.quiet(loop.time()):
                if drain.done() or self._ws is not current or self._closing:
                    return False
                await asyncio.sleep(QUIET_POLL_S)
        finally:
            drain.cancel()
            await asyncio.gather(drain, return_exceptions=True)
        return self._ws is current and not self._closing

    async def _drain(self, ws: ClientConnection, decoder: ServerEventDecoder) -> None:
        """The prepared session's events before it is swapped in: only its errors matter."""
        async for message in ws:
            try:
                events = decoder.decode_text(message)
            except OpenAIProtocolError as exc:
                self._log.warning("model_bad_server_event", error=str(exc), standby=True)
                continue
            for event in events:
                if isinstance(event, ModelError):
                    self._log.warning("model_standby_error", error=event.message, code=event.code)

    # --- sending ---------------------------------------------------------------------------

    async def _send(self, event: dict[str, Any]) -> None:
        ws = self._ws
        if ws is None:
            raise ModelNotConnected(f"cannot send {event['type']}: the model is not connected")
        try:
            await ws.send(json.dumps(event))
        except ConnectionClosed as exc:  # the reader notices too and reconnects
            raise ModelNotConnected(f"cannot send {event['type']}: {exc}") from exc

    async def _send_session_update(self) -> None:
        assert self._config is not None and self._decoder is not None
        session = session_object(
            self._config,
            transcription_model=self._transcription_model,
            include_voice=not self._decoder.spoke,
        )
        await self._send(session_update_event(session))

    async def _cancel_response(self) -> None:
        decoder = self._decoder
        if decoder is None or decoder.active_response is None:
            return  # nothing to cancel: the API would answer with an error
        await self._send(response_cancel_event(decoder.active_response))
        decoder.active_response = None

    @property
    def _sample_rate(self) -> int:
        assert self._config is not None
        return self._config.sample_rate
