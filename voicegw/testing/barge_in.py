"""A phone's side of a barge-in, over real RTP: shared by tests/e2e/test_barge_in.py and
scripts/bench_latency.py (its figures on the wire).

The caller sends a steady 20 ms PCMU stream, as a phone does: silence, then a question while the
agent speaks. Both directions are timed at the caller's socket.
"""

from __future__ import annotations

import contextlib
import itertools
import socket
import threading
import time
from collections.abc import Iterator

import numpy as np

from voicegw.rtp.packet import RtpPacket, parse_rtp
from voicegw.sip import sdp
from voicegw.testing.media import PCMU
from voicegw.testing.raw_sip import HOST, Dialog, offer_sdp

RATE = 8000
FRAME = RATE // 50
VOICED_RMS = 400
GREETING_HEARD_S = 2.0
"""How much of the greeting plays before the caller talks over it."""
AGENT_SPEECH_TIMEOUT_S = 20.0


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

    def wait_for_agent_speech(self, seconds: float) -> float:
        """Block until the agent has spoken for `seconds`; the arrival of its first voiced packet."""
        deadline = time.monotonic() + AGENT_SPEECH_TIMEOUT_S
        while time.monotonic() < deadline:
            voiced = self.voiced_since(0)
            if voiced and voiced[-1] - voiced[0] >= seconds:
                return voiced[0]
            time.sleep(0.05)
        raise TimeoutError(f"the agent did not speak for {seconds} s within {AGENT_SPEECH_TIMEOUT_S} s")


@contextlib.contextmanager
def phone_call(port: int) -> Iterator[tuple[Caller, float, float]]:
    """A call to the server on `port` from a raw SIP dialog and a phone's media: the caller, when
    the INVITE left and when the 200 OK came (monotonic); hung up (BYE) when the body is done."""
    dialog = Dialog(port)
    media = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        media.bind((HOST, 0))  # any free port: the one beside the dialog's may be taken
        invited = time.monotonic()
        ok = dialog.establish(offer_sdp(media.getsockname()[1]))
        answered = time.monotonic()
        audio = sdp.parse(ok.body).audio()
        assert audio is not None, "the 200 OK has no audio"
        with Caller(media, (HOST, audio.port)) as caller:
            yield caller, invited, answered
        dialog.request("BYE")
        dialog.until(200)
    finally:
        dialog.close()
        media.close()


def _rms(pcm: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.asarray(pcm, dtype=np.float64) ** 2)))


def agent_stopped_at(caller: Caller, speech_start: float) -> float:
    """When the agent's voice stopped after the caller's onset: the last voiced packet of the run
    under way at the onset (a new answer after a pause does not count)."""
    assert caller.onset is not None
    arrivals = caller.voiced_since(speech_start)
    return max(t for t in arrivals if t <= caller.onset + 1.0 and not _gap_before(arrivals, t, caller.onset))


def _gap_before(arrivals: list[float], t: float, onset: float) -> bool:
    """Whether a silence of 300 ms or more lies between the onset and `t` (a new answer, not the greeting)."""
    later = [a for a in arrivals if onset <= a <= t]
    return any(b - a > 0.3 for a, b in itertools.pairwise(later))
