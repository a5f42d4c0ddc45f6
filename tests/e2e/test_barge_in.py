"""Barge-in over real RTP: the caller talks over the default agent's greeting (embedded model).

The caller is a raw SIP dialog plus a UDP socket sending a steady 20 ms PCMU stream, as a phone
does: silence, then an espeak-ng question while the greeting plays. Both directions are timed
at the caller's socket. The agent's voiced packets must stop soon after the first voiced packet
of the question left, and what the server says the caller heard (the truncated assistant item)
must match the greeting audio that actually arrived.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from tests.e2e.harness import EchoServer
from tests.e2e.media import PCMU, read_wav, synthesize
from tests.sip.raw_sip import HOST, Dialog
from voicegw.models.local.stt import SpeechToText
from voicegw.rtp.packet import RtpPacket, parse_rtp
from voicegw.sip import sdp

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]
RATE = 8000
FRAME = RATE // 50
VOICED_RMS = 400
GREETING_HEARD_S = 2.0
"""How much of the greeting plays before the caller talks over it."""

STOP_BOUND_MS = 150
"""The issue's bound from the caller's speech onset on the wire to the agent's last voiced packet."""


class Caller:
    """A phone's media: sends 20 ms PCMU packets (silence or the question), records what arrives."""

    def __init__(self, sock: socket.socket, remote: tuple[str, int]) -> None:
        self.sock, self.remote = sock, remote
        self.received: list[tuple[float, np.ndarray]] = []
        self.question: np.ndarray | None = None
        self.onset: float | None = None
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._send), threading.Thread(target=self._receive)]

    def __enter__(self) -> Caller:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(5)

    def _send(self) -> None:
        seq, start, position = 0, time.monotonic(), 0
        while not self._stop.is_set():
            frame = np.zeros(FRAME, dtype=np.int16)
            if self.question is not None and position < len(self.question):
                frame = self.question[position : position + FRAME]
                frame = np.pad(frame, (0, FRAME - len(frame)))
                position += FRAME
                if self.onset is None and np.sqrt(np.mean(frame.astype(np.float64) ** 2)) > VOICED_RMS:
                    self.onset = time.monotonic()
            packet = RtpPacket(
                payload_type=0, sequence_number=seq & 0xFFFF, timestamp=seq * FRAME, ssrc=0x1234
            )
            packet.payload = PCMU.encode(frame)
            self.sock.sendto(packet.serialize(), self.remote)
            seq += 1
            time.sleep(max(0.0, start + seq * 0.02 - time.monotonic()))

    def _receive(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                data = self.sock.recv(2048)
            except TimeoutError:
                continue
            packet = parse_rtp(data)
            self.received.append((time.monotonic(), PCMU.decode(packet.payload)))

    def voiced_since(self, since: float) -> list[float]:
        return [t for t, pcm in self.received if t >= since and _rms(pcm) > VOICED_RMS]


def _rms(pcm: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.asarray(pcm, dtype=np.float64) ** 2)))


async def test_caller_speech_stops_the_agent_and_the_history_holds_what_was_heard(tmp_path: Path) -> None:
    question, _ = read_wav(synthesize(tmp_path / "q.wav", rate=RATE, text="What is your address?"))
    voicegw = EchoServer("voicegw", tmp_path, agent="", config='[model]\nname = "local"\n')
    dialog = Dialog(voicegw.port)
    media = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    media.bind((HOST, dialog.local_port + 2))
    try:
        await asyncio.to_thread(voicegw.wait_ready, 120)
        ok = await asyncio.to_thread(dialog.establish)
        audio = sdp.parse(ok.body).audio()
        assert audio is not None
        with Caller(media, (HOST, audio.port)) as caller:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                voiced = caller.voiced_since(0)
                if voiced and voiced[-1] - voiced[0] >= GREETING_HEARD_S:
                    break
                await asyncio.sleep(0.05)
            greeting_start = caller.voiced_since(0)[0]
            caller.question = question
            await asyncio.sleep(len(question) / RATE + 1.0)
        dialog.request("BYE")
        await asyncio.to_thread(dialog.until, 200)
    finally:
        dialog.close()
        media.close()
        stopped = await asyncio.to_thread(voicegw.stop)
    assert stopped, voicegw.output()[-3000:]
    assert caller.onset is not None
    # The agent's voice before it stopped: the last voiced packet of the run under way at the onset.
    arrivals = caller.voiced_since(greeting_start)
    cut = max(t for t in arrivals if t <= caller.onset + 1.0 and not _gap_before(arrivals, t, caller.onset))
    stop_ms = (cut - caller.onset) * 1000
    log = [json.loads(line) for line in voicegw.output().splitlines() if line.startswith("{")]
    interrupted = [entry for entry in log if entry.get("event") == "audio_interrupted"]
    truncated = [entry for entry in log if entry.get("event") == "item_truncated"]
    assert interrupted and truncated, voicegw.output()[-3000:]
    assert stop_ms <= STOP_BOUND_MS, (stop_ms, interrupted)
    # What the server says was heard is what arrived: the played ms and the words.
    heard_ms = (cut - greeting_start) * 1000
    assert abs(interrupted[0]["played_ms"] - heard_ms) <= 250, (interrupted[0], heard_ms)
    text = truncated[0]["transcript"].lower()
    greeting = "hello, you have reached the front desk of the riverside community center."
    assert text and greeting.startswith(text.rstrip(".,")[: len(text) - 2]), text
    received = np.concatenate([pcm for t, pcm in caller.received if greeting_start - 0.5 <= t <= cut])
    spoken = SpeechToText().transcribe(received.astype(np.int16).tobytes(), RATE).text.lower()
    # Whisper completes the word cut off half-said (and may invent one after it); the model
    # estimates words within a clause by their share of its speech: a word or two of slack.
    assert 0 <= len(spoken.split()) - len(text.split()) <= 3, (spoken, text)


def _gap_before(arrivals: list[float], t: float, onset: float) -> bool:
    """Whether a silence of 300 ms or more lies between the onset and `t` (a new answer, not the greeting)."""
    later = [a for a in arrivals if onset <= a <= t]
    return any(b - a > 0.3 for a, b in itertools.pairwise(later))
