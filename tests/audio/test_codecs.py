from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Literal

import av
import numpy as np
import pytest

from tests.audio.conftest import SpeechFactory
from tests.signals import best_correlation, samples, sine
from voicegw.audio.codecs import (
    CONCEAL_FADE_MS,
    G722,
    PCMA,
    PCMU,
    SUPPORTED_CODECS,
    Codec,
    Opus,
    UnsupportedCodec,
    codec_for,
)

ALL_SAMPLES = np.arange(-32768, 32768, dtype="<i2").tobytes()
ALL_CODES = bytes(range(256))


# --- The ITU-T G.711 reference algorithm, sample by sample (as in the classic Sun g711.c) -----


def _segment(value: int, ends: tuple[int, ...]) -> int:
    return next((i for i, end in enumerate(ends) if value <= end), len(ends))


def itu_ulaw(sample: int) -> int:
    value, mask = sample >> 2, 0xFF
    if value < 0:
        value, mask = -value, 0x7F
    value = min(value, 8159) + (0x84 >> 2)
    seg = _segment(value, (0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF))
    code = 0x7F if seg >= 8 else (seg << 4) | ((value >> (seg + 1)) & 0xF)
    return code ^ mask


def itu_alaw(sample: int) -> int:
    value, mask = sample >> 3, 0xD5
    if value < 0:
        value, mask = -value - 1, 0x55
    seg = _segment(value, (0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF))
    if seg >= 8:
        return 0x7F ^ mask
    code = (seg << 4) | ((value >> (1 if seg < 2 else seg)) & 0xF)
    return code ^ mask


def itu_ulaw_to_linear(code: int) -> int:
    code = ~code & 0xFF
    t = (((code & 0xF) << 3) + 0x84) << ((code & 0x70) >> 4)
    return 0x84 - t if code & 0x80 else t - 0x84


def itu_alaw_to_linear(code: int) -> int:
    code ^= 0x55
    t = (code & 0xF) << 4
    seg = (code & 0x70) >> 4
    t = t + 8 if seg == 0 else (t + 0x108) << max(seg - 1, 0)
    return t if code & 0x80 else -t


Scalar = Callable[[int], int]
ITU: dict[type[Codec], tuple[Scalar, Scalar]] = {
    PCMU: (itu_ulaw, itu_ulaw_to_linear),
    PCMA: (itu_alaw, itu_alaw_to_linear),
}
FFMPEG: dict[type[Codec], str] = {PCMU: "pcm_mulaw", PCMA: "pcm_alaw"}


def av_context(name: str, mode: Literal["r", "w"], rate: int, layout: str = "mono") -> av.AudioCodecContext:
    ctx = av.CodecContext.create(name, mode)
    assert isinstance(ctx, av.AudioCodecContext)
    ctx.sample_rate, ctx.layout = rate, layout
    if mode == "w":
        ctx.format = "s16"
    return ctx


