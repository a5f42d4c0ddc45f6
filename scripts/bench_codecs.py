#!/usr/bin/env python3
"""Cost of the sans-I/O audio layer per 20 ms frame: codecs, resampling, VAD, jitter, playout.

Prints microseconds per frame (best of several rounds: the machine is shared, the minimum is the
code's own cost) and what one core spends on it for
500 calls (each call runs every step once per frame and direction it is used in).

    .venv/bin/python scripts/bench_codecs.py
    .venv/bin/python scripts/bench_codecs.py --frames 2000
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import av
import numpy as np
from figures import print_markdown

from voicegw.audio.codecs import SUPPORTED_CODECS, Codec
from voicegw.audio.jitter import JitterBuffer
from voicegw.audio.playout import PlayoutBuffer
from voicegw.audio.resample import Resampler
from voicegw.audio.vad import VoiceActivityDetector

FRAME_MS = 20
ROUNDS = 5
CALLS = 500
RESULTS: list[tuple[str, float, float]] = []
"""Every row printed: label, microseconds per frame, % of a core for `CALLS` calls."""
RESAMPLE_PAIRS = ((8000, 16000), (16000, 8000), (8000, 24000), (24000, 8000), (16000, 24000), (48000, 24000))


def voice_like(rate: int, seconds: float = 2.0) -> bytes:
    """Harmonics of a gliding 120-220 Hz pitch with some breath noise: codecs work for real."""
    t = np.arange(int(rate * seconds)) / rate
    pitch = 170 + 50 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    signal = sum(np.sin(k * phase) / k for k in range(1, 12) if k * 220 < rate / 2)
    signal = signal * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t) ** 2)
    signal += np.random.default_rng(0).normal(0, 0.02, len(t))
    return (signal / np.abs(signal).max() * 12000).astype("<i2").tobytes()


def frames_of(pcm: bytes, rate: int) -> list[bytes]:
    size = rate * FRAME_MS // 1000 * 2
    return [pcm[i : i + size] for i in range(0, len(pcm) - size + 1, size)]


def per_frame_us(step: Callable[[bytes], object], frames: list[bytes], count: int) -> float:
    """Best over rounds of the mean time of `step` per frame, frames cycled to `count`."""
    work = [frames[i % len(frames)] for i in range(count)]
    for frame in work[:50]:  # warm up caches and lazily opened codecs
        step(frame)
    rounds = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        for frame in work:
            step(frame)
        rounds.append((time.perf_counter() - start) / count * 1e6)
    return min(rounds)


def row(label: str, us: float) -> None:
    core_share = us * CALLS * (1000 / FRAME_MS) / 1e6 * 100
    RESULTS.append((label, us, core_share))
    print(f"  {label:<34} {us:8.1f} us/frame   {core_share:6.1f} % of a core for {CALLS} calls")


def decode_then_conceal(decoder: Codec) -> Callable[[bytes], bytes]:
    """A packet then a loss: the concealment always fades real audio (its costly case)."""
    samples = decoder.sample_rate * FRAME_MS // 1000

    def step(payload: bytes) -> bytes:
        decoder.decode(payload)
        return decoder.conceal(samples)

    return step


def bench_codecs(count: int) -> None:
    print("codecs (one 20 ms frame)")
    for codec in SUPPORTED_CODECS:
        frames = frames_of(voice_like(codec.sample_rate), codec.sample_rate)
        encoder = codec()
        payloads = [encoder.encode(f) for f in frames]
        row(f"{codec.name} encode", per_frame_us(codec().encode, frames, count))
        decoder = codec()
        row(f"{codec.name} decode", per_frame_us(decoder.decode, payloads, count))
        row(f"{codec.name} decode + conceal", per_frame_us(decode_then_conceal(codec()), payloads, count))


def pyav_resampler(src: int, dst: int) -> Callable[[bytes], bytes]:
    resampler = av.AudioResampler(format="s16", layout="mono", rate=dst)
    pts = 0

    def process(pcm: bytes) -> bytes:
        nonlocal pts
        samples = np.frombuffer(pcm, dtype="<i2")
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate, frame.pts = src, pts
        pts += len(samples)
        return b"".join(bytes(f.planes[0])[: f.samples * 2] for f in resampler.resample(frame))

    return process


def bench_resampling(count: int) -> None:
    print("resampling (one 20 ms frame): voicegw's numpy polyphase vs PyAV's swresample")
    for src, dst in RESAMPLE_PAIRS:
        frames = frames_of(voice_like(src), src)
        row(f"{src} -> {dst} numpy polyphase", per_frame_us(Resampler(src, dst).process, frames, count))
        row(f"{src} -> {dst} PyAV swresample", per_frame_us(pyav_resampler(src, dst), frames, count))


def bench_vad(count: int) -> None:
    print("voice activity detection (one 20 ms frame, speech-like)")
    for rate in (8000, 16000, 24000):
        frames = frames_of(voice_like(rate), rate)
        row(f"VAD at {rate} Hz", per_frame_us(VoiceActivityDetector(rate).feed, frames, count))


def bench_buffers(count: int) -> None:
    print("buffers (one packet in and one tick out)")
    jitter = JitterBuffer(8000)
    state = {"seq": 0}

    def jitter_step(payload: bytes) -> None:
        seq = state["seq"]
        jitter.push(seq & 0xFFFF, (seq * 160) & 0xFFFFFFFF, payload, 1, seq * 0.02)
        jitter.pop()
        state["seq"] = seq + 1

    payloads = [bytes(160)] * 10
    row("JitterBuffer push + pop", per_frame_us(jitter_step, payloads, count))
    playout = PlayoutBuffer(16000)

    def playout_step(pcm: bytes) -> None:
        playout.enqueue(pcm, "item")
        playout.next_frame()

    row(
        "PlayoutBuffer enqueue + next_frame",
        per_frame_us(playout_step, frames_of(voice_like(16000), 16000), count),
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=1000, help="frames per timing round")
    parser.add_argument("--markdown", action="store_true", help="also print the figures as a Markdown table")
    args = parser.parse_args()
    print(f"PyAV {av.__version__}, numpy {np.__version__}; best of {ROUNDS} rounds of {args.frames} frames")
    bench_codecs(args.frames)
    bench_resampling(args.frames)
    bench_vad(args.frames)
    bench_buffers(args.frames)
    if args.markdown:
        print_markdown(
            "The audio layer, per 20 ms frame",
            ["step", "µs per frame", f"share of one core for {CALLS} calls"],
            [(label, f"{us:.1f}", f"{share:.1f} %") for label, us, share in RESULTS],
            [f"Best of {ROUNDS} rounds of {args.frames} frames (PyAV {av.__version__})."],
        )


if __name__ == "__main__":
    main()
