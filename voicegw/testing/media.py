"""Test audio for the end-to-end tests: synthesis, G.711 and Opus, cross-correlation.

Everything here is independent of `voicegw.audio` on purpose: the echo is judged with a second
implementation (numpy G.711 tables, PyAV's libopus), so a bug shared by encoder and checker
cannot hide.
"""

from __future__ import annotations

import shutil
import subprocess
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt

from voicegw.audio.format import FRAME_MS

SENTENCE = "The quick brown fox jumps over the lazy dog. Testing the echo, one two three."
OPUS_RATE = 48000

Pcm = npt.NDArray[np.int16]

# G.711 constants (ITU-T G.711): mu-law bias, A-law segment offsets.
_ULAW_BIAS = 0x84


def _ulaw_decode_table() -> npt.NDArray[np.int16]:
    codes = ~np.arange(256, dtype=np.int32) & 0xFF
    exponent = (codes >> 4) & 0x07
    mantissa = codes & 0x0F
    magnitude = (((mantissa << 3) + _ULAW_BIAS) << exponent) - _ULAW_BIAS
    return np.where(codes & 0x80, -magnitude, magnitude).astype(np.int16)


def _alaw_decode_table() -> npt.NDArray[np.int16]:
    codes = np.arange(256, dtype=np.int32) ^ 0x55
    segment = (codes & 0x70) >> 4
    value = ((codes & 0x0F) << 4) + 8
    value = np.where(segment >= 1, (value + 0x100) << np.maximum(segment - 1, 0), value)
    return np.where(codes & 0x80, value, -value).astype(np.int16)


@dataclass(frozen=True)
class G711:
    """One G.711 law: decode by table, encode to the nearest reconstruction level."""

    name: str
    payload_type: int
    table: npt.NDArray[np.int16]

    def decode(self, payload: bytes) -> Pcm:
        return self.table[np.frombuffer(payload, dtype=np.uint8)]

    def encode(self, pcm: Pcm) -> bytes:
        order = np.argsort(self.table, kind="stable")
        levels = self.table[order].astype(np.int32)
        samples = np.asarray(pcm, dtype=np.int32)
        upper = np.clip(np.searchsorted(levels, samples), 1, len(levels) - 1)
        nearer_lower = (samples - levels[upper - 1]) <= (levels[upper] - samples)
        return order[np.where(nearer_lower, upper - 1, upper)].astype(np.uint8).tobytes()


PCMU = G711("PCMU", 0, _ulaw_decode_table())
PCMA = G711("PCMA", 8, _alaw_decode_table())
G711_CODECS = {"PCMU": PCMU, "PCMA": PCMA}


def require_tools(*tools: str) -> None:
    """Raise `RuntimeError` naming those of `tools` that are not installed."""
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        raise RuntimeError(f"not installed: {', '.join(missing)} (scripts/setup.sh installs them)")


def synthesize(path: Path, *, rate: int, text: str = SENTENCE) -> Path:
    """Speak `text` with espeak-ng and convert it with sox to mono s16 WAV at `rate`."""
    require_tools("espeak-ng", "sox")
    raw = path.with_suffix(".espeak.wav")
    subprocess.run(["espeak-ng", "-s", "150", "-w", str(raw), text], check=True, capture_output=True)
    # gain -n -3: normalize so G.711's and Opus's quantization noise stays far below the speech.
    subprocess.run(
        ["sox", str(raw), "-r", str(rate), "-c", "1", "-b", "16", str(path), "gain", "-n", "-3"],
        check=True,
        capture_output=True,
    )
    raw.unlink()
    return path


def read_wav(path: Path) -> tuple[Pcm, int]:
    """Mono s16 samples and the sample rate of a WAV file (the first channel if several)."""
    with wave.open(str(path), "rb") as wav:
        if wav.getsampwidth() != 2:
            raise ValueError(f"{path}: expected 16-bit samples, got {wav.getsampwidth() * 8}-bit")
        data = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16)
        return data[:: wav.getnchannels()].copy(), wav.getframerate()


def write_wav(path: Path, pcm: Pcm, rate: int) -> Path:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(np.asarray(pcm, dtype=np.int16).tobytes())
    return path


def frames(pcm: Pcm, rate: int, frame_ms: int = FRAME_MS) -> Iterator[Pcm]:
    """Cut `pcm` into whole frames, zero-padding the last one."""
    size = rate * frame_ms // 1000
    padded = np.concatenate([pcm, np.zeros((-len(pcm)) % size, dtype=np.int16)])
    for start in range(0, len(padded), size):
        yield padded[start : start + size]


