import pytest
from aiortc.rtp import RtcpByePacket, RtcpRrPacket, RtcpSdesPacket, RtcpSrPacket, RtpPacket

from tests.rtp.helpers import load
from voicegw.rtp.packet import (
    RtpHeader,
    RtpParseError,
    is_rtcp,
    parse_rtcp,
    parse_rtp,
    parse_rtp_header,
    rtcp_kind,
    serialize_rtp,
)


def test_parse_sipp_pcma() -> None:
    data = load("sipp_pcma.bin")
    packet = parse_rtp(data)
    assert (packet.version, packet.payload_type, packet.marker) == (2, 8, 1)
    assert (packet.sequence_number, packet.timestamp) == (0xE6FD, 0xF0)
    assert len(packet.payload) == 240  # 30 ms of PCMA
    assert packet.serialize() == data
    assert not is_rtcp(data)


def test_parse_pjsua2_pcmu() -> None:
    data = load("pjsua2_pcmu.bin")
    packet = parse_rtp(data)
    assert (packet.payload_type, packet.marker, packet.ssrc) == (0, 1, 0x430DDD3D)
    assert len(packet.payload) == 160
    assert packet.serialize() == data


@pytest.mark.parametrize(
    ("data", "reason", "message"),
    [
        (b"", "garbage", "datagram of 0 bytes is not RTP"),
        (b"\r\n\r\n", "garbage", "datagram of 4 bytes is not RTP"),
        (b"GET / HTTP/1.1\r\n\r\n", "bad_version", "RTP packet has invalid version 1"),
        (load("sipp_pcma.bin")[:10], "truncated", "RTP packet length is less than 12 bytes"),
        (b"\x83" + load("sipp_pcma.bin")[1:12], "truncated", "RTP packet has truncated CSRC"),
        (
            b"\x90" + load("sipp_pcma.bin")[1:12],
            "truncated",
            "RTP packet has truncated extension profile / length",
        ),
        (
            b"\xa0" + load("sipp_pcma.bin")[1:-1] + b"\xff",
            "truncated",
            "RTP packet padding length is invalid",
        ),
        (bytes([0xC0]) + load("sipp_pcma.bin")[1:], "bad_version", "RTP packet has invalid version 3"),
    ],
)
def test_bad_rtp_is_classified(data: bytes, reason: str, message: str) -> None:
    with pytest.raises(RtpParseError) as info:
        parse_rtp(data)
    assert info.value.reason == reason
    assert str(info.value) == message
    assert isinstance(info.value, ValueError)


def test_parse_pjsua2_sender_report() -> None:
    data = load("pjsua2_rtcp_sr.bin")
    assert is_rtcp(data)
    sr, sdes = parse_rtcp(data)
    assert isinstance(sr, RtcpSrPacket) and isinstance(sdes, RtcpSdesPacket)
    assert sr.ssrc == 0x430DDD3D
    assert (sr.sender_info.rtp_timestamp, sr.sender_info.packet_count, sr.sender_info.octet_count) == (
        43504,
        56,
        5216,
    )
    assert sdes.chunks[0].items == [(1, b"5dce40242c086588")]
    assert [rtcp_kind(p) for p in (sr, sdes)] == ["sr", "sdes"]
    assert bytes(sr) + bytes(sdes) == data


def test_parse_pjsua2_bye() -> None:
    data = load("pjsua2_rtcp_bye.bin")
    rr, sdes, bye = parse_rtcp(data)
    assert isinstance(rr, RtcpRrPacket) and isinstance(bye, RtcpByePacket)
    assert bye.sources == [0x430DDD3D]
    assert bytes(rr) + bytes(sdes) + bytes(bye) == data


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (load("pjsua2_rtcp_sr.bin")[:40], "RTCP packet is truncated"),
        (b"\x81\xc8\x00\x01\x00\x00\x00\x00", "RTCP sender report length is invalid"),
        (b"\x41\xc8\x00\x00", "RTCP packet has invalid version"),
        (b"\x80\xcc\x00\x00", "RTCP compound packet holds no known packet"),
        (b"\x81", "RTCP packet length is less than 4 bytes"),
    ],
)
def test_bad_rtcp(data: bytes, message: str) -> None:
    with pytest.raises(RtpParseError) as info:
        parse_rtcp(data)
    assert (info.value.reason, str(info.value)) == ("bad_rtcp", message)


@pytest.mark.parametrize("name", ["sipp_pcma.bin", "pjsua2_pcmu.bin"])
def test_header_fast_path_reads_what_aiortc_reads(name: str) -> None:
    data = load(name)
    packet = parse_rtp(data)
    header = parse_rtp_header(data)
    assert header == RtpHeader(
        packet.payload_type, packet.marker, packet.sequence_number, packet.timestamp, packet.ssrc,
        packet.payload,
    )  # fmt: skip
    assert serialize_rtp(*header) == packet.serialize() == data


def test_headers_with_csrcs_or_padding_take_the_full_parser() -> None:
    with_csrc = RtpPacket(payload_type=0, sequence_number=7, timestamp=160, ssrc=5, payload=b"\xff" * 160)
    with_csrc.csrc = [0x1234]
    with_padding = RtpPacket(payload_type=8, sequence_number=8, timestamp=320, ssrc=5, payload=b"\xd5" * 160)
    with_padding.padding_size = 4
    for packet in (with_csrc, with_padding):
        header = parse_rtp_header(packet.serialize())
        assert (header.payload_type, header.sequence_number, header.payload) == (
            packet.payload_type, packet.sequence_number, packet.payload,
        )  # fmt: skip


@pytest.mark.parametrize(
    "data", [b"", b"\x80" * 11, b"GET / HTTP/1.1\r\n\r\n", b"\x83" + load("sipp_pcma.bin")[1:12]]
)
def test_header_fast_path_fails_as_the_full_parser_does(data: bytes) -> None:
    with pytest.raises(RtpParseError) as full:
        parse_rtp(data)
    with pytest.raises(RtpParseError) as fast:
        parse_rtp_header(data)
    assert (fast.value.reason, str(fast.value)) == (full.value.reason, str(full.value))
