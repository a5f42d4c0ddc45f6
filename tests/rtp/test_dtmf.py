import pytest

from tests.rtp.helpers import load_stream
from voicegw.rtp.dtmf import DtmfDetector, TelephoneEvent, digit_packets
from voicegw.rtp.events import DtmfDigit
from voicegw.rtp.packet import RtpParseError, parse_rtp

CLOCK = 8000


def feed_all(detector: DtmfDetector, packets: list[bytes], *, start: float = 0.0) -> list[DtmfDigit]:
    digits = []
    for i, data in enumerate(packets):
        packet = parse_rtp(data)
        digits += detector.feed(TelephoneEvent.parse(packet.payload), packet.timestamp, start + i * 0.02)
    return digits


def test_parse_sipp_payloads() -> None:
    packets = [parse_rtp(d) for d in load_stream("sipp_dtmf_2833_1.bin")]
    events = [TelephoneEvent.parse(p.payload) for p in packets]
    assert events[0] == TelephoneEvent(event=1, end=False, volume=10, duration=0)
    assert events[-1] == TelephoneEvent(event=1, end=True, volume=10, duration=2240)
    assert [e.end for e in events] == [False] * 7 + [True] * 3
    assert all(bytes(e) == p.payload for e, p in zip(events, packets, strict=True))
    assert events[0].digit == "1"


def test_parse_error_text() -> None:
    with pytest.raises(RtpParseError, match=r"^telephone-event payload has 3 bytes, needs 4$"):
        TelephoneEvent.parse(b"\x01\x8a\x00")


def test_constructor_rejects_out_of_range() -> None:
    with pytest.raises(ValueError, match="volume 64 is outside 0-63"):
        TelephoneEvent(event=1, end=False, volume=64, duration=0)


def test_sipp_digit_reported_once_despite_three_end_packets() -> None:
    digits = feed_all(DtmfDetector(CLOCK), load_stream("sipp_dtmf_2833_1.bin"))
    assert digits == [DtmfDigit("1", 280)]


def test_pjsua2_two_digits_each_once() -> None:
    detector = DtmfDetector(CLOCK)
    digits = feed_all(detector, load_stream("pjsua2_dtmf_5_hash.bin"))
    assert digits == [DtmfDigit("5", 200), DtmfDigit("#", 200)]
    assert detector.deadline is None


def test_retransmitted_and_late_packets_ignored() -> None:
    packets = load_stream("pjsua2_dtmf_5_hash.bin")[:12]
    # Everything twice, then a late update and a late end packet of the same press.
    replay = [p for p in packets for _ in range(2)] + [packets[5], packets[-1]]
    assert feed_all(DtmfDetector(CLOCK), replay) == [DtmfDigit("5", 200)]


def test_lost_start_packet() -> None:
    packets = load_stream("sipp_dtmf_2833_1.bin")[2:]
    assert feed_all(DtmfDetector(CLOCK), packets) == [DtmfDigit("1", 280)]


def test_all_end_packets_lost_reported_on_timeout() -> None:
    detector = DtmfDetector(CLOCK)
    assert feed_all(detector, load_stream("sipp_dtmf_2833_1.bin")[:7]) == []
    last_seen = 6 * 0.02
    assert detector.deadline == pytest.approx(last_seen + 0.5)
    assert detector.poll(last_seen + 0.4) is None
    assert detector.poll(last_seen + 0.5) == DtmfDigit("1", 240)  # the last update's 1920 samples
    assert detector.poll(last_seen + 1.0) is None


def test_all_end_packets_lost_reported_when_next_press_starts() -> None:
    packets = load_stream("pjsua2_dtmf_5_hash.bin")
    without_first_end = packets[:9] + packets[12:]
    digits = feed_all(DtmfDetector(CLOCK), without_first_end)
    assert digits == [DtmfDigit("5", 180), DtmfDigit("#", 200)]


def test_same_digit_twice_is_two_presses() -> None:
    detector = DtmfDetector(CLOCK)
    end = TelephoneEvent(event=7, end=True, volume=10, duration=800)
    assert detector.feed(end, 1000, 0.0) == [DtmfDigit("7", 100)]
    assert detector.feed(end, 1000, 0.02) == []
    assert detector.feed(end, 3000, 0.5) == [DtmfDigit("7", 100)]


def test_non_dtmf_event_ignored() -> None:
    flash = TelephoneEvent(event=16, end=True, volume=10, duration=800)
    assert DtmfDetector(CLOCK).feed(flash, 1000, 0.0) == []


def test_sender_sequence() -> None:
    packets = digit_packets("#", 100, CLOCK)
    assert [p.offset_ms for p in packets] == [0, 50, 100, 120, 140]
    assert [p.marker for p in packets] == [True, False, False, False, False]
    assert [p.event.end for p in packets] == [False, False, True, True, True]
    assert [p.event.duration for p in packets] == [0, 400, 800, 800, 800]
    assert {p.event.event for p in packets} == {11}


def test_sender_then_detector() -> None:
    detector = DtmfDetector(48000)
    digits = []
    for p in digit_packets("D", 250, 48000):
        digits += detector.feed(TelephoneEvent.parse(bytes(p.event)), 5555, p.offset_ms / 1000)
    assert digits == [DtmfDigit("D", 250)]


@pytest.mark.parametrize(
    ("digit", "duration", "message"),
    [
        ("x", 100, r"'x' is not a DTMF digit \(one of 0123456789\*#ABCD\)"),
        ("12", 100, "'12' is not a DTMF digit"),
        ("1", 0, "DTMF duration must be positive, got 0 ms"),
        ("1", 9000, "DTMF duration 9000 ms does not fit one event at 8000 Hz"),
    ],
)
def test_sender_rejects_misuse(digit: str, duration: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        digit_packets(digit, duration, CLOCK)
