"""Speech codecs: PCM in, RTP payload out, and back.

One class per codec behind the `Codec` base, one instance per call and direction (Opus and
G.722 keep state). G.711 is numpy table look-ups over whole frames; Opus and G.722 go through
PyAV (FFmpeg). Per-frame costs are printed by scripts/bench_codecs.py.
"""

from __future__ import annotations

import abc
from typing import ClassVar, Literal

import av
import numpy as np

from voicegw.audio.format import BYTES_PER_SAMPLE, FRAME_MS

CONCEAL_FADE_MS = 60
"""Concealment fades the repeated audio to silence over this long: repeating old audio longer
than a few frames sounds robotic, silence is the honest answer to a long gap."""


class UnsupportedCodec(ValueError):
    """The codec named is not one voicegw can encode and decode."""


def _pcm(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, dtype="<i2")


class Codec(abc.ABC):
    """An encoder and decoder pair for one direction of one call."""

    name: ClassVar[str]
    """SDP encoding name."""

    clock_rate: ClassVar[int]
    """RTP timestamp rate."""

    sample_rate: ClassVar[int]
    """Rate of the mono s16le PCM that `encode` takes and `decode` gives."""

    channels: ClassVar[int] = 1
    """Channels as written in SDP (Opus is always ``opus/48000/2``); the PCM is mono."""

    payload_type: ClassVar[int | None] = None
    """Static RTP payload type, or None for a dynamic one."""

    fmtp: ClassVar[str] = ""
    """Default ``a=fmtp`` parameters we offer and answer with."""

    stateless: ClassVar[bool] = False
    """Encoding a frame depends on that frame alone (G.711): equal PCM gives equal payloads."""

    encode_frames: ClassVar[tuple[int, ...] | None] = None
    """Frame counts (of `FRAME_MS`) one `encode` call may take; None: any whole number of samples."""

    def __init__(self) -> None:
        self._last = b""
        """The last decoded PCM (bytes: made into an array only when a loss needs it)."""
        self._concealed = 0
        """Samples concealed since the last real decode: where the fade-out stands."""

    @abc.abstractmethod
    def _encode(self, pcm: bytes) -> bytes: ...

    @abc.abstractmethod
    def _decode(self, payload: bytes) -> bytes: ...

    def encode(self, pcm: bytes) -> bytes:
        """Encode one frame (`FRAME_MS`) of mono s16le PCM at `sample_rate` into one payload."""
        if len(pcm) % BYTES_PER_SAMPLE:
            raise ValueError(f"{self.name}: PCM of {len(pcm)} bytes is not whole 16-bit samples")
        if self.encode_frames is not None:
            frame = self.sample_rate * FRAME_MS // 1000
            samples = len(pcm) // BYTES_PER_SAMPLE
            if samples % frame or samples // frame not in self.encode_frames:
                allowed = " or ".join(str(n * frame) for n in self.encode_frames)
                raise ValueError(
                    f"{self.name}: encode takes {allowed} samples ({FRAME_MS} ms frames), got {samples}"
                )
        return self._encode(pcm)

    def decode(self, payload: bytes) -> bytes:
        """Decode one RTP payload (of any ptime) to mono s16le PCM at `sample_rate`."""
        pcm = self._decode(payload)
        if pcm:
            self._last = pcm
        self._concealed = 0
        return pcm

    def conceal(self, samples: int) -> bytes:
        """Audio for `samples` lost samples (at `sample_rate`).

        The last decoded audio repeats with a linear fade that reaches silence after
        `CONCEAL_FADE_MS`; consecutive calls continue both the repetition and the fade.
        """
        if samples < 0:
            raise ValueError(f"{self.name}: cannot conceal {samples} samples")
        start, self._concealed = self._concealed, self._concealed + samples
        fade = self.sample_rate * CONCEAL_FADE_MS // 1000
        if not self._last or start >= fade:
            return bytes(samples * BYTES_PER_SAMPLE)
        position = np.arange(start, start + samples)
        gain = np.maximum(1.0 - position.astype(np.float32) / fade, 0.0)
        repeated = np.take(_pcm(self._last), position, mode="wrap")
        return (repeated * gain).astype("<i2").tobytes()


