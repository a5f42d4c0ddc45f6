import pytest
from aiortc.rtp import RtcpReceiverInfo, RtcpRrPacket

from voicegw.rtp.stats import (
    ReceiverStatistics,
    SenderStatistics,
    ntp_middle,
    ntp_timestamp,
)

CLOCK = 8000


def test_loss_and_fraction_lost() -> None:
    stats = ReceiverStatistics(CLOCK)
    for seq in [100, 101, 102, 104, 105, 106, 108, 109]:  # 103 and 107 lost
        stats.add(seq, seq * 160, seq * 0.02)
    assert (stats.packets_expected, stats.packets_received, stats.packets_lost) == (10, 8, 2)
    block = stats.report_block(ssrc=0x1234, now=3.0)
    assert (block.ssrc, block.fraction_lost, block.packets_lost, block.highest_sequence) == (
        0x1234,
        51,  # floor(2 * 256 / 10)
        2,
        109,
    )
    for seq in range(110, 120):
        stats.add(seq, seq * 160, seq * 0.02)
    block = stats.report_block(ssrc=0x1234, now=8.0)
    assert (block.fraction_lost, block.packets_lost) == (0, 2)  # fraction is per interval


def test_sequence_wraparound_extends() -> None:
    stats = ReceiverStatistics(CLOCK)
    for seq in [65534, 65535, 0, 2]:
        stats.add(seq, 0, 0.0, jitter=False)
    assert stats.extended_highest_sequence == 65536 + 2
    assert (stats.packets_expected, stats.packets_lost) == (5, 1)


def test_reordered_packet_does_not_move_highest() -> None:
    stats = ReceiverStatistics(CLOCK)
    for seq in [10, 12, 11]:
        stats.add(seq, 0, 0.0, jitter=False)
    assert (stats.extended_highest_sequence, stats.packets_lost) == (12, 0)


def test_duplicates_make_loss_negative() -> None:
    stats = ReceiverStatistics(CLOCK)
    for seq in [1, 2, 2, 3]:
        stats.add(seq, 0, 0.0, jitter=False)
    assert stats.packets_lost == -1
    assert stats.report_block(1, 0.0).fraction_lost == 0


def test_interarrival_jitter_rfc3550_a8() -> None:
    stats = ReceiverStatistics(CLOCK)
    # Sent every 20 ms (160 samples); the third packet arrives 5 ms late.
    for i, arrival in enumerate([0.000, 0.020, 0.045, 0.060]):
        stats.add(i, i * 160, arrival)
    # Transits (samples): 0, 0, 40, 0 -> D = 0, 40, 40 -> J = 0, 2.5, 2.5 + (40 - 2.5) / 16.
    expected = 2.5 + (40 - 2.5) / 16
    assert stats.jitter == int(expected)
    assert stats.jitter_ms == pytest.approx(expected / 8)
    assert stats.report_block(1, 1.0).jitter == 4


def test_jitter_survives_timestamp_wrap() -> None:
    stats = ReceiverStatistics(CLOCK)
    stats.add(1, 0xFFFF_FF60, 0.0)
    stats.add(2, 0x0000_0000, 0.020)  # 160 samples later, across the 32-bit wrap
    assert stats.jitter == 0


def test_lsr_and_dlsr_from_last_sender_report() -> None:
    stats = ReceiverStatistics(CLOCK)
    stats.add(1, 0, 10.0)
    ntp = 0xEEB1_103D_7035_DA4E  # from the pjsua2 SR fixture
    stats.sender_report_received(ntp, now=10.0)
    block = stats.report_block(1, now=10.5)
    assert block.lsr == 0x103D_7035
    assert block.dlsr == 32768  # 0.5 s in 1/65536 s


def test_a_report_asked_for_a_little_before_the_sr_arrived_still_encodes() -> None:
    """The SR's arrival is read from time.monotonic(), the report's `now` from uvloop's cached
    loop.time(): a hair earlier. The block must still fit its unsigned 32-bit fields (a call's
    last report once failed to encode, and its end with it)."""
    stats = ReceiverStatistics(CLOCK)
    stats.add(1, 0, 10.0)
    stats.sender_report_received(0xEEB1_103D_7035_DA4E, now=10.0004)
    block = stats.report_block(1, now=10.0)
    assert block.dlsr == 0
    assert len(bytes(RtcpRrPacket(ssrc=2, reports=[block]))) == 32


def test_sender_info_and_rtt() -> None:
    sender = SenderStatistics(CLOCK)
    for i in range(3):
        sender.add(1000 + i * 160, 160, now=100.0 + i * 0.02)
    unix_offset = 1_700_000_000.0
    info = sender.sender_info(now=100.1, unix_offset=unix_offset)
    assert (info.packet_count, info.octet_count) == (3, 480)
    assert info.rtp_timestamp == 1000 + 2 * 160 + 480  # extrapolated 60 ms past the last packet
    assert info.ntp_timestamp == ntp_timestamp(1_700_000_100.1)
    assert info.ntp_timestamp >> 32 == 1_700_000_100 + 2_208_988_800

    # The far end got our SR at 100.1, held it 0.1 s, and its RR reaches us at 100.45.
    block_lsr = ntp_middle(info.ntp_timestamp)
    block = RtcpReceiverInfo(
        ssrc=1, fraction_lost=64, packets_lost=7, highest_sequence=0, jitter=12, lsr=block_lsr, dlsr=6554
    )
    sender.report_received(block, now=100.45, unix_offset=unix_offset)
    assert sender.rtt == pytest.approx(0.25, abs=0.001)
    assert (sender.remote_fraction_lost, sender.remote_packets_lost, sender.remote_jitter) == (64, 7, 12)
