"""The end-to-end checkers themselves: each must fail on the defect it is there to catch."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from voicegw.testing.media import PCMA, PCMU, Pcm, cross_correlate, windowed_correlation
from voicegw.testing.rtp_tools import (
    PCAP_HEADER,
    PCAP_RECORD,
    RtpCapture,
    RtpPacket,
    analyse_stream,
    build_pcap,
    decode_stream,
)

RATE = 8000


def speechlike(seconds: float = 2.0, seed: int = 7) -> Pcm:
    """Noise bursts with a syllable-like envelope: correlates only with itself."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    envelope = np.clip(np.sin(2 * np.pi * 3 * t), 0, None)
    return (rng.standard_normal(len(t)) * 6000 * envelope).astype(np.int16)


def with_arrivals(packets: list[RtpPacket], interval: float = 0.02) -> list[RtpPacket]:
    return [
        RtpPacket(p.payload_type, p.sequence_number, p.timestamp, p.ssrc, p.marker, p.payload, i * interval)
        for i, p in enumerate(packets)
    ]


def pcap_packets(path: Path) -> list[RtpPacket]:
    data = path.read_bytes()
    offset, packets = PCAP_HEADER.size, []
    while offset < len(data):
        _, _, length, _ = PCAP_RECORD.unpack_from(data, offset)
        frame = data[offset + PCAP_RECORD.size : offset + PCAP_RECORD.size + length]
        packets.append(RtpPacket.parse(frame[14 + 20 + 8 :]))
        offset += PCAP_RECORD.size + length
    return packets


def test_g711_tables_round_trip_within_one_quantization_step() -> None:
    pcm = speechlike()
    for codec in (PCMU, PCMA):
        decoded = codec.decode(codec.encode(pcm)).astype(np.int32)
        assert np.max(np.abs(decoded - pcm) / (np.abs(pcm.astype(np.int32)) + 128)) < 0.07, codec.name


def test_pcap_holds_the_stream_and_the_reference_decodes_from_it(tmp_path: Path) -> None:
    pcm = speechlike()
    audio = build_pcap(tmp_path / "a.pcap", "PCMU", pcm)

    packets = pcap_packets(audio.path)

    assert len(packets) == audio.packets == 100
    assert analyse_stream(with_arrivals(packets), samples=160).problems() == []
    decoded = decode_stream(packets, "PCMU", clock_rate=RATE)
    assert np.array_equal(decoded, audio.reference)


def test_stream_analysis_flags_gaps_ssrc_changes_and_bad_timestamps(tmp_path: Path) -> None:
    packets = with_arrivals(pcap_packets(build_pcap(tmp_path / "a.pcap", "PCMA", speechlike()).path))
    broken = list(packets)
    del broken[10]
    broken[20] = RtpPacket(8, broken[20].sequence_number, broken[20].timestamp + 80, 1, False, b"", 0.4)
    broken[30] = RtpPacket(8, broken[30].sequence_number, broken[30].timestamp, 99, False, b"", 0.6)

    report = analyse_stream(broken, samples=160)

    assert report.seq_gaps == 1
    assert report.timestamp_errors == 3  # 10 -> 11 skipped, into and out of packet 20
    assert len(report.ssrcs) == 3
    assert len(report.problems()) == 3


def test_correlation_finds_the_delay_and_rejects_other_audio() -> None:
    sent = speechlike()
    echoed = np.concatenate([np.zeros(1234, dtype=np.int16), sent // 2])

    assert cross_correlate(sent, echoed, max_lag=4000).lag_samples == 1234
    assert windowed_correlation(sent, echoed, rate=RATE, max_lag=4000).mean > 0.99
    assert windowed_correlation(sent, speechlike(seed=8), rate=RATE, max_lag=4000).mean < 0.3
    assert windowed_correlation(sent, sent[::-1].copy(), rate=RATE, max_lag=4000).mean < 0.3


def test_capture_records_datagrams_with_their_source() -> None:
    with RtpCapture() as capture, RtpCapture() as other:
        packet = RtpPacket(0, 1, 160, 42, True, b"\xff" * 160)
        other.send(bytes(packet), ("127.0.0.1", capture.port))
        other.send(struct.pack("!BB", 0x80, 200) + b"\0" * 6, ("127.0.0.1", capture.port))  # RTCP SR-ish

        received = capture.wait_for(1, timeout=2)

    assert received == [RtpPacket(0, 1, 160, 42, True, b"\xff" * 160, received[0].arrival)]
    assert capture.datagrams[0][2] == ("127.0.0.1", other.port)