def opus_encode(pcm: Pcm, frame_ms: int = FRAME_MS) -> list[bytes]:
    """Encode 48 kHz mono PCM into one libopus packet per frame."""
    encoder = av.CodecContext.create("libopus", "w")
    encoder.sample_rate = OPUS_RATE
    encoder.layout = "mono"
    encoder.format = "s16"
    encoder.bit_rate = 32000
    encoder.open()
    packets: list[bytes] = []
    for pts, frame_pcm in enumerate(frames(pcm, OPUS_RATE, frame_ms)):
        frame = av.AudioFrame.from_ndarray(frame_pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = OPUS_RATE
        frame.pts = pts * len(frame_pcm)
        packets.extend(bytes(packet) for packet in encoder.encode(frame))
    packets.extend(bytes(packet) for packet in encoder.encode(None))
    return packets


class OpusDecoder:
    """Stateful Opus decoder to 48 kHz mono s16 (stereo streams are down-mixed to the left channel)."""

    def __init__(self) -> None:
        self._decoder = av.CodecContext.create("opus", "r")
        self._decoder.sample_rate = OPUS_RATE
        self._decoder.layout = "stereo"
        self._decoder.open()

    def decode(self, payload: bytes) -> Pcm:
        out: list[Pcm] = []
        for frame in self._decoder.decode(av.Packet(payload)):
            array = frame.to_ndarray()
            if array.dtype != np.int16:  # fltp: float planes in [-1, 1]
                array = np.clip(array * 32767, -32768, 32767).astype(np.int16)
            out.append(np.asarray(array[0] if array.ndim == 2 else array.reshape(-1), dtype=np.int16))
        return np.concatenate(out) if out else np.zeros(0, dtype=np.int16)


@dataclass(frozen=True)
class Correlation:
    """Normalized cross-correlation of a received signal against a reference at the best lag."""

    value: float
    lag_samples: int
    overlap_samples: int


def cross_correlate(reference: Pcm, received: Pcm, *, max_lag: int) -> Correlation:
    """Find where `reference` sits inside `received` (lag 0..max_lag) and how well it matches.

    The value is the cosine similarity of the reference and the aligned received segment over their
    overlap, so 1.0 is a perfect copy at any gain and silence scores 0.
    """
    ref = reference.astype(np.float64)
    got = received.astype(np.float64)
    if len(ref) == 0 or len(got) == 0:
        return Correlation(0.0, 0, 0)
    size = 1 << int(np.ceil(np.log2(len(ref) + len(got))))
    raw = np.fft.irfft(np.fft.rfft(got, size) * np.conj(np.fft.rfft(ref, size)), size)
    lags = raw[: min(max_lag, len(got) - 1) + 1]
    lag = int(np.argmax(lags))
    overlap = min(len(ref), len(got) - lag)
    a, b = ref[:overlap], got[lag : lag + overlap]
    denominator = float(np.linalg.norm(a) * np.linalg.norm(b))
    value = float(np.dot(a, b) / denominator) if denominator else 0.0
    return Correlation(value, lag, overlap)


@dataclass(frozen=True)
class WindowedCorrelation:
    """Per-window correlations of a reference against a received signal whose delay drifts."""

    mean: float
    """Energy-weighted mean over the windows that hold speech."""
    minimum: float
    windows: int
    lags: tuple[int, ...]


def windowed_correlation(
    reference: Pcm, received: Pcm, *, rate: int, max_lag: int, window_s: float = 0.5
) -> WindowedCorrelation:
    """Cross-correlate each speech window of `reference` on its own.

    Adaptive jitter buffers (ours, and pjsua2's in the test caller) legitimately shrink or grow the
    delay during a call, so one global lag under-rates a faithful echo; each window finds its lag.
    Windows quieter than a tenth of the loudest are skipped: silence carries no evidence.
    """
    size = int(rate * window_s)
    starts = range(0, len(reference) - size + 1, size)
    energy = np.array(
        [float(np.sqrt(np.mean(reference[s : s + size].astype(np.float64) ** 2))) for s in starts]
    )
    values: list[float] = []
    weights: list[float] = []
    lags: list[int] = []
    for start, rms in zip(starts, energy, strict=True):
        if rms < 0.1 * energy.max():
            continue
        result = cross_correlate(reference[start : start + size], received[start:], max_lag=max_lag)
        values.append(result.value)
        weights.append(rms)
        lags.append(result.lag_samples)
    if not values:
        return WindowedCorrelation(0.0, 0.0, 0, ())
    mean = float(np.average(values, weights=weights))
    return WindowedCorrelation(mean, float(min(values)), len(values), tuple(lags))


def resample_to(pcm: Pcm, from_rate: int, to_rate: int) -> Pcm:
    """Linear-interpolation resampling: good enough to compare speech envelopes across rates."""
    if from_rate == to_rate:
        return pcm
    duration = len(pcm) / from_rate
    target = np.arange(int(duration * to_rate)) / to_rate
    source = np.arange(len(pcm)) / from_rate
    return np.interp(target, source, pcm.astype(np.float64)).astype(np.int16)
