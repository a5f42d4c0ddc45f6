"""RTP counter unwrapping and RFC 3550's interarrival jitter, by hand-computed values."""

from __future__ import annotations

import pytest

from voicegw.audio.timing import SEQ_MODULUS, TS_MODULUS, InterarrivalJitter, unwrap


@pytest.mark.parametrize(
    ("value", "reference", "extended"),
    [(5, 65530, 65541), (65530, 65541, 65530), (100, 100, 100), (0, 32767, 0), (0, 32769, 65536)],
)
def test_unwrap_takes_the_nearest_extension(value: int, reference: int, extended: int) -> None:
    assert unwrap(value, reference, SEQ_MODULUS) == extended


def test_jitter_moves_a_sixteenth_of_the_way_to_each_difference() -> None:
    jitter = InterarrivalJitter(8000)
    jitter.add(0, 0.0)
    jitter.add(160, 0.020)  # on time: D = 0
    assert jitter.value == 0
    jitter.add(320, 0.050)  # 10 ms late: D = 80 samples
    assert jitter.value == pytest.approx(80 / 16)
    assert jitter.ms == pytest.approx(80 / 16 / 8)


def test_a_timestamp_wrap_is_not_a_jump() -> None:
    jitter = InterarrivalJitter(8000)
    jitter.add(TS_MODULUS - 160, 0.0)
    jitter.add(0, 0.020)  # the 32-bit timestamp wrapped, the packet is on time
    assert jitter.value == pytest.approx(0, abs=1e-6)


def test_a_new_timeline_keeps_the_estimate_and_skips_one_difference() -> None:
    jitter = InterarrivalJitter(8000)
    jitter.add(0, 0.0)
    jitter.add(160, 0.030)
    before = jitter.value
    jitter.new_timeline()
    jitter.add(900_000, 5.0)  # a talkspurt later, the sender's clock has jumped
    assert jitter.value == before
