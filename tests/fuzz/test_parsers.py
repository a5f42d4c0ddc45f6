"""Every parser's atheris target for a bounded time (scripts/fuzz_parsers.py, in a child process:
libFuzzer takes over the process it runs in), and the inputs those fuzzers found.

`VOICEGW_FUZZ_SECONDS` sets the time per target (default 30); two targets are fuzzed at once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from voicegw.contracts.model import ModelInputTranscript, ModelResponseDone
from voicegw.models.openai_protocol import OpenAIProtocolError, ServerEventDecoder, WireAudio
from voicegw.sip import sdp
from voicegw.sip.digest import BadCredentials, Unauthenticated
from voicegw.testing.fuzz.parser_targets import TARGETS, digest_verifier
from voicegw.transports.twilio_protocol import TwilioProtocolError, parse_message

ROOT = Path(__file__).resolve().parents[2]
SECONDS = int(os.environ.get("VOICEGW_FUZZ_SECONDS", "30"))


JOBS = 2
"""Targets fuzzed at once: each is one process on one core."""

RUN_LIMIT_S = (len(TARGETS) + JOBS - 1) // JOBS * (SECONDS * 2 + 60)


@pytest.fixture(scope="module")
def fuzz_run(tmp_path_factory: pytest.TempPathFactory) -> subprocess.CompletedProcess[str]:
    """Every target for `SECONDS`, `JOBS` at a time (one run for the module's tests)."""
    return subprocess.run(
        [sys.executable, "scripts/fuzz_parsers.py", "--seconds", str(SECONDS), "--jobs", str(JOBS),
         "--workdir", str(tmp_path_factory.mktemp("fuzz"))],
        cwd=ROOT, capture_output=True, text=True, timeout=RUN_LIMIT_S,
    )  # fmt: skip


@pytest.mark.timeout(RUN_LIMIT_S + 60)
@pytest.mark.parametrize("name", sorted(TARGETS))
def test_parser_survives_coverage_guided_fuzzing(
    name: str, fuzz_run: subprocess.CompletedProcess[str]
) -> None:
    line = next((line for line in fuzz_run.stdout.splitlines() if line.startswith(f"{name}: ")), None)
    print(line)
    output = fuzz_run.stdout[-8000:] + fuzz_run.stderr[-2000:]
    assert line is not None and " executions, 0 crashes" in line, output


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_corpus_inputs_are_handled(name: str) -> None:
    """The seed corpus, including the crashes found so far (``crash-*``), runs without a crash."""
    target = TARGETS[name]
    inputs = [p for d in (target.own_corpus, *target.corpus) if d.is_dir() for p in sorted(d.iterdir())]
    assert inputs, f"no corpus for {name}"
    for path in inputs:
        target.check(path.read_bytes())


OFFER = (
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 4000 RTP/SAVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)


def test_sdp_crypto_key_with_non_ascii_characters_is_an_sdp_error() -> None:
    # base64.b64decode raises a plain ValueError (not binascii.Error) for a non-ASCII str.
    offer = sdp.parse(OFFER + "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:\u00e9\u00e9\u00e9\u00e9\r\n")
    with pytest.raises(sdp.SrtpNotAcceptable, match="not base64"):
        sdp.negotiate(offer, srtp="optional")


def test_twilio_media_payload_with_non_ascii_characters_is_a_protocol_error() -> None:
    message = json.dumps({"event": "media", "media": {"payload": "/\u0692ark/w=="}})
    with pytest.raises(TwilioProtocolError, match="not base64"):
        parse_message(message)


def test_openai_audio_delta_with_non_ascii_characters_is_a_protocol_error() -> None:
    event = {"type": "response.output_audio.delta", "delta": "\u00e9AAA", "item_id": "i", "response_id": "r"}
    with pytest.raises(OpenAIProtocolError, match="not base64"):
        ServerEventDecoder(WireAudio(24000)).decode_text(json.dumps(event))


def test_openai_transcription_delta_that_is_not_text_is_a_protocol_error() -> None:
    decoder = ServerEventDecoder(WireAudio(24000))
    event = {"type": "conversation.item.input_audio_transcription.delta", "item_id": "i", "delta": {}}
    with pytest.raises(OpenAIProtocolError, match="delta"):
        decoder.decode_text(json.dumps(event))
    # A missing (or null) delta is still an empty one.
    del event["delta"]
    assert decoder.decode_text(json.dumps(event))[-1] == ModelInputTranscript("i", "", is_final=False)


def test_digest_response_or_nonce_with_non_ascii_characters_is_refused_not_a_type_error() -> None:
    verifier = digest_verifier()
    nonce = verifier.challenge().split('nonce="')[1].split('"')[0]
    head = 'Digest username="alice", realm="voicegw", uri="sip:echo@127.0.0.1"'
    with pytest.raises(BadCredentials):
        verifier.verify("INVITE", "sip:echo@127.0.0.1", f'{head}, nonce="{nonce}", response="\u00e9"')
    forged = "MTcwMDAwMDAwMC4wMDA6w6k="  # base64 of "1700000000.000:é": a non-ASCII signature
    with pytest.raises(Unauthenticated, match="not issued here"):
        verifier.verify("INVITE", "sip:echo@127.0.0.1", f'{head}, nonce="{forged}", response="00"')


def test_openai_usage_or_ids_of_the_wrong_type_count_as_absent() -> None:
    decoder = ServerEventDecoder(WireAudio(24000))
    # A list cannot key the decoder's per-response tables: it raised TypeError.
    decoder.decode_text(json.dumps({"type": "response.created", "response": {"id": [1]}}))
    done = {"type": "response.done", "response": {"id": [1], "status": "completed", "usage": "many"}}
    last = decoder.decode_text(json.dumps(done))[-1]
    assert last == ModelResponseDone("", "completed")
    item = {
        "type": "function_call",
        "call_id": {"x": 1},
        "name": "f",
        "arguments": "{}",
        "status": "completed",
    }
    assert decoder.decode_text(json.dumps({"type": "response.output_item.done", "item": item}))[1:] == []
