"""The soft thinking tone played on the line while a slow tool runs."""

from __future__ import annotations

import numpy as np

TONE_HZ = (440.0, 660.0)
"""A soft open fifth: reads as "working", not as a ring-back or an alarm."""

LEVEL = 0.03
"""Peak amplitude as a fraction of full scale (about -30 dBFS): quiet under any voice."""

BEEP_MS = 160
PERIOD_MS = 1200
FADE_MS = 30


def thinking_tone(sample_rate: int, duration_ms: int) -> bytes:
    """`duration_ms` of the tone pattern (a short soft chime every `PERIOD_MS`), mono s16le."""
    period = np.zeros(sample_rate * PERIOD_MS // 1000, dtype=np.float64)
    beep_len = sample_rate * BEEP_MS // 1000
    t = np.arange(beep_len) / sample_rate
    beep = sum(np.sin(2 * np.pi * hz * t) for hz in TONE_HZ) / len(TONE_HZ)
    ramp = np.minimum(np.arange(beep_len), np.arange(beep_len)[::-1]) / (sample_rate * FADE_MS / 1000)
    fade = np.minimum(1.0, ramp)
    period[:beep_len] = beep * fade
    total = sample_rate * duration_ms // 1000
    signal = np.resize(period, total) * LEVEL * 32767
    return signal.astype("<i2").tobytes()
