from __future__ import annotations

import pytest

from voicegw.audio.playout import PlayoutBuffer

RATE = 8000
FRAME = 320  # bytes in 20 ms at 8 kHz


def audio(ms: int, value: int = 1) -> bytes:
    return value.to_bytes(2, "little", signed=True) * (RATE * ms // 1000)


def test_frames_are_exactly_20ms_and_the_last_is_padded() -> None:
    buffer = PlayoutBuffer(RATE)
    buffer.enqueue(audio(50), "a")
    frames = [buffer.next_frame() for _ in range(4)]
    assert [len(f.pcm) for f in frames if f] == [FRAME, FRAME, FRAME]
    assert frames[2] and frames[2].pcm == audio(10) + bytes(FRAME // 2)
    assert frames[3] is None
    assert buffer.played_ms("a") == 50


def test_marker_on_the_first_frame_of_each_talkspurt() -> None:
    buffer = PlayoutBuffer(RATE)
    buffer.enqueue(audio(40), "a")
    markers = [f.marker for f in (buffer.next_frame(), buffer.next_frame()) if f]
    assert markers == [True, False]
    assert buffer.next_frame() is None
    buffer.enqueue(audio(20), "b")
    frame = buffer.next_frame()
    assert frame and frame.marker and frame.item_id == "b"


def test_chunks_of_one_item_join_up() -> None:
    buffer = PlayoutBuffer(RATE)
    for _ in range(4):
        buffer.enqueue(audio(5), "a")
    assert buffer.queued_ms == 20
    frame = buffer.next_frame()
    assert frame and frame.pcm == audio(20)
    assert buffer.next_frame() is None


def test_flush_mid_item_drops_the_rest_and_reports_what_was_sent() -> None:
    buffer = PlayoutBuffer(RATE)
    buffer.enqueue(audio(1000), "answer")
    for _ in range(7):
        buffer.next_frame()
    assert buffer.flush() == 140
    assert buffer.queued_ms == 0
    assert buffer.next_frame() is None
    assert buffer.played_ms("answer") == 140


def test_flush_before_anything_was_sent_reports_zero() -> None:
    buffer = PlayoutBuffer(RATE)
    buffer.enqueue(audio(100), "a")
    assert buffer.flush() == 0
    assert buffer.played_ms("a") == 0


def test_played_ms_is_per_item() -> None:
    buffer = PlayoutBuffer(16000)
    buffer.enqueue(b"\x01\x00" * (16000 // 10), "one")  # 100 ms at 16 kHz
    buffer.enqueue(b"\x01\x00" * (16000 // 25), "two")  # 40 ms
    while buffer.next_frame():
        pass
    assert (buffer.played_ms("one"), buffer.played_ms("two"), buffer.played_ms("three")) == (100, 40, 0)


def test_odd_byte_count_is_our_misuse() -> None:
    with pytest.raises(ValueError, match="whole 16-bit samples"):
        PlayoutBuffer(RATE).enqueue(b"\x00", "a")