# --- G.711 -------------------------------------------------------------------------------
# Tables from the reference algorithm (ITU-T G.711, as in the classic Sun g711.c): a decode
# table of 256 levels and an encode table indexed by the 16-bit sample itself.

_SEG_ULAW_END = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])
_SEG_ALAW_END = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF])
_ALL_SAMPLES = np.arange(-32768, 32768, dtype=np.int32)


def _ulaw_encode_table() -> np.ndarray:
    pcm = _ALL_SAMPLES >> 2
    mask = np.where(pcm < 0, 0x7F, 0xFF)
    pcm = np.minimum(np.abs(pcm), 8159) + 0x21
    seg = np.searchsorted(_SEG_ULAW_END, pcm)
    uval = (seg << 4) | ((pcm >> (seg + 1)) & 0xF)
    uval = np.where(seg >= 8, 0x7F, uval)
    return (uval ^ mask).astype(np.uint8)


def _ulaw_decode_table() -> np.ndarray:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    t = (((u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4)
    return np.where(u & 0x80, 0x84 - t, t - 0x84).astype(np.int16)


def _alaw_encode_table() -> np.ndarray:
    pcm = _ALL_SAMPLES >> 3
    negative = pcm < 0
    mask = np.where(negative, 0x55, 0xD5)
    pcm = np.where(negative, -pcm - 1, pcm)
    seg = np.searchsorted(_SEG_ALAW_END, pcm)
    aval = (seg << 4) | np.where(seg < 2, (pcm >> 1) & 0xF, (pcm >> np.maximum(seg, 1)) & 0xF)
    aval = np.where(seg >= 8, 0x7F, aval)
    return (aval ^ mask).astype(np.uint8)


def _alaw_decode_table() -> np.ndarray:
    a = np.arange(256, dtype=np.int32) ^ 0x55
    seg = (a & 0x70) >> 4
    t = (a & 0x0F) << 4
    t = np.where(seg == 0, t + 8, (t + 0x108) << np.maximum(seg - 1, 0))
    return np.where(a & 0x80, t, -t).astype(np.int16)


def _by_bit_pattern(table: np.ndarray) -> np.ndarray:
    """An encode table (indexed from -32768) re-indexed by the sample's 16 bits read unsigned:
    a frame's bytes then index it as they are, with no conversion per frame."""
    return np.roll(table, -32768)


class _G711(Codec):
    stateless = True
    clock_rate = 8000
    sample_rate = 8000
    _encode_table: ClassVar[np.ndarray]
    _decode_table: ClassVar[np.ndarray]

    def _encode(self, pcm: bytes) -> bytes:
        return self._encode_table.take(np.frombuffer(pcm, dtype="<u2")).tobytes()

    def _decode(self, payload: bytes) -> bytes:
        return self._decode_table.take(np.frombuffer(payload, dtype=np.uint8)).tobytes()


class PCMU(_G711):
    """G.711 μ-law, static payload type 0."""

    name = "PCMU"
    payload_type = 0
    _encode_table = _by_bit_pattern(_ulaw_encode_table())
    _decode_table = _ulaw_decode_table().astype("<i2")


class PCMA(_G711):
    """G.711 A-law, static payload type 8."""

    name = "PCMA"
    payload_type = 8
    _encode_table = _by_bit_pattern(_alaw_encode_table())
    _decode_table = _alaw_decode_table().astype("<i2")


# --- PyAV codecs ----------------------------------------------------------------------------


def _audio_context(name: str, mode: Literal["r", "w"]) -> av.AudioCodecContext:
    context = av.CodecContext.create(name, mode)
    assert isinstance(context, av.AudioCodecContext)
    return context


def frame_to_mono_pcm(frame: av.AudioFrame) -> bytes:
    """A decoded PyAV frame (any sample format, planar or packed, any channels) as mono s16le PCM.

    Channels are averaged; float samples are scaled from [-1, 1]. The rate is left as it is.
    """
    array = frame.to_ndarray()
    if array.dtype != np.int16:
        array = np.clip(array * 32768.0, -32768, 32767).astype(np.int16)
    if frame.format.is_planar:
        mono = array.mean(axis=0) if array.shape[0] > 1 else array[0]
    else:
        mono = array.reshape(-1, len(frame.layout.channels)).mean(axis=1)
    return np.asarray(mono, dtype="<i2").tobytes()


class _AvCodec(Codec):
    """A codec run by FFmpeg through PyAV: one encoder and one decoder context per instance."""

    _av_encoder: ClassVar[str]
    _av_decoder: ClassVar[str]
    _bit_rate: ClassVar[int | None] = None
    _options: ClassVar[dict[str, str]] = {}
    """FFmpeg encoder options."""

    def __init__(self) -> None:
        super().__init__()
        self._enc: av.AudioCodecContext | None = None
        self._dec: av.AudioCodecContext | None = None
        self._pts = 0

    def _encoder(self) -> av.AudioCodecContext:
        if self._enc is None:
            enc = _audio_context(self._av_encoder, "w")
            enc.sample_rate = self.sample_rate
            enc.layout = "mono"
            enc.format = "s16"
            if self._bit_rate:
                enc.bit_rate = self._bit_rate
            enc.options = dict(self._options)
            enc.open()
            self._enc = enc
        return self._enc

    def _decoder(self) -> av.AudioCodecContext:
        if self._dec is None:
            dec = _audio_context(self._av_decoder, "r")
            dec.sample_rate = self.sample_rate
            dec.layout = "mono"
            dec.open()
            self._dec = dec
        return self._dec

    def _encode(self, pcm: bytes) -> bytes:
        samples = _pcm(pcm)
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = self.sample_rate
        frame.pts = self._pts
        self._pts += len(samples)
        return b"".join(bytes(packet) for packet in self._encoder().encode(frame))

    def _decode(self, payload: bytes) -> bytes:
        return b"".join(frame_to_mono_pcm(frame) for frame in self._decoder().decode(av.Packet(payload)))


class Opus(_AvCodec):
    """Opus (RFC 7587): 48 kHz RTP clock, stereo in SDP, mono PCM here, 20 ms frames.

    The decoder is opened mono, so libopus downmixes stereo payloads itself. Concealment is the
    base class's faded repeat: PyAV cannot ask libopus for its own PLC, since an empty packet
    means end of stream to FFmpeg and leaves the decoder unusable.
    """

    name = "opus"
    clock_rate = 48000
    sample_rate = 48000
    channels = 2
    fmtp = "minptime=10;useinbandfec=1"
    encode_frames = (1,)  # one Opus packet per call: Opus packets cannot be concatenated
    _av_encoder = "libopus"
    _av_decoder = "libopus"
    _bit_rate = 32000
    # libopus's complexity 5 of 10 halves the encoding cost (~70 instead of ~130 us per frame
    # here) for no audible loss on speech at 32 kbit/s: it matters at hundreds of calls.
    _options = {"compression_level": "5"}  # noqa: RUF012 (read-only class constant)


class G722(_AvCodec):
    """G.722 wideband: 16 kHz PCM, but an 8 kHz RTP clock (RFC 3551's historical error)."""

    name = "G722"
    clock_rate = 8000
    sample_rate = 16000
    payload_type = 9
    # FFmpeg's encoder works on 20 ms frames: PyAV would buffer a shorter tail, not encode it.
    encode_frames = (1, 2, 3)
    _av_encoder = "g722"
    _av_decoder = "g722"


SUPPORTED_CODECS: tuple[type[Codec], ...] = (PCMU, PCMA, Opus, G722)
"""Every codec voicegw speaks, in our order of preference for telephony."""

_BY_NAME = {codec.name.lower(): codec for codec in SUPPORTED_CODECS}


def codec_for(name: str) -> type[Codec]:
    """The codec class for an SDP encoding name (case-insensitive)."""
    try:
        return _BY_NAME[name.lower()]
    except KeyError:
        known = ", ".join(codec.name for codec in SUPPORTED_CODECS)
        raise UnsupportedCodec(f"codec {name!r} is not supported (supported: {known})") from None
