from __future__ import annotations

import numpy as np
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


def test_odd_chunks_come_out_as_exact_frames_in_order() -> None:
    pcm = np.random.default_rng(3).integers(-3000, 3000, RATE, dtype="<i2").tobytes()  # 1 s
    buffer = PlayoutBuffer(RATE)
    for i in range(0, len(pcm), 26):  # 13 samples at a time
        buffer.enqueue(pcm[i : i + 26], "a")
    assert buffer.queued_ms == 1000
    out = []
    while (frame := buffer.next_frame()) is not None:
        out.append(frame)
        assert buffer.queued_ms == 1000 - 20 * len(out)
    assert len(out) == 50 and {len(f.pcm) for f in out} == {FRAME}
    assert b"".join(f.pcm for f in out) == pcm


def test_audio_after_a_flush_starts_a_new_talkspurt() -> None:
    buffer = PlayoutBuffer(RATE)
    buffer.enqueue(audio(100), "a")
    buffer.next_frame()
    buffer.flush()
    buffer.enqueue(audio(40), "b")  # the next response, in the same tick as the barge-in
    frame = buffer.next_frame()
    assert frame and frame.marker and frame.item_id == "b"
    assert buffer.played_ms("a") == 20


def test_flush_reports_the_item_being_played_not_the_queued_one() -> None:
    buffer = PlayoutBuffer(RATE)
    buffer.enqueue(audio(40), "a")
    buffer.enqueue(audio(100), "b")
    for _ in range(3):
        buffer.next_frame()
    assert buffer.flush() == 20  # "b" had one frame out
    assert (buffer.played_ms("a"), buffer.played_ms("b")) == (40, 20)


def test_frame_size_must_be_whole_samples() -> None:
    with pytest.raises(ValueError, match="15 ms at 22050 Hz is not a whole positive number of samples"):
        PlayoutBuffer(22050, frame_ms=15)
