"""Who may call `voicegw serve`: the allow-list, and digest authentication for everyone else.

The servers here allow no source at all (``allow = []``), so even 127.0.0.1 must authenticate:
a raw UDP client checks the exact responses, and a pjsua2 caller (pjsip's own digest client)
places a whole call with credentials.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.harness import EchoServer, run_caller
from tests.e2e.media import read_wav, synthesize, windowed_correlation
from tests.sip.raw_sip import Dialog, digest_answer, offer_sdp
from tests.sip.test_signaling import events, wait_for_event

pytestmark = pytest.mark.timeout(60)
CLOSED = "[access]\nallow = []\n"
AUTH = CLOSED + '[access.digest]\nrealm = "desk"\n[access.digest.users]\nalice = "wonderland"\n'


def test_a_source_off_the_allow_list_gets_403_without_digest(voicegw: Callable[..., EchoServer]) -> None:
    server = voicegw(CLOSED)
    dialog = Dialog(server.port)
    try:
        dialog.invite(offer_sdp(dialog.local_port + 2))
        forbidden = dialog.until(403)
        assert "www-authenticate" not in forbidden.headers
        dialog.ack(for_error=True)
        (rejected,) = wait_for_event(server, "call_rejected")
        assert rejected["detail"] == "source 127.0.0.1 not allowed" and rejected["call_id"] == dialog.call_id
    finally:
        dialog.close()


def test_a_challenged_caller_answering_with_the_password_gets_the_call(
    voicegw: Callable[..., EchoServer],
) -> None:
    server = voicegw(AUTH)
    dialog = Dialog(server.port)
    sdp = offer_sdp(dialog.local_port + 2)
    try:
        dialog.invite(sdp)
        challenge = dialog.until(401).headers["www-authenticate"]
        assert challenge.startswith('Digest realm="desk", nonce="') and 'qop="auth"' in challenge
        dialog.ack(for_error=True)
        dialog.invite_again(sdp, f"Authorization: {digest_answer(challenge, 'alice', 'wonderland')}\r\n")
        assert "m=audio" in dialog.until(200).body
        dialog.ack(cseq=2)
        dialog.request("BYE")
        assert dialog.until(200).headers["cseq"].endswith("BYE")
        (rejected,) = events(server, "call_rejected")
        assert rejected["status"] == 401 and rejected["detail"] == "no credentials"
    finally:
        dialog.close()


def test_a_wrong_password_gets_403_and_a_forged_nonce_a_new_challenge(
    voicegw: Callable[..., EchoServer],
) -> None:
    server = voicegw(AUTH)
    dialog = Dialog(server.port)
    sdp = offer_sdp(dialog.local_port + 2)
    try:
        dialog.invite(sdp)
        challenge = dialog.until(401).headers["www-authenticate"]
        dialog.ack(for_error=True)
        dialog.invite_again(sdp, f"Authorization: {digest_answer(challenge, 'alice', 'looking-glass')}\r\n")
        dialog.until(403)
        dialog.ack(for_error=True, cseq=dialog.cseq)
        forged = challenge.replace('nonce="', 'nonce="x')
        dialog.invite_again(sdp, f"Authorization: {digest_answer(forged, 'alice', 'wonderland')}\r\n")
        assert dialog.until(401).headers["www-authenticate"].startswith('Digest realm="desk"')
        details = [event["detail"] for event in wait_for_event(server, "call_rejected")]
        assert details[-2:] == ["wrong credentials for user 'alice'", "nonce was not issued here"], details
    finally:
        dialog.close()


@pytest.mark.parametrize(("password", "answered"), [("wonderland", True), ("looking-glass", False)])
def test_pjsua2_caller_authenticates_with_its_own_digest_client(
    voicegw: Callable[..., EchoServer], tmp_path: Path, password: str, answered: bool
) -> None:
    server = voicegw(AUTH)
    wav = synthesize(tmp_path / "speech.wav", rate=8000)
    sent, _ = read_wav(wav)
    recording = tmp_path / "recording.wav"

    report = run_caller(
        server.uri, "--auth", f"alice:{password}", "--play", str(wav), "--record", str(recording)
    )

    assert report["answered"] is answered, report
    if answered:
        received, rate = read_wav(recording)
        assert windowed_correlation(sent, received, rate=rate, max_lag=rate, window_s=0.2).mean >= 0.7
    else:
        assert 403 in report["status_codes"], report
