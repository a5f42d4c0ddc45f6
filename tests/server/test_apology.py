"""The apology's audio needs no model: shipped in the package, converted to each call's rate."""

from __future__ import annotations

import numpy as np

from voicegw.server.apology import Apology, shipped_apology


def test_the_shipped_recording_is_short_speech_at_8_khz() -> None:
    pcm, rate = shipped_apology()
    samples = np.frombuffer(pcm, dtype="<i2")
    assert rate == 8000
    assert 2.0 < len(samples) / rate < 5.0
    assert np.sqrt(np.mean(samples.astype(np.float64) ** 2)) > 500  # speech, not silence


def test_the_apology_at_each_call_rate_lasts_as_long() -> None:
    apology = Apology.shipped()
    base = apology.duration_s(8000)
    for rate in (16000, 24000, 48000):
        assert abs(apology.duration_s(rate) - base) < 0.01
        assert apology.pcm(rate) is apology.pcm(rate)  # converted once
