"""Whole calls placed by SIPp against a real echo server, the echo captured on our own socket.

SIPp replays RTP from a pcap out of the port its SDP announces (`[media_port+4]`, raw socket), and
that port is the test's capture socket: the server latches on to it (symmetric RTP) and its echo
lands there, where headers and audio are checked.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.echo_checks import (
    TELEPHONE_EVENT_PT,
    assert_echo,
    echo_call,
    media_packets,
    pcap_for,
    wait_for_media_stats,
)
from voicegw.testing.harness import EchoServer, run_builtin_sipp, shipped_pcap_dir
from voicegw.testing.media import Pcm
from voicegw.testing.rtp_tools import RtpCapture

pytestmark = pytest.mark.e2e


@pytest.mark.timeout(60)
@pytest.mark.parametrize("codec", ["PCMU", "PCMA"])
@pytest.mark.parametrize(
    "scenario",
    [
        "uac_echo_pcap.xml",
        # A delayed offer: no SDP in the INVITE, voicegw offers in the 200 OK, SIPp answers `codec`
        # in the ACK (PCMA is not voicegw's first choice: the answer's codec is the one used).
        "uac_late_offer_pcap.xml",
    ],
)
def test_g711_echo_matches_what_sipp_sent(
    codec: str,
    scenario: str,
    echo_server: EchoServer,
    rtp_capture: tuple[RtpCapture, int],
    speech_8k: tuple[Path, Pcm],
    tmp_path: Path,
) -> None:
    capture, media_port = rtp_capture
    audio = pcap_for(tmp_path, codec, speech_8k[1])

    result = echo_call(echo_server, capture, media_port, audio, tmp_path / "sipp", scenario)

    assert result.ok, result.output
    assert_echo(media_packets(capture, audio.payload_type), audio)


@pytest.mark.timeout(60)
def test_opus_only_offer_is_answered_and_echoed_with_opus(
    e2e_target: str,
    echo_server: EchoServer,
    rtp_capture: tuple[RtpCapture, int],
    speech_48k: tuple[Path, Pcm],
    tmp_path: Path,
) -> None:
    if e2e_target == "baseline":
        pytest.skip("the pjsua2 2.12 baseline has no Opus")
    capture, media_port = rtp_capture
    audio = pcap_for(tmp_path, "opus", speech_48k[1])

    result = echo_call(echo_server, capture, media_port, audio, tmp_path / "sipp")

    assert result.ok, result.output
    others = {p.payload_type for p in capture.packets()} - {audio.payload_type, TELEPHONE_EVENT_PT}
    assert not others, f"echo used payload types {others}, offer had only Opus"
    assert_echo(media_packets(capture, audio.payload_type), audio)


@pytest.mark.timeout(45)
def test_sipp_builtin_uac_pcap_scenario_is_echoed_and_its_dtmf_reported(
    e2e_target: str, echo_server: EchoServer, rtp_capture: tuple[RtpCapture, int], tmp_path: Path
) -> None:
    """SIPp's own `uac_pcap`: 8 s of PCMA from its shipped g711a.pcap, then RFC 4733 digit 1."""
    if shipped_pcap_dir() is None:
        pytest.skip("SIPp's shipped pcaps are not installed")
    _, media_port = rtp_capture  # SIPp binds -mp itself here: its echo is counted, not captured

    result = run_builtin_sipp("uac_pcap", echo_server.port, workdir=tmp_path / "sipp", media_port=media_port)

    assert result.ok, result.output
    assert "1" in echo_server.dtmf_digits(), echo_server.output()
    if e2e_target == "voicegw":
        stats = wait_for_media_stats(echo_server)
        assert stats, echo_server.output()
        # g711a.pcap holds 236 packets of 30 ms (7 s): echoed as at least 7 s of 20 ms packets.
        assert stats[-1]["packets_in"] >= 230 and stats[-1]["packets_out"] >= 0.9 * 7.0 / 0.020, stats[-1]
        # RFC 3550 cumulative loss goes negative with duplicates: RFC 4733 repeats its end packet.
        assert stats[-1]["lost"] <= 0, stats[-1]
