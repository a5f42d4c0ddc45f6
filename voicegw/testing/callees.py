"""Synthetic callees for answering-machine detection: what a dialled call hears after the answer.

People pick up with a word or two and wait; machines play a long greeting, usually ending in a
beep; some lines stay silent. Speech comes from espeak-ng in several voices, speeds and pitches,
noise from numpy with a fixed seed, so a set is the same on every run. Used by the detector's
unit tests, the end-to-end AMD tests and scripts/bench_amd.py.
"""

from __future__ import annotations

import hashlib
import itertools
import subprocess
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

import numpy as np

from voicegw.audio.resample import Resampler
from voicegw.testing.media import require_tools

RATE = 8000
TAIL_MS = 8000
"""Silence after a person's pickup (they wait) or a machine's beep (it records)."""

Verdict = Literal["human", "machine", "unknown"]
T = TypeVar("T")

PICKUPS = (
    "Hello?",
    "Hello, this is Anna.",
    "Yes?",
    "Hi, Anna speaking.",
    "Hello, who is this?",
    "Good morning.",
)
GREETINGS = (
    "Hi, you have reached the voicemail of John Smith. I can't take your call right now. "
    "Please leave a message after the tone.",
    "The person you are calling is not available. Please record your message after the beep.",
    "Hello, this is Anna. Sorry I missed your call. Leave your name and number and I'll call you back.",
    "Thank you for calling Acme Dental. Our office is closed. Please leave a message and we will "
    "return your call on the next business day.",
)
VOICES = (
    ("en-us", 170, 50),
    ("en-gb", 150, 40),
    ("en-us+f3", 185, 60),
    ("en+m3", 140, 35),
    ("en-gb-scotland", 160, 55),
    ("en-us+f2", 200, 70),
)
"""(voice, words per minute, pitch) for espeak-ng."""

BEEPS_HZ = (1000.0, 1000.0, 850.0, 1400.0, 500.0, 1900.0)


@dataclass(frozen=True)
class Callee:
    """One recording and what a perfect detector would say of it."""

    name: str
    pcm: bytes
    """Mono s16le at `RATE`, from the moment of the answer."""

    expected: Verdict
    speech_start_ms: int | None
    greeting_end_ms: int | None
    """Where the callee's speech ends (a machine's greeting: before its beep)."""

    beep_end_ms: int | None
    beep_hz: float | None = None
    noise_rms: float = 0.0


def espeak(text: str, voice: str, speed: int, pitch: int, workdir: Path) -> np.ndarray:
    """`text` spoken by espeak-ng, at `RATE`, trimmed of its leading and trailing silence."""
    require_tools("espeak-ng")
    key = hashlib.sha1(f"{text}|{voice}|{speed}|{pitch}".encode()).hexdigest()[:16]
    path = workdir / f"espeak-{key}.wav"
    if not path.exists():
        workdir.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(path), text],
            check=True,
            capture_output=True,
        )
    with wave.open(str(path), "rb") as wav:
        pcm = Resampler(wav.getframerate(), RATE).process(wav.readframes(wav.getnframes()))
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    loud = np.flatnonzero(np.abs(samples) > 300)
    return samples[loud[0] : loud[-1] + 1] if len(loud) else samples


def tone(hz: float, ms: int, amplitude: float = 0.35) -> np.ndarray:
    t = np.arange(RATE * ms // 1000) / RATE
    ramp = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.004)  # 4 ms edges, as real beeps have
    return np.sin(2 * np.pi * hz * t) * ramp * amplitude * 32767