def ffmpeg_encode(name: str, pcm: bytes, rate: int) -> bytes:
    ctx = av_context(name, "w", rate)
    frame = av.AudioFrame.from_ndarray(np.frombuffer(pcm, "<i2").reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = rate
    return b"".join(bytes(p) for p in [*ctx.encode(frame), *ctx.encode(None)])


def ffmpeg_decode(name: str, payload: bytes, rate: int) -> bytes:
    ctx = av_context(name, "r", rate)
    return b"".join(bytes(f.planes[0])[: f.samples * 2] for f in ctx.decode(av.Packet(payload)))


def frames(pcm: bytes, rate: int, ms: int = 20) -> list[bytes]:
    size = rate * ms // 1000 * 2
    return [pcm[i : i + size] for i in range(0, len(pcm) - size + 1, size)]


# --- G.711 ------------------------------------------------------------------------------------


@pytest.mark.parametrize("codec", [PCMU, PCMA])
def test_g711_tables_match_the_itu_reference_for_every_sample_and_code(codec: type[Codec]) -> None:
    encode, decode = ITU[codec]
    expected_codes = bytes(encode(int(s)) for s in np.frombuffer(ALL_SAMPLES, "<i2"))
    assert codec().encode(ALL_SAMPLES) == expected_codes
    expected_pcm = np.array([decode(c) for c in ALL_CODES], dtype="<i2").tobytes()
    assert codec().decode(ALL_CODES) == expected_pcm


@pytest.mark.parametrize("codec", [PCMU, PCMA])
def test_g711_matches_pythons_audioop(codec: type[Codec]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        audioop = pytest.importorskip("audioop")  # CPython's C implementation, until 3.13
    encode = audioop.lin2ulaw if codec is PCMU else audioop.lin2alaw
    decode = audioop.ulaw2lin if codec is PCMU else audioop.alaw2lin
    assert codec().encode(ALL_SAMPLES) == encode(ALL_SAMPLES, 2)
    assert codec().decode(ALL_CODES) == decode(ALL_CODES, 2)


@pytest.mark.parametrize("codec", [PCMU, PCMA])
def test_g711_decoding_equals_ffmpeg(codec: type[Codec]) -> None:
    assert codec().decode(ALL_CODES) == ffmpeg_decode(FFMPEG[codec], ALL_CODES, 8000)


@pytest.mark.parametrize("codec", [PCMU, PCMA])
def test_g711_encoding_is_within_one_level_of_ffmpeg(codec: type[Codec]) -> None:
    # FFmpeg rounds to the nearest level where the ITU reference truncates: codes may differ by one
    # step, never more, and both decode close to the original.
    ours = codec().decode(codec().encode(ALL_SAMPLES))
    theirs = codec().decode(ffmpeg_encode(FFMPEG[codec], ALL_SAMPLES, 8000))
    original = samples(ALL_SAMPLES)
    level = np.abs(original) / 16 + 16  # G.711 steps grow with the magnitude (1/16 per segment)
    assert np.all(np.abs(samples(ours) - original) <= 2 * level)
    assert np.all(np.abs(samples(ours) - samples(theirs)) <= 2 * level)


@pytest.mark.parametrize("codec", [PCMU, PCMA])
def test_g711_round_trip_of_speech(codec: type[Codec], speech_pcm: SpeechFactory) -> None:
    pcm = speech_pcm(8000)
    c = codec()
    out = b"".join(c.decode(c.encode(frame)) for frame in frames(pcm, 8000))
    corr, lag = best_correlation(pcm[: len(out)], out, max_lag=10)
    assert corr > 0.99 and lag == 0


# --- Opus -------------------------------------------------------------------------------------


def test_opus_round_trip_of_speech_after_aligning_the_codec_delay(speech_pcm: SpeechFactory) -> None:
    pcm = speech_pcm(48000)
    enc, dec = Opus(), Opus()
    payloads = [enc.encode(frame) for frame in frames(pcm, 48000)]
    out = b"".join(dec.decode(p) for p in payloads)
    assert all(0 < len(p) < 200 for p in payloads)  # ~32 kbit/s, one packet per 20 ms frame
    assert len(out) == len(payloads) * 960 * 2
    corr, lag = best_correlation(pcm[: len(out)], out, max_lag=2000)
    assert corr >= 0.8
    assert 0 <= lag < 960  # the encoder's look-ahead, under one frame


def test_opus_decodes_stereo_payloads_to_mono() -> None:
    ctx = av_context("libopus", "w", 48000, "stereo")
    left = np.frombuffer(sine(440, 0.2, 48000), "<i2")
    stereo = np.stack([left, left // 2], axis=1).reshape(1, -1)  # interleaved s16
    out = b""
    dec = Opus()
    for i in range(0, stereo.shape[1], 960 * 2):
        frame = av.AudioFrame.from_ndarray(stereo[:, i : i + 960 * 2].copy(), format="s16", layout="stereo")
        frame.sample_rate = 48000
        for packet in ctx.encode(frame):
            out += dec.decode(bytes(packet))
    assert len(out) == 10 * 960 * 2
    # Mono is the mean of both channels: 0.75 of the left one's level.
    level = np.abs(samples(out)[960 * 4 :]).max() / np.abs(left).max()
    assert 0.6 < level < 0.9


def test_opus_encode_takes_exactly_one_frame() -> None:
    with pytest.raises(ValueError, match=r"opus: encode takes 960 samples \(20 ms frames\), got 480"):
        Opus().encode(bytes(480 * 2))


def test_opus_garbage_payload_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        Opus().decode(b"\xff\xff\xff\x01\x02")


def test_opus_concealment_then_decoding_goes_on() -> None:
    tone = sine(440, 0.2, 48000)
    enc, dec = Opus(), Opus()
    payloads = [enc.encode(frame) for frame in frames(tone, 48000)]
    for p in payloads[:5]:
        dec.decode(p)
    concealed = dec.conceal(960)
    assert len(concealed) == 960 * 2 and np.abs(samples(concealed)).max() > 1000
    assert len(dec.decode(payloads[6])) == 960 * 2


# --- G.722 ------------------------------------------------------------------------------------


def test_g722_round_trip_at_16khz_on_an_8khz_clock(speech_pcm: SpeechFactory) -> None:
    assert (G722.sample_rate, G722.clock_rate, G722.payload_type) == (16000, 8000, 9)
    pcm = speech_pcm(16000)
    enc, dec = G722(), G722()
    payloads = [enc.encode(frame) for frame in frames(pcm, 16000)]
    assert {len(p) for p in payloads} == {160}  # 64 kbit/s
    out = b"".join(dec.decode(p) for p in payloads)
    corr, _ = best_correlation(pcm[: len(out)], out, max_lag=100)
    assert corr > 0.95


def test_g722_encodes_40ms_in_one_call_but_not_10ms() -> None:
    assert len(G722().encode(sine(440, 0.04, 16000))) == 320
    with pytest.raises(ValueError, match=r"G722: encode takes 320 or 640 or 960 samples"):
        G722().encode(sine(440, 0.01, 16000))


# --- Concealment ------------------------------------------------------------------------------


def test_g711_concealment_repeats_then_fades_to_silence() -> None:
    codec = PCMU()
    codec.decode(codec.encode(sine(400, 0.02, 8000)))  # 8 whole periods in the frame
    fade_frames = CONCEAL_FADE_MS // 20
    out = [samples(codec.conceal(160)) for _ in range(fade_frames + 2)]
    peaks = [np.abs(x).max() for x in out]
    assert peaks[0] > peaks[1] > peaks[2] > 0
    assert peaks[fade_frames] == peaks[fade_frames + 1] == 0
    # The fade is a ramp inside each frame, not a step between frames (no clicks).
    assert np.abs(out[0][:20]).max() > np.abs(out[0][-20:]).max()


def test_concealment_before_any_audio_is_silence_and_decoding_resets_the_fade() -> None:
    codec = PCMA()
    assert codec.conceal(160) == bytes(320)
    tone = codec.encode(sine(400, 0.02, 8000))
    codec.decode(tone)
    for _ in range(5):
        codec.conceal(160)
    codec.decode(tone)
    assert np.abs(samples(codec.conceal(160))).max() > 1000


def test_conceal_rejects_a_negative_length() -> None:
    with pytest.raises(ValueError, match="PCMU: cannot conceal -1 samples"):
        PCMU().conceal(-1)


# --- Factory ----------------------------------------------------------------------------------


def test_codec_for_is_case_insensitive_and_names_the_unknown() -> None:
    assert codec_for("pcmu") is PCMU
    assert codec_for("OPUS") is Opus
    assert codec_for("g722") is G722
    with pytest.raises(
        UnsupportedCodec, match=r"codec 'GSM' is not supported \(supported: PCMU, PCMA, opus, G722\)"
    ):
        codec_for("GSM")
    assert (PCMU, PCMA, Opus, G722) == SUPPORTED_CODECS


def test_sdp_attributes() -> None:
    rows = {(c.name, c.clock_rate, c.sample_rate, c.channels, c.payload_type) for c in SUPPORTED_CODECS}
    assert rows == {
        ("PCMU", 8000, 8000, 1, 0),
        ("PCMA", 8000, 8000, 1, 8),
        ("opus", 48000, 48000, 2, None),
        ("G722", 8000, 16000, 1, 9),
    }
    assert "useinbandfec=1" in Opus.fmtp


def test_odd_pcm_length_is_our_misuse() -> None:
    with pytest.raises(ValueError, match="PCMU: PCM of 3 bytes is not whole 16-bit samples"):
        PCMU().encode(b"\x00\x01\x02")
