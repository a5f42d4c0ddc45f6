"""Whole calls from a caller on pjsua2's own media stack (player, recorder, jitter buffer, bridge).

A code path independent of voicegw's: what it records must be what it played, its RFC 4733 DTMF
must show up in the server's log as events, hold and resume must work by re-INVITE, and the server
must hang up on it when it goes silent.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.echo_checks import wait_for_media_stats
from voicegw.rtp.srtp import CryptoAttribute
from voicegw.testing.harness import EchoServer, run_caller, tls_config
from voicegw.testing.media import Pcm, read_wav, windowed_correlation

pytestmark = pytest.mark.e2e

DIGITS = "159#"
# The recording went through two adaptive jitter buffers and pjsua2's conference bridge, whose
# delay buffer time-compresses (WSOLA) while it drains: short windows each find their own lag.
# Measured against the pjsua2 baseline: 0.91; against a plain RTP reflector (sipp -rtp_echo): 0.99;
# voicegw on a loaded CI machine: 0.79-0.84 (more WSOLA compression). Unrelated espeak speech
# scores 0.38 on this measure, so the bound keeps a wide margin on both sides.
MIN_CORRELATION = 0.7
WINDOW_S = 0.2
MAX_ECHO_DELAY_S = 1.0
LOG_WAIT_S = 3.0


def wait_for_digits(server: EchoServer, expected: str) -> str:
    deadline = time.monotonic() + LOG_WAIT_S
    while (digits := server.dtmf_digits()) != expected and time.monotonic() < deadline:
        time.sleep(0.1)
    return digits


@pytest.mark.timeout(60)
@pytest.mark.parametrize("codec", ["PCMU", "PCMA"])
def test_pjsua2_caller_echo_dtmf_hold_and_hangup(
    codec: str, echo_server: EchoServer, speech_8k: tuple[Path, Pcm], tmp_path: Path
) -> None:
    wav, sent = speech_8k
    recording = tmp_path / "recording.wav"

    report = run_caller(
        echo_server.uri, "--codec", codec, "--play", str(wav), "--record", str(recording),
        "--dtmf", DIGITS, "--hold",
    )  # fmt: skip

    assert report["answered"], report
    assert report["codec"] == codec, report
    received, rate = read_wav(recording)
    assert rate == 8000
    result = windowed_correlation(
        sent, received, rate=rate, max_lag=int(MAX_ECHO_DELAY_S * rate), window_s=WINDOW_S
    )
    assert result.mean >= MIN_CORRELATION, (result, report)
    assert report.get("dtmf_sent") == DIGITS, report
    assert wait_for_digits(echo_server, DIGITS) == DIGITS, echo_server.output()
    assert report.get("held") and report.get("resumed"), report
    assert report["media_statuses"][-2:] == ["local_hold", "active"], report
    assert report["states"][-1] == "DISCONNECTED" and report["disconnect_reason"] == "OK", report


@pytest.mark.timeout(45)
def test_server_hangs_up_on_a_caller_that_stops_sending(start_server: Callable[..., EchoServer]) -> None:
    media_timeout = 2.0
    server = start_server(media_timeout=media_timeout)

    # With VAD and nothing to play, pjmedia sends nothing after its first few frames.
    report = run_caller(server.uri, "--codec", "PCMU", "--vad", "--end", "wait-bye", "--bye-timeout", "15")

    assert report["answered"], report
    assert report["bye_received"], report
    assert media_timeout <= report["bye_after_s"] <= media_timeout + 6.0, report
    assert report["disconnect_reason"] != "OK", "the caller hung up, not the server"


@pytest.mark.timeout(90)
def test_pjsua2_caller_over_tls_with_mandatory_srtp_hears_its_echo(
    start_server: Callable[..., EchoServer], speech_8k: tuple[Path, Pcm], tmp_path: Path, e2e_target: str
) -> None:
    if e2e_target != "voicegw":
        pytest.skip("the pjsua2 baseline has no TLS listener")
    config, tls_port = tls_config(tmp_path)
    server = start_server(config=config + "[rtp]\nsrtp = 'required'\n")
    wav, sent = speech_8k
    recording = tmp_path / "recording.wav"

    report = run_caller(
        f"sip:echo@127.0.0.1:{tls_port}", "--tls", "--srtp", "mandatory", "--codec", "PCMU",
        "--play", str(wav), "--record", str(recording),
    )  # fmt: skip

    assert report["answered"], (report, server.output())
    # pjmedia runs SRTP on its stream, keyed from our answer's a=crypto (it offered SAVP only).
    assert report["media_proto"] == "RTP/SAVP", report
    answer = report["answer_sdp"]
    assert " RTP/SAVP " in answer, answer
    (crypto,) = [line.split(":", 1)[1] for line in answer.splitlines() if line.startswith("a=crypto:")]
    suite = CryptoAttribute.parse(crypto).check_usable().name
    received, rate = read_wav(recording)
    result = windowed_correlation(
        sent, received, rate=rate, max_lag=int(MAX_ECHO_DELAY_S * rate), window_s=WINDOW_S
    )
    assert result.mean >= MIN_CORRELATION, (result, report)
    (stats,) = wait_for_media_stats(server)
    # Every datagram pjsua sent authenticated with the key of its offer: none was plain RTP.
    assert stats["srtp"] == suite, stats
    assert stats["packets_in"] >= 100 and stats["bad_packets"] == 0, stats
