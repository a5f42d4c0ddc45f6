from __future__ import annotations

import warnings

import av
import numpy as np
import pytest

from tests.signals import best_correlation, sine, speech
from voicegw.audio.codecs import G722, PCMA, PCMU, SUPPORTED_CODECS, Opus, UnsupportedCodec, codec_for

ALL_SAMPLES = np.arange(-32768, 32768, dtype="<i2").tobytes()


def ffmpeg_encode(name: str, pcm: bytes, rate: int) -> bytes:
    ctx = av.CodecContext.create(name, "w")
    assert isinstance(ctx, av.AudioCodecContext)
    ctx.sample_rate, ctx.layout, ctx.format = rate, "mono", "s16"
    frame = av.AudioFrame.from_ndarray(np.frombuffer(pcm, "<i2").reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = rate
    return b"".join(bytes(p) for p in [*ctx.encode(frame), *ctx.encode(None)])


@pytest.mark.parametrize(("codec", "ffmpeg"), [(PCMU, "pcm_mulaw"), (PCMA, "pcm_alaw")])
def test_g711_decode_table_matches_ffmpeg(codec: type[PCMU], ffmpeg: str) -> None:
    codes = bytes(range(256))
    ctx = av.CodecContext.create(ffmpeg, "r")
    assert isinstance(ctx, av.AudioCodecContext)
    ctx.sample_rate, ctx.layout = 8000, "mono"
    reference = b"".join(bytes(f.planes[0])[: f.samples * 2] for f in ctx.decode(av.Packet(codes)))
    assert codec().decode(codes) == reference


@pytest.mark.parametrize(("codec", "ffmpeg"), [(PCMU, "pcm_mulaw"), (PCMA, "pcm_alaw")])
def test_g711_encoding_is_within_one_step_of_ffmpeg(codec: type[PCMU], ffmpeg: str) -> None:
    ours = np.frombuffer(codec().encode(ALL_SAMPLES), np.uint8)
    theirs = np.frombuffer(ffmpeg_encode(ffmpeg, ALL_SAMPLES, 8000), np.uint8)
    decoded_ours = np.frombuffer(codec().decode(ours.tobytes()), "<i2").astype(int)
    decoded_theirs = np.frombuffer(codec().decode(theirs.tobytes()), "<i2").astype(int)
    original = np.frombuffer(ALL_SAMPLES, "<i2").astype(int)
    # FFmpeg rounds to the nearest level, the ITU reference truncates: never more than one step apart.
    assert np.abs(decoded_ours - original).max() <= 1024
    assert np.mean(ours != theirs) < 0.5
    assert np.abs(decoded_ours - decoded_theirs).max() <= 1024


@pytest.mark.parametrize("codec", [PCMU, PCMA])
def test_g711_matches_the_itu_reference(codec: type[PCMU]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        audioop = pytest.importorskip("audioop")  # the reference C implementation, until Python 3.13
    encode = audioop.lin2ulaw if codec is PCMU else audioop.lin2alaw
    assert codec().encode(ALL_SAMPLES) == encode(ALL_SAMPLES, 2)


@pytest.mark.parametrize("codec", [PCMU, PCMA])
def test_g711_round_trip_of_speech(codec: type[PCMU], tmp_path) -> None:
    pcm = speech(tmp_path / "s", 8000)
    c = codec()
    out = c.decode(c.encode(pcm))
    assert len(out) == len(pcm)
    corr, lag = best_correlation(pcm, out, max_lag=10)
    assert corr > 0.99 and lag == 0


def test_opus_round_trip_of_speech(tmp_path) -> None:
    pcm = speech(tmp_path / "s", 48000)
    enc, dec = Opus(), Opus()
    frame = 48000 * 20 // 1000 * 2
    out = b""
    sizes = []
    for i in range(0, len(pcm) - frame + 1, frame):
        payload = enc.encode(pcm[i : i + frame])
        sizes.append(len(payload))
        out += dec.decode(payload)
    assert all(0 < s < 200 for s in sizes)  # ~32 kbit/s, one packet per 20 ms frame
    corr, _ = best_correlation(pcm[: len(out)], out, max_lag=2000)
    assert corr >= 0.8


def test_opus_decodes_stereo_payloads_to_mono() -> None:
    ctx = av.CodecContext.create("libopus", "w")
    assert isinstance(ctx, av.AudioCodecContext)
    ctx.sample_rate, ctx.layout, ctx.format = 48000, "stereo", "s16"
    tone = np.frombuffer(sine(440, 0.02, 48000), "<i2")
    frame = av.AudioFrame.from_ndarray(
        np.stack([tone, tone]).T.reshape(1, -1).copy(), format="s16", layout="stereo"
    )
    frame.sample_rate = 48000
    payload = b"".join(bytes(p) for p in ctx.encode(frame))
    assert len(Opus().decode(payload)) == 960 * 2


def test_g722_round_trip() -> None:
    pcm = sine(440, 1.0, 16000)
    enc, dec = G722(), G722()
    out = b"".join(dec.decode(enc.encode(pcm[i : i + 640])) for i in range(0, len(pcm), 640))
    assert len(enc.encode(pcm[:640])) == 160  # 64 kbit/s
    corr, _ = best_correlation(pcm, out, max_lag=100)
    assert corr > 0.95


def test_conceal_fades_then_goes_silent() -> None:
    codec = PCMU()
    codec.decode(codec.encode(sine(440, 0.02, 8000)))
    levels = [np.abs(np.frombuffer(codec.conceal(160), "<i2")).max() for _ in range(5)]
    assert levels[0] > levels[1] > levels[2] > 0
    assert levels[3] == levels[4] == 0


def test_codec_for_is_case_insensitive_and_names_the_unknown() -> None:
    assert codec_for("pcmu") is PCMU
    assert codec_for("OPUS") is Opus
    with pytest.raises(
        UnsupportedCodec, match=r"codec 'GSM' is not supported \(supported: PCMU, PCMA, opus, G722\)"
    ):
        codec_for("GSM")
    assert SUPPORTED_CODECS[0] is PCMU


def test_odd_pcm_length_is_our_misuse() -> None:
    with pytest.raises(ValueError, match="not whole 16-bit samples"):
        PCMU().encode(b"\x00\x01\x02")
