"""Who may call `voicegw serve`: the allow-list, and digest authentication for everyone else.

The servers here allow no source at all (``allow = []``), so even 127.0.0.1 must authenticate:
a raw UDP client checks the exact responses, and a pjsua2 caller (pjsip's own digest client)
places a whole call with credentials.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.sip.test_signaling import events, wait_for_event
from voicegw.testing.harness import HOST, EchoServer, run_caller
from voicegw.testing.media import read_wav, synthesize, windowed_correlation
from voicegw.testing.raw_sip import Dialog, Response, digest_answer, offer_sdp

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
        # Refused before pjsua saw it: no call was ever created.
        assert not events(server, "call_incoming")
    finally:
        dialog.close()


def test_a_challenged_caller_answering_with_the_password_gets_the_call(
    voicegw: Callable[..., EchoServer],
) -> None:
    server = voicegw(AUTH)
    dialog = Dialog(server.port)
    sdp = offer_sdp(dialog.local_port + 2)
    try:
        challenge, _ = authenticate(dialog, sdp, "wonderland")
        assert challenge.startswith('Digest realm="desk", nonce="') and 'qop="auth"' in challenge
        assert "m=audio" in dialog.until(200).body
        dialog.ack(cseq=dialog.cseq)
        dialog.request("BYE")
        assert dialog.until(200).headers["cseq"].endswith("BYE")
        # Only the authenticated INVITE became a call; the challenge left nothing behind.
        assert len(events(server, "call_incoming")) == 1
        assert not events(server, "call_rejected")
    finally:
        dialog.close()


def test_a_wrong_password_gets_403_and_a_forged_nonce_a_new_challenge(
    voicegw: Callable[..., EchoServer],
) -> None:
    server = voicegw(AUTH)
    dialog = Dialog(server.port)
    sdp = offer_sdp(dialog.local_port + 2)
    try:
        challenge, _ = authenticate(dialog, sdp, "looking-glass")
        dialog.until(403)
        dialog.ack(for_error=True, cseq=dialog.cseq)
        forged = digest_answer(
            challenge.replace('nonce="', 'nonce="x'), "alice", "wonderland", uri=dialog.uri
        )
        dialog.invite_again(sdp, f"Authorization: {forged}\r\n")
        assert dialog.until(401).headers["www-authenticate"].startswith('Digest realm="desk"')
        (failed,) = wait_for_event(server, "digest_failed")
        assert failed["detail"] == "wrong credentials for user 'alice'"
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


def test_a_replayed_or_moved_authorization_is_refused_by_every_node(
    voicegw: Callable[..., EchoServer],
) -> None:
    shared = AUTH.replace('realm = "desk"\n', 'realm = "desk"\nnonce_secret = "shared by the cluster"\n')
    server, other_node = voicegw(shared), voicegw(shared)
    dialog = Dialog(server.port)
    sdp = offer_sdp(dialog.local_port + 2)
    try:
        _, captured = authenticate(dialog, sdp, "wonderland")
        dialog.until(200)
        dialog.ack(cseq=dialog.cseq)
        # The same Authorization in another INVITE, to this node or another: a new challenge.
        for port in (server.port, other_node.port):
            replay = Dialog(port)
            replay.uri = dialog.uri
            try:
                replay.invite(offer_sdp(replay.local_port + 2), captured)
                assert "stale=true" in replay.until(401).headers["www-authenticate"]
            finally:
                replay.close()
        # An answer computed for another Request-URI (a premium number, say) is refused.
        moved = Dialog(server.port)
        try:
            premium = f"sip:premium@{HOST}:{server.port}"
            authenticate(moved, offer_sdp(moved.local_port + 2), "wonderland", uri=premium)
            moved.until(403)
        finally:
            moved.close()
        dialog.request("BYE")
        assert dialog.until(200).headers["cseq"].endswith("BYE")
    finally:
        dialog.close()


def test_wrong_passwords_lock_the_caller_out_whatever_it_sends_next(
    voicegw: Callable[..., EchoServer],
) -> None:
    server = voicegw(AUTH.replace("allow = []\n", "allow = []\nmax_failures = 3\nlockout = 600\n"))
    statuses = []
    for password in ("one", "two", "three", "wonderland"):
        dialog = Dialog(server.port)
        try:
            dialog.invite(offer_sdp(dialog.local_port + 2))
            response = final(dialog)
            if response.status == 401:
                dialog.ack(for_error=True)
                challenge = response.headers["www-authenticate"]
                answer = digest_answer(challenge, "alice", password, uri=dialog.uri)
                dialog.invite_again(offer_sdp(dialog.local_port + 2), f"Authorization: {answer}\r\n")
                response = final(dialog)
            statuses.append(response.status)
        finally:
            dialog.close()
    # Three wrong passwords, then even the right one gets 403: its INVITE is not even challenged.
    assert statuses == [403, 403, 403, 403]
    (lockout, *_) = events(server, "digest_lockout")
    assert lockout["seconds"] == 600


def final(dialog: Dialog) -> Response:
    """The next final response."""
    while (response := dialog.receive()).status < 200:
        pass
    return response


def authenticate(dialog: Dialog, sdp: str, password: str, *, uri: str = "") -> tuple[str, str]:
    """INVITE, ACK the 401, INVITE again answering its challenge as alice with `password`
    (for `uri`, default the Request-URI): the challenge and the Authorization line sent."""
    dialog.invite(sdp)
    challenge = dialog.until(401).headers["www-authenticate"]
    dialog.ack(for_error=True)
    line = f"Authorization: {digest_answer(challenge, 'alice', password, uri=uri or dialog.uri)}\r\n"
    dialog.invite_again(sdp, line)
    return challenge, line
