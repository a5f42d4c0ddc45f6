"""Bad input against a real echo server: no common codec, malformed SIP, bad RTP, silence.

Each must be refused or dropped while the call in progress keeps echoing.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.echo_checks import (
    TELEPHONE_EVENT_PT,
    assert_call_finished,
    assert_echo,
    echo_call_running,
    media_packets,
    pcap_for,
    sdp_keys,
    wait_for_media_stats,
)
from voicegw.testing.harness import EchoServer, options_ping, run_sipp
from voicegw.testing.media import Pcm
from voicegw.testing.rtp_tools import RtpCapture, RtpPacket

pytestmark = pytest.mark.e2e


@pytest.mark.timeout(30)
def test_offer_without_a_common_codec_gets_488(
    echo_server: EchoServer, rtp_capture: tuple[RtpCapture, int], tmp_path: Path
) -> None:
    _, media_port = rtp_capture
    result = run_sipp(
        "uac_no_common_codec.xml", echo_server.port, workdir=tmp_path / "sipp", pcap=None,
        media_port=media_port, keys={"pt": "18", "codec": "G729/8000", "te_pt": str(TELEPHONE_EVENT_PT)},
        timeout=20,
    )  # fmt: skip

    assert result.ok, result.output


@pytest.mark.timeout(45)
def test_server_hangs_up_with_bye_when_rtp_stops(
    start_server: Callable[..., EchoServer],
    rtp_capture: tuple[RtpCapture, int],
    speech_8k: tuple[Path, Pcm],
    tmp_path: Path,
) -> None:
    media_timeout = 3.0
    server = start_server(media_timeout=media_timeout)
    _, media_port = rtp_capture
    audio = pcap_for(tmp_path, "PCMU", speech_8k[1][:8000])  # one second, then silence on the wire

    started = time.monotonic()
    result = run_sipp(
        "uac_media_timeout.xml", server.port, workdir=tmp_path / "sipp", pcap=audio.path,
        media_port=media_port, keys=sdp_keys(audio), timeout=30,
    )  # fmt: skip
    elapsed = time.monotonic() - started

    assert result.ok, f"no BYE from the server after its media timeout:\n{result.output}"
    assert media_timeout <= elapsed <= 1.0 + media_timeout + 5.0, f"BYE after {elapsed:.1f} s"


def bad_packets(ssrc: int, seq: int) -> list[bytes]:
    """Garbage, a truncated header, a wrong version and an unnegotiated payload type."""
    wrong_pt = RtpPacket(96, seq, 1234, ssrc ^ 0xFFFF, False, b"\xff" * 160)
    return [
        b"\x13\x37" * 40,
        bytes(wrong_pt)[:7],
        b"\x40" + bytes(wrong_pt)[1:],
        bytes(wrong_pt),
    ]


@pytest.mark.timeout(60)
def test_bad_rtp_is_dropped_and_the_echo_continues(
    e2e_target: str,
    echo_server: EchoServer,
    rtp_capture: tuple[RtpCapture, int],
    speech_8k: tuple[Path, Pcm],
    tmp_path: Path,
) -> None:
    capture, media_port = rtp_capture
    audio = pcap_for(tmp_path, "PCMA", speech_8k[1])
    rounds = 10
    with echo_call_running(echo_server, capture, media_port, audio, tmp_path / "sipp") as outcome:
        first = capture.wait_for(1, timeout=10)
        assert first, "no echo at all"
        server_rtp = next(addr for _, _, addr in capture.datagrams)
        # From the latched address itself: the bad packets cannot be told apart by their source.
        for n in range(rounds):
            for data in bad_packets(first[0].ssrc, 40000 + n):
                capture.send(data, server_rtp)
            time.sleep(0.1)

    assert_call_finished(outcome)
    assert_echo(media_packets(capture, audio.payload_type), audio)
    assert {p.payload_type for p in capture.packets()} <= {audio.payload_type, TELEPHONE_EVENT_PT}
    if e2e_target == "voicegw":
        stats = wait_for_media_stats(echo_server)
        assert stats, f"no rtp_closed stats line in the server log:\n{echo_server.output()}"
        assert stats[-1]["bad_packets"] >= rounds * len(bad_packets(0, 0)), stats[-1]


def malformed_sip(local_port: int) -> list[bytes]:
    """Binary garbage, an INVITE missing its mandatory headers, a request with a broken CSeq."""
    via = f"Via: SIP/2.0/UDP 127.0.0.1:{local_port};branch=z9hG4bK"
    return [
        bytes(range(256)) * 2,
        f"INVITE sip:echo@127.0.0.1 SIP/2.0\r\n{via}bad1\r\nContent-Length: 500\r\n\r\nv=0\r\n".encode(),
        (
            f"OPTIONS sip:echo@127.0.0.1 SIP/2.0\r\n{via}bad2\r\nFrom: <sip:a@127.0.0.1>;tag=1\r\n"
            "To: <sip:echo@127.0.0.1>\r\nCall-ID: bad2@127.0.0.1\r\nCSeq: many OPTIONS\r\n"
            "Content-Length: 0\r\n\r\n"
        ).encode(),
    ]


def send_malformed_sip(server_port: int) -> list[int]:
    """Send the malformed requests; return the status codes of whatever answers came back."""
    statuses = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(1.0)
        for data in malformed_sip(sock.getsockname()[1]):
            sock.sendto(data, ("127.0.0.1", server_port))
        try:
            while True:
                reply = sock.recv(65535).split(b" ", 2)
                statuses.append(int(reply[1]) if len(reply) > 1 and reply[1].isdigit() else -1)
        except TimeoutError:
            pass
    return statuses


@pytest.mark.timeout(60)
def test_malformed_sip_gets_400_or_is_dropped_during_a_call(
    echo_server: EchoServer,
    rtp_capture: tuple[RtpCapture, int],
    speech_8k: tuple[Path, Pcm],
    tmp_path: Path,
) -> None:
    capture, media_port = rtp_capture
    audio = pcap_for(tmp_path, "PCMU", speech_8k[1])
    with echo_call_running(echo_server, capture, media_port, audio, tmp_path / "sipp") as outcome:
        assert capture.wait_for(1, timeout=10), "no echo at all"
        statuses = send_malformed_sip(echo_server.port)

    assert set(statuses) <= {400}, f"answers to malformed SIP: {statuses}"
    assert options_ping(echo_server.port) == 200
    assert_call_finished(outcome)
    assert_echo(media_packets(capture, audio.payload_type), audio)
