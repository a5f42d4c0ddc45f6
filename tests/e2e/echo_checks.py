"""Shared steps of the SIPp echo tests: place a pcap call, check the captured echo."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from voicegw.testing.harness import EchoServer, SippResult, run_sipp
from voicegw.testing.media import Pcm, windowed_correlation
from voicegw.testing.rtp_tools import (
    PcapAudio,
    RtpCapture,
    RtpPacket,
    analyse_stream,
    build_pcap,
    decode_stream,
)

TELEPHONE_EVENT_PT = 101
SDP_CODECS = {"PCMU": "PCMU/8000", "PCMA": "PCMA/8000", "opus": "opus/48000/2"}
ECHO_TAIL_MS = 1500  # the call lasts this much past the pcap: the echo comes back late
MAX_ECHO_DELAY_S = 0.5
MIN_CORRELATION = {"PCMU": 0.9, "PCMA": 0.9, "opus": 0.8}


def sdp_keys(audio: PcapAudio) -> dict[str, str]:
    return {"pt": str(audio.payload_type), "codec": SDP_CODECS[audio.codec], "te_pt": str(TELEPHONE_EVENT_PT)}


def echo_call(
    server: EchoServer,
    capture: RtpCapture,
    media_port: int,
    audio: PcapAudio,
    workdir: Path,
    scenario: str = "uac_echo_pcap.xml",
) -> SippResult:
    """`scenario` is one of scripts/sipp/ taking the SDP keys of `sdp_keys`."""
    duration_ms = audio.packets * 20 + ECHO_TAIL_MS
    return run_sipp(
        scenario, server.port, workdir=workdir, pcap=audio.path, media_port=media_port,
        keys=sdp_keys(audio), pause_ms=duration_ms,
    )  # fmt: skip


@contextlib.contextmanager
def echo_call_running(
    server: EchoServer, capture: RtpCapture, media_port: int, audio: PcapAudio, workdir: Path
) -> Iterator[list[SippResult]]:
    """`echo_call` in a thread while the block runs; afterwards the list holds its result."""
    outcome: list[SippResult] = []
    call = threading.Thread(
        target=lambda: outcome.append(echo_call(server, capture, media_port, audio, workdir))
    )
    call.start()
    try:
        yield outcome
    finally:
        call.join()


def assert_call_finished(outcome: list[SippResult]) -> None:
    assert outcome and outcome[0].ok, outcome[0].output if outcome else "sipp did not finish"


def media_packets(capture: RtpCapture, payload_type: int) -> list[RtpPacket]:
    return [p for p in capture.packets() if p.payload_type == payload_type]


def assert_echo(packets: list[RtpPacket], audio: PcapAudio) -> None:
    """The echo's headers are a proper RTP stream and its audio is what was sent."""
    assert len(packets) >= 0.9 * audio.packets, f"{len(packets)} echo packets for {audio.packets} sent"
    report = analyse_stream(packets, samples=audio.samples_per_packet)
    assert report.problems() == [], report
    received = decode_stream(packets, audio.codec, clock_rate=audio.clock_rate)
    result = windowed_correlation(
        audio.reference, received, rate=audio.clock_rate, max_lag=int(MAX_ECHO_DELAY_S * audio.clock_rate)
    )
    assert result.mean >= MIN_CORRELATION[audio.codec], result


def pcap_for(tmp_path: Path, codec: str, pcm: Pcm) -> PcapAudio:
    return build_pcap(tmp_path / f"{codec}.pcap", codec, pcm)


def wait_for_media_stats(server: EchoServer, timeout: float = 3.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while not (stats := server.media_stats()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return stats
