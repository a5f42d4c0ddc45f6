"""atheris targets for voicegw's own parsers: bytes in, and a crash is defined per target.

A target's `run` feeds one input to a parser the way the network would; the only exceptions
it may raise are the parser's documented error types (`allowed`), which `check` swallows.
Anything else escaping is a crash, and so is an input that takes longer than the runner's
per-input timeout (a hang). scripts/fuzz_parsers.py runs them; each target's seed corpus is
tests/fuzz/corpus/<name>/ plus the wire fixtures listed in `corpus`.

Import this module inside `atheris.instrument_imports()` for coverage guidance: it imports
the parsers it drives.
"""

from __future__ import annotations

import contextlib
import json
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from voicegw.models.openai_history import ConversationMirror, TurnQuiet
from voicegw.models.openai_protocol import OpenAIProtocolError, ServerEventDecoder, WireAudio
from voicegw.rtp.dtmf import TelephoneEvent
from voicegw.rtp.packet import RtpParseError, parse_rtcp, parse_rtp, parse_rtp_header
from voicegw.rtp.session import RtpSession, RtpSessionConfig
from voicegw.sip import sdp
from voicegw.sip.digest import DigestError, DigestVerifier
from voicegw.sip.message import parse_info_dtmf, parse_reason, parse_request
from voicegw.testing.paths import TESTS
from voicegw.transports.twilio_protocol import TwilioProtocolError, parse_message

CORPUS = TESTS / "fuzz" / "corpus"

DIGEST_SECRET = b"fuzz-secret-fuzz-secret-fuzz-sec"
DIGEST_CLOCK = 1_700_000_000.0
DIGEST_INSTANCE = "fuzz/00000000"
"""A fixed secret, clock and run (`DIGEST_INSTANCE`): the corpus then holds nonces this verifier
issued, so the fuzzer reaches the password check and the replay memory, not only the nonce check."""

SRTP_MODES: tuple[sdp.SrtpMode, ...] = ("off", "optional", "required")
PCMU_PT = 0
TELEPHONE_EVENT_PT = 101
ADDRESSES = (("127.0.0.1", 4000), ("127.0.0.1", 4002), ("198.51.100.7", 4000))


def text(data: bytes) -> str:
    """Bytes as the parsers get them from pjsua2 or a WebSocket: text, invalid UTF-8 replaced."""
    return data.decode("utf-8", "replace")


def records(data: bytes) -> Iterator[bytes]:
    """Datagrams of a multi-datagram input: a 2-byte big-endian length, then that many bytes
    (the format of tests/rtp/data/*.bin)."""
    position = 0
    while position + 2 <= len(data):
        (length,) = struct.unpack_from("!H", data, position)
        yield data[position + 2 : position + 2 + length]
        position += 2 + length


def fuzz_sdp(data: bytes) -> None:
    """An SDP offer through parse, negotiate and answer, as an INVITE's body is (SRTP mode from
    the first byte)."""
    if not data:
        return
    offer = sdp.parse(text(data[1:]))
    negotiated = sdp.negotiate(offer, srtp=SRTP_MODES[data[0] % len(SRTP_MODES)])
    sdp.answer(offer, negotiated, address="127.0.0.1", port=20000, session_id=1)
    offer.serialize()


def fuzz_sip_message(data: bytes) -> None:
    """A request as pjsua2 hands it over (`SipRxData.wholeMsg`), an INFO's DTMF body and a BYE's
    Reason header."""
    request = parse_request(text(data))
    parse_info_dtmf(request)
    parse_reason(request.headers.get("reason", ""))


def digest_verifier() -> DigestVerifier:
    """The verifier the digest corpus was made for: fixed secret, clock and run."""
    verifier = DigestVerifier(
        "voicegw", {"alice": "secret"}, secret=DIGEST_SECRET, clock=lambda: DIGEST_CLOCK
    )
    verifier.instance = DIGEST_INSTANCE
    return verifier


def fuzz_digest(data: bytes) -> None:
    """An ``Authorization`` header (after a "METHOD Request-URI" line) through the verifier."""
    request_line, _, header = text(data).partition("\n")
    method, _, request_uri = request_line.partition(" ")
    verifier = digest_verifier()
    verifier.verify(method, request_uri, header)
    verifier.verify(method, request_uri, header)  # the same answer again: the replay memory


