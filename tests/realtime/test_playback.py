"""AgentPlayback: which agent audio the caller heard, and where to cut (sans-I/O)."""

from __future__ import annotations

from voicegw.realtime.playback import AgentPlayback, Cut

RATE = 8000
MS = RATE * 2 // 1000  # bytes per millisecond


def test_cuts_only_what_was_not_heard() -> None:
    played = {"a1": 0, "a2": 0}
    playback = AgentPlayback(RATE, played.__getitem__)
    playback.response_started("r1")
    assert playback.audio("a1", 0, "r1", 500 * MS)
    assert not playback.audio("a1", 0, "r1", 500 * MS)
    playback.response_done("r1")
    assert playback.audio("a2", 0, "r2", 800 * MS)  # a later answer, queued behind a1
    played["a1"] = 1000
    played["a2"] = 120
    assert playback.speaking() and playback.pending_ms() == 680
    assert playback.cancel_active() == "r2"
    assert playback.cut() == [Cut("a2", 0, 120, 800)]  # a1 was heard in full
    assert not playback.accepts("a2", "r9") and not playback.accepts("a9", "r2")
    assert playback.accepts("a9", "r9")
    assert not playback.speaking()
    assert playback.cut() == []


def test_text_only_item_is_cut_at_zero() -> None:
    playback = AgentPlayback(RATE, lambda item_id: 0)
    assert playback.cut("t1") == [Cut("t1", 0, 0, 0)]
    assert playback.interrupted("t1")


def test_without_a_transport_all_received_audio_counts_as_heard() -> None:
    playback = AgentPlayback(RATE, None)
    playback.audio("a1", 0, "r1", 300 * MS)
    assert playback.speaking()  # still generating
    assert playback.cancel_active() == "r1"
    assert playback.cut("a1") == [Cut("a1", 0, 300, 300)]
