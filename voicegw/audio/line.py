"""What a telephone line does to audio: 8 kHz G.711 μ-law and back (sans-I/O).

The embedded model's tests and `scripts/bench_latency.py` put their speech through it, so that the
model hears what a caller's phone would send.
"""

from __future__ import annotations

from voicegw.audio.codecs import PCMU
from voicegw.audio.format import FRAME_MS
from voicegw.audio.resample import Resampler

LINE_RATE = 8000


def phone_line(pcm: bytes, source_rate: int, rate: int = LINE_RATE) -> bytes:
    """Mono s16le `pcm` at `source_rate` through 8 kHz G.711 μ-law and back, at `rate`."""
    narrow = Resampler(source_rate, LINE_RATE).process(pcm)
    codec = PCMU()
    frame_bytes = LINE_RATE * FRAME_MS // 1000 * 2
    narrow += b"\0" * (-len(narrow) % frame_bytes)
    line = b"".join(
        codec.decode(codec.encode(narrow[i : i + frame_bytes])) for i in range(0, len(narrow), frame_bytes)
    )
    return Resampler(LINE_RATE, rate).process(line)
