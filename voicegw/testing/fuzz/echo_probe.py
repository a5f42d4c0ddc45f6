"""A live echo call that measures, frame by frame, how much of its audio comes back.

Run as its own process (``python -m voicegw.testing.fuzz.echo_probe HOST PORT``) so that the load it
measures does not slow it: it places a PCMU call with a raw SIP dialog (voicegw/testing/raw_sip.py),
prints one JSON line ``{"ready": ...}`` once answered, then sends 20 ms frames until a line
``stop`` (or end of input) arrives on stdin, hangs up, and prints a JSON report: when each frame
was sent and when its echo came back.

Each frame is 160 distinct-looking μ-law bytes drawn from its number. The echo path (decode,
jitter buffer, encode) gives PCMU back bit for bit, so an echoed frame is recognised by its bytes:
a frame lost, concealed or replaced by someone else's audio does not count. `echo_ratio` turns a
report into the share of frames sent in a time window that came back.
"""

from __future__ import annotations

import json
import random
import re
import socket
import struct
import sys
import threading
import time
from dataclasses import dataclass

from voicegw.testing.raw_sip import HOST, Dialog, offer_sdp

FRAME_S = 0.02
SAMPLES = 160
PCMU = 0
ECHO_GRACE_S = 1.0
"""How long a frame's echo may take (jitter buffer and playout): frames sent later than this
before the window ends are left out of its ratio."""


def frame_payload(number: int) -> bytes:
    """Frame `number`'s μ-law bytes: never 0x7F (-0, which re-encodes as +0), else any value."""
    rng = random.Random(number)
    return bytes(rng.choice(range(0x7F)) | rng.choice((0, 0x80)) for _ in range(SAMPLES))


@dataclass(frozen=True, slots=True)
class EchoReport:
    """Send times of frames by number, and the first arrival time of each echoed frame."""

    sent: dict[int, float]
    echoed: dict[int, float]

    def to_json(self) -> str:
        return json.dumps({"sent": self.sent, "echoed": self.echoed})

    @classmethod
    def from_json(cls, text: str) -> EchoReport:
        raw = json.loads(text)
        return cls({int(k): v for k, v in raw["sent"].items()}, {int(k): v for k, v in raw["echoed"].items()})


def echo_ratio(report: EchoReport, start: float, end: float) -> float | None:
    """Share of the frames sent in [start, end - grace) whose echo came back (None: none sent)."""
    frames = [n for n, t in report.sent.items() if start <= t < end - ECHO_GRACE_S]
    if not frames:
        return None
    return sum(1 for n in frames if n in report.echoed) / len(frames)


def _remote_media(sdp: str) -> tuple[str, int]:
    address = re.search(r"^c=IN IP4 (\S+)", sdp, re.M)
    port = re.search(r"^m=audio (\d+)", sdp, re.M)
    if address is None or port is None:
        raise RuntimeError(f"the answer has no audio address:\n{sdp}")
    return address.group(1), int(port.group(1))


class EchoCall:
    """One echo call: RTP out at 20 ms, echo in, both recorded by frame number."""

    def __init__(self, server_port: int) -> None:
        self.rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.rtp.bind((HOST, 0))
        self.rtp.settimeout(0.2)
        self.dialog = Dialog(server_port)
        self.sent: dict[int, float] = {}
        self.echoed: dict[int, float] = {}
        self._payloads = {frame_payload(n): n for n in range(256)}
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._send), threading.Thread(target=self._receive)]

    def start(self) -> None:
        ok = self.dialog.establish(offer_sdp(self.rtp.getsockname()[1], "0"))
        self.remote = _remote_media(ok.body)
        for thread in self._threads:
            thread.start()

    def _send(self) -> None:
        ssrc = random.getrandbits(32)
        number, begin = 0, time.monotonic()
        while not self._stop.is_set():
            header = struct.pack("!BBHII", 0x80, PCMU, number & 0xFFFF, (number * SAMPLES) & 0xFFFFFFFF, ssrc)
            self.sent[number] = time.monotonic()
            self.rtp.sendto(header + frame_payload(number % 256), self.remote)
            number += 1
            self._stop.wait(max(0.0, begin + number * FRAME_S - time.monotonic()))

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.rtp.recv(2048)
            except TimeoutError:
                continue
            now = time.monotonic()
            if len(data) < 12 + SAMPLES or data[1] & 0x7F != PCMU:
                continue
            pattern = self._payloads.get(data[12:])
            if pattern is None:
                continue
            # Frames repeat every 256: the echo belongs to the latest frame sent with this pattern.
            number = max(n for n in range(pattern, len(self.sent), 256) if n in self.sent)
            self.echoed.setdefault(number, now)

    def stop(self) -> EchoReport:
        self._stop.set()
        for thread in self._threads:
            thread.join()
        try:
            self.dialog.request("BYE")
            self.dialog.until(200)
        except (TimeoutError, AssertionError):
            pass  # the report says what the call heard; a lost BYE answer changes none of it
        finally:
            self.dialog.close()
            self.rtp.close()
        return EchoReport(dict(self.sent), dict(self.echoed))


def main() -> None:
    port = int(sys.argv[1])
    call = EchoCall(port)
    call.start()
    print(json.dumps({"ready": True, "local": call.rtp.getsockname()[1], "remote": call.remote}), flush=True)
    for line in sys.stdin:
        if line.strip() == "stop":
            break
    print(call.stop().to_json(), flush=True)


if __name__ == "__main__":
    main()
