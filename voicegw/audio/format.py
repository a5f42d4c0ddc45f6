"""The PCM every layer passes around: mono signed 16-bit little-endian, in 20 ms frames.

Codecs, the jitter and playout buffers, VAD, the media clock and every transport count in these
units; they are defined once, here.
"""

from __future__ import annotations

FRAME_MS = 20
"""The media clock's tick, the caller's frames and the unit of encoding, in milliseconds."""

BYTES_PER_SAMPLE = 2
"""Signed 16-bit samples."""
