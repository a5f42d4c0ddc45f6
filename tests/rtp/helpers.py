"""Shared test helpers: fixture loading and wiring two sans-I/O RTP sessions with no sockets."""

from __future__ import annotations

import random
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tests import signals
from voicegw.rtp.events import Address, SessionEvent
from voicegw.rtp.session import Datagram, RtpSession

DATA = Path(__file__).parent / "data"


def free_range(pairs: int) -> tuple[int, int]:
    """A random even-aligned port range, so concurrent test runs rarely meet (busy ports are skipped)."""
    low = random.randrange(20000, 60000, 2)
    return low, low + 2 * pairs - 1


def load(name: str) -> bytes:
    """One captured datagram."""
    return (DATA / name).read_bytes()


def load_stream(name: str) -> list[bytes]:
    """A captured sequence of datagrams (2-byte length prefix per record)."""
    data = load(name)
    packets = []
    pos = 0
    while pos < len(data):
        (length,) = struct.unpack_from("!H", data, pos)
        packets.append(data[pos + 2 : pos + 2 + length])
        pos += 2 + length
    return packets


def deliver(
    datagrams: list[Datagram],
    receiver: RtpSession,
    *,
    to: Address,
    source: Address,
    now: float,
    drop: Callable[[Datagram], bool] = lambda d: False,
) -> int:
    """Move datagrams addressed to `to` into `receiver` as if sent from `source` (RTCP from the
    port above it); loss = `drop`."""
    moved = 0
    for datagram in datagrams:
        if datagram.address[0] == to[0] and datagram.address[1] in (to[1], to[1] + 1) and not drop(datagram):
            sender = (source[0], source[1] + 1) if datagram.rtcp else source
            receiver.receive(datagram.data, sender, now, rtcp=datagram.rtcp)
            moved += 1
    return moved


def drain_events(session: RtpSession) -> list[SessionEvent]:
    events: list[SessionEvent] = []
    while (event := session.next_event()) is not None:
        events.append(event)
    return events


def sine(freq: float, seconds: float, rate: int, amplitude: float = 0.3) -> bytes:
    """Mono s16le sine with a slow amplitude wobble, so correlation has structure to lock on."""
    t = np.arange(int(seconds * rate)) / rate
    envelope = 0.6 + 0.4 * np.sin(2 * np.pi * 3 * t)
    return (amplitude * 32767 * envelope * np.sin(2 * np.pi * freq * t)).astype("<i2").tobytes()


def best_correlation(sent: bytes, received: bytes) -> tuple[float, int]:
    """Highest normalized cross-correlation of `sent` at any offset inside `received`.

    Returns (score, lag in samples). FFT-based: O(n log n) whatever the latency.
    """
    a = np.frombuffer(sent, "<i2").astype(np.float64)
    b = np.frombuffer(received, "<i2").astype(np.float64)
    if len(b) < len(a):
        return 0.0, 0
    size = 1 << (len(a) + len(b)).bit_length()
    corr = np.fft.irfft(np.fft.rfft(b, size) * np.conj(np.fft.rfft(a, size)), size)[: len(b) - len(a) + 1]
    cumulative = np.concatenate([[0.0], np.cumsum(b * b)])
    window_energy = np.maximum(cumulative[len(a) :] - cumulative[: -len(a)], 1e-9)
    scores = corr / (np.linalg.norm(a) * np.sqrt(window_energy))
    lag = int(np.argmax(scores))
    return float(scores[lag]), lag


def speech(path: Path, rate: int, text: str = "Hello, this is the voice gateway.") -> bytes:
    """Synthesized speech as mono s16le at `rate`, made in the directory `path`."""
    return signals.speech(path / "speech", rate, text)