def fuzz_rtp_packet(data: bytes) -> None:
    """One datagram as RTP (both parsers), as RTCP, and its payload as an RFC 4733 event."""
    for parse in (parse_rtp, parse_rtp_header, parse_rtcp, TelephoneEvent.parse):
        try:
            parse(data)
        except RtpParseError:
            continue


def fuzz_rtp_session(data: bytes) -> None:
    """Datagrams into one call's RTP session (PCMU and telephone-event), from one of three
    addresses, on the RTP or RTCP socket (the first byte of each), 20 ms apart."""
    config = RtpSessionConfig(
        clock_rate=8000, payload_type=PCMU_PT, telephone_event_pt=TELEPHONE_EVENT_PT, remote=ADDRESSES[0]
    )
    session = RtpSession(config, now=0.0)
    now = 0.0
    for datagram in records(data):
        selector = datagram[0] if datagram else 0
        now += 0.02
        session.receive(datagram[1:], ADDRESSES[selector % 3], now, rtcp=bool(selector & 0x80))
        while session.next_event() is not None:
            pass
        if (timer := session.get_timer()) is not None and timer <= now:
            session.handle_timer(now)
        session.datagrams_to_send(now)


def fuzz_twilio(data: bytes) -> None:
    """One Twilio Media Streams WebSocket message."""
    parse_message(data)


class OpenAIReader:
    """What one OpenAI Realtime connection does with the server's messages: the decoder (it keeps
    state across events: partial transcripts, pending function calls, audio per response), then
    the conversation mirror and the turn tracker that the rollover builds on."""

    def __init__(self) -> None:
        self.decoder = ServerEventDecoder(WireAudio(24000))
        self.mirror = ConversationMirror(24000)
        self.quiet = TurnQuiet(24000)
        self.now = 0.0

    def read(self, message: str | bytes) -> None:
        """One server message; a protocol error is reported and skipped, as the model does."""
        try:
            events = self.decoder.decode_text(message)
        except OpenAIProtocolError:
            return
        self.now += 0.02
        for event in events:
            self.mirror.on_event(event)
            self.quiet.on_event(event, self.now)
        self.quiet.quiet(self.now)

    def replay(self) -> None:
        """What a rollover would send the next session."""
        json.dumps(self.mirror.replay())


def fuzz_openai(data: bytes) -> None:
    """OpenAI Realtime server events, one per line, through one `OpenAIReader`, then its replay."""
    reader = OpenAIReader()
    for line in data.split(b"\n"):
        reader.read(line)
    reader.replay()


@dataclass(frozen=True)
class ParserTarget:
    name: str
    run: Callable[[bytes], None]
    allowed: tuple[type[Exception], ...]
    """The parser's documented error types: raising one of these is correct, not a crash."""

    corpus: tuple[Path, ...] = ()
    """Wire fixtures of the other tests that seed this target too (read only)."""

    def check(self, data: bytes) -> None:
        """Run one input; a documented error is fine, anything else propagates (a crash)."""
        with contextlib.suppress(*self.allowed):
            self.run(data)

    @property
    def own_corpus(self) -> Path:
        return CORPUS / self.name


TARGETS: dict[str, ParserTarget] = {
    target.name: target
    for target in (
        ParserTarget("sdp", fuzz_sdp, (sdp.SdpError,)),
        ParserTarget("sip_message", fuzz_sip_message, ()),
        ParserTarget("digest", fuzz_digest, (DigestError,)),
        # RtpParseError is swallowed inside: the RTP, RTCP and RFC 4733 parsers raise nothing else.
        ParserTarget("rtp", fuzz_rtp_packet, (), (TESTS / "rtp" / "data",)),
        # The receive path drops and counts every bad datagram: it raises nothing at all.
        ParserTarget("rtp_session", fuzz_rtp_session, ()),
        ParserTarget("twilio", fuzz_twilio, (TwilioProtocolError,)),
        ParserTarget("openai", fuzz_openai, ()),
    )
}
