"""`WavFilesTransport`: WAV in as 20 ms frames, a paced playout clock, WAV out."""

from __future__ import annotations

import asyncio
import time
import wave
from pathlib import Path

import numpy as np
import pytest

from voicegw.contracts.transport import AudioTransport, CallStateChanged, EndReason, TransportClosed
from voicegw.transports.wav_files import WavFilesTransport, read_wav, write_wav

pytestmark = pytest.mark.timeout(20)


def tone(hz: float, ms: int, rate: int, channels: int = 1) -> bytes:
    t = np.arange(rate * ms // 1000) / rate
    mono = (8000 * np.sin(2 * np.pi * hz * t)).astype("<i2")
    return np.repeat(mono, channels).tobytes()


def make_wav(path: Path, ms: int, rate: int, channels: int = 1) -> Path:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(tone(500, ms, rate, channels))
    return path


async def test_frames_play_flush_and_recording(tmp_path: Path) -> None:
    source = make_wav(tmp_path / "q.wav", 200, 48000, channels=2)
    transport = WavFilesTransport(
        source,
        tmp_path / "a.wav",
        sample_rate=16000,
        realtime=False,
        trailing_silence_ms=100,
        answer_timeout_ms=200,
        answer_idle_ms=100,
    )
    assert isinstance(transport, AudioTransport)
    assert transport.sample_rate == 16000
    frames = []
    async for frame in transport.frames():
        frames.append(frame)
        if len(frames) == 2:  # the agent answers while the caller talks
            await transport.play(tone(440, 100, 16000), item_id="item_1")
        if len(frames) == 5:  # three ticks later: 60 ms of it reached the caller
            assert transport.played_ms("item_1") == 60
            assert transport.flush() == 60
    # 200 ms of input + 100 ms of trailing silence, then it waited 100 ms of idle after the answer.
    assert [f.timestamp_ms for f in frames[:3]] == [0, 20, 40]
    assert all(len(f.pcm) == 640 and f.sample_rate == 16000 for f in frames)
    assert len(frames) == 15
    events = [e async for e in transport.events()]
    assert events == [
        CallStateChanged("answered"),
        CallStateChanged("ended", "the caller's input file ended", EndReason.CALLER_HUNG_UP),
    ]
    with pytest.raises(TransportClosed):
        await transport.play(b"\x00\x00", item_id="late")
    await transport.close()
    await transport.close()
    pcm, rate = read_wav(tmp_path / "a.wav")
    assert rate == 16000
    recorded = np.frombuffer(pcm, "<i2")
    # The agent's side from its first word: 60 ms of tone, then silence until the call ended.
    assert len(recorded) == 16000 * 260 // 1000  # ticks 3 to 15
    assert np.abs(recorded[: 16 * 60]).max() > 4000 and not recorded[16 * 60 :].any()


async def test_realtime_pacing_and_answer_timeout(tmp_path: Path) -> None:
    source = make_wav(tmp_path / "q.wav", 200, 8000)
    transport = WavFilesTransport(source, tmp_path / "a.wav", trailing_silence_ms=0, answer_timeout_ms=100)
    started = time.monotonic()
    count = len([f async for f in transport.frames()])
    elapsed = time.monotonic() - started
    assert count == 15  # 10 frames of input, then 100 ms waiting for an answer that never came
    assert 0.28 <= elapsed < 1.5  # real time (generous: the machine is shared)
    await transport.close()
    assert read_wav(tmp_path / "a.wav") == (b"", 8000)


async def test_close_ends_the_call_events(tmp_path: Path) -> None:
    transport = WavFilesTransport(make_wav(tmp_path / "q.wav", 100, 24000), tmp_path / "a.wav")
    events = asyncio.create_task(_collect(transport))
    await transport.close()
    ended = CallStateChanged("ended", "closed", EndReason.CLOSED)
    assert await events == [CallStateChanged("answered"), ended]
    with pytest.raises(RuntimeError):
        transport.frames()
        transport.frames()


async def _collect(transport: WavFilesTransport) -> list[object]:
    return [e async for e in transport.events()]


def test_only_16_bit_wav(tmp_path: Path) -> None:
    path = tmp_path / "u8.wav"
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(1)
        wav.setframerate(8000)
        wav.writeframes(bytes(80))
    with pytest.raises(ValueError, match="8-bit WAV"):
        WavFilesTransport(path, tmp_path / "out.wav")


def test_wav_round_trip(tmp_path: Path) -> None:
    pcm = tone(300, 100, 16000)
    write_wav(tmp_path / "x.wav", pcm, 16000)
    assert read_wav(tmp_path / "x.wav") == (pcm, 16000)
    assert len(read_wav(tmp_path / "x.wav", 8000)[0]) == pytest.approx(
        len(pcm) // 2, abs=64
    )  # the resampler keeps a tail