def silence(ms: int) -> np.ndarray:
    return np.zeros(RATE * ms // 1000)


def to_pcm(samples: np.ndarray, noise_rms: float, seed: int) -> bytes:
    if noise_rms:
        # Room and line noise: white noise shaped by a one-pole low-pass (more rumble than hiss).
        white = np.random.default_rng(seed).normal(0, 1, len(samples))
        response = 1 / np.abs(1 - 0.7 * np.exp(-1j * np.linspace(0, np.pi, len(white) // 2 + 1)))
        shaped = np.fft.irfft(np.fft.rfft(white) * response, len(white))
        samples = samples + shaped * noise_rms / max(float(np.std(shaped)), 1e-9)
    return samples.clip(-32768, 32767).astype("<i2").tobytes()


def pickup(
    text: str,
    voice: tuple[str, int, int],
    workdir: Path,
    *,
    lead_ms: int,
    noise_rms: float = 0.0,
    seed: int = 0,
) -> Callee:
    """A person: `lead_ms` of silence, `text`, then a wait."""
    speech = espeak(text, *voice, workdir)
    samples = np.concatenate([silence(lead_ms), speech, silence(TAIL_MS)])
    end_ms = lead_ms + len(speech) * 1000 // RATE
    noisy = " in noise" if noise_rms else ""
    return Callee(
        f"human {text!r} {voice[0]} {voice[1]}wpm{noisy}",
        to_pcm(samples, noise_rms, seed),
        "human",
        lead_ms,
        end_ms,
        None,
        noise_rms=noise_rms,
    )


def greeting(
    text: str,
    voice: tuple[str, int, int],
    workdir: Path,
    *,
    lead_ms: int,
    beep_hz: float | None,
    gap_ms: int = 400,
    beep_ms: int = 400,
    noise_rms: float = 0.0,
    seed: int = 0,
) -> Callee:
    """A machine: `lead_ms` of silence, the greeting, `gap_ms`, a beep (or none), then recording."""
    speech = espeak(text, *voice, workdir)
    greeting_end = lead_ms + len(speech) * 1000 // RATE
    parts = [silence(lead_ms), speech, silence(gap_ms)]
    beep_end = None
    if beep_hz is not None:
        parts.append(tone(beep_hz, beep_ms))
        beep_end = greeting_end + gap_ms + beep_ms
    parts.append(silence(TAIL_MS))
    beep = f"beep {beep_hz:g} Hz" if beep_hz else "no beep"
    noisy = " in noise" if noise_rms else ""
    return Callee(
        f"machine {text[:24]!r}… {voice[0]} {voice[1]}wpm {beep}{noisy}",
        to_pcm(np.concatenate(parts), noise_rms, seed),
        "machine",
        lead_ms,
        greeting_end,
        beep_end,
        beep_hz,
        noise_rms,
    )


def rotated(values: tuple[T, ...], by: int) -> Iterator[T]:
    """`values` cycled from position `by`: a variant pairs texts with other voices and timings."""
    return itertools.islice(itertools.cycle(values), by % len(values), None)


def callee_set(workdir: Path, variant: int = 0) -> list[Callee]:
    """The benchmark's set: 24 pickups, 20 greetings, 4 silent lines (48 recordings).

    `variant` 0 is the set the thresholds were tuned on; other variants pair the same texts with
    other voices, leads, gaps, beeps and noise, as a check that the tuning holds.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    callees: list[Callee] = []
    voices = rotated(VOICES, variant)
    leads = rotated((300, 600, 900, 450, 1200, 700), variant)
    seed = 1000 * variant
    for i, (text, noise) in enumerate(itertools.product(PICKUPS, (0.0, 0.0, 300.0, 800.0))):
        callees.append(
            pickup(text, next(voices), workdir, lead_ms=next(leads), noise_rms=noise, seed=seed + i)
        )
    beeps = rotated((*BEEPS_HZ, None), variant)
    for i, (text, noise) in enumerate(itertools.product(GREETINGS, (0.0, 0.0, 0.0, 300.0, 800.0))):
        callees.append(
            greeting(
                text,
                next(voices),
                workdir,
                lead_ms=next(leads) // 2,
                beep_hz=next(beeps),
                gap_ms=300 + 100 * ((i + variant) % 5),
                beep_ms=200 + 100 * ((i + variant) % 4),
                noise_rms=noise,
                seed=seed + 100 + i,
            )
        )
    for i, noise in enumerate((0.0, 0.0, 300.0, 800.0)):
        name = f"silent line{' in noise' if noise else ''} {i}"
        pcm = to_pcm(silence(TAIL_MS), noise, seed + 200 + i)
        callees.append(Callee(name, pcm, "unknown", None, None, None, noise_rms=noise))
    return callees
