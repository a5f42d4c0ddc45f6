"""Attacks on a call's RTP port while SIPp's echo call runs (issue 11): hijack, flood, fuzz.

The attacker is another socket on 127.0.0.1 that learnt the call's RTP port from the echo.
Whatever it sends, the call's echo must stay what it was and the attacker must hear nothing.
"""

from __future__ import annotations

import json
import random
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.e2e.echo_checks import (
    assert_call_finished,
    assert_echo,
    echo_call_running,
    media_packets,
    pcap_for,
    wait_for_media_stats,
)
from voicegw.testing.harness import ROOT, EchoServer
from voicegw.testing.media import Pcm
from voicegw.testing.rtp_tools import PcapAudio, RtpCapture, RtpPacket

pytestmark = pytest.mark.e2e

HIJACK_RATE = 50
FLOOD_RATE = 10_000
FUZZ_COUNT = 100_000
FUZZ_RATE = 20_000


class Attacker:
    """A UDP socket firing `datagram(i)` at `rate` per second from a thread; counts what it gets."""

    def __init__(self, target: tuple[str, int], datagram: Callable[[int], bytes], rate: float) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.sock.bind(("127.0.0.1", 0))
        self.target, self.datagram, self.rate = target, datagram, rate
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        start = time.monotonic()
        while not self._stop.is_set():
            self.sock.sendto(self.datagram(self.sent), self.target)
            self.sent += 1
            if self.sent % 32 == 0 or self.rate < 1000:
                time.sleep(max(0.0, start + self.sent / self.rate - time.monotonic()))

    def received(self) -> int:
        self.sock.setblocking(False)
        count = 0
        try:
            while True:
                self.sock.recv(65535)
                count += 1
        except BlockingIOError:
            return count


@contextmanager
def attacking(target: tuple[str, int], datagram: Callable[[int], bytes], rate: float) -> Iterator[Attacker]:
    attacker = Attacker(target, datagram, rate)
    attacker._thread.start()
    try:
        yield attacker
    finally:
        attacker._stop.set()
        attacker._thread.join(5)


def server_rtp_address(capture: RtpCapture) -> tuple[str, int]:
    assert capture.wait_for(1, timeout=10), "no echo at all"
    address = next(addr for _, _, addr in capture.datagrams)
    return address[0], address[1]


def sipp_speech_s(audio: PcapAudio) -> float:
    return audio.packets * 0.020


@pytest.mark.timeout(60)
def test_a_foreign_stream_cannot_hijack_the_call(
    e2e_target: str,
    echo_server: EchoServer,
    rtp_capture: tuple[RtpCapture, int],
    speech_8k: tuple[Path, Pcm],
    tmp_path: Path,
) -> None:
    """Well-formed PCMU with its own SSRC and perfect sequence numbers from another port, as fast
    as the caller: before issue 11 the stream re-latched to it at once (the attacker got the call's
    audio, the caller's echo fell to 16 %)."""
    capture, media_port = rtp_capture
    audio = pcap_for(tmp_path, "PCMU", speech_8k[1])
    forged = [random.Random(i).randbytes(160).replace(b"\x7f", b"\x7e") for i in range(64)]

    def packet(i: int) -> bytes:
        return bytes(RtpPacket(0, 7000 + i, 160 * i, 0xBAD5EED, i == 0, forged[i % len(forged)]))

    with echo_call_running(echo_server, capture, media_port, audio, tmp_path / "sipp") as outcome:
        started = time.monotonic()
        target = server_rtp_address(capture)
        with attacking(target, packet, HIJACK_RATE) as attacker:
            # Only while the caller talks: once it is silent long enough, a source may take over.
            time.sleep(max(0.0, started + sipp_speech_s(audio) - 0.5 - time.monotonic()))
        stolen = attacker.received()

    assert_call_finished(outcome)
    assert attacker.sent >= HIJACK_RATE * 2, attacker.sent
    assert stolen == 0, f"the attacker received {stolen} packets of the call"
    echo = media_packets(capture, audio.payload_type)
    assert_echo(echo, audio)
    assert not {p.payload for p in echo} & set(forged), "the attacker's audio was played to the caller"
    if e2e_target == "voicegw":
        stats = wait_for_media_stats(echo_server)
        assert stats and stats[-1]["remote"] == list(capture.sock.getsockname()), stats


@pytest.mark.timeout(60)
def test_a_garbage_flood_does_not_silence_the_call(
    echo_server: EchoServer, rtp_capture: tuple[RtpCapture, int], speech_8k: tuple[Path, Pcm], tmp_path: Path
) -> None:
    """Before issue 11 every source shared one inbound queue of 64 per tick: 19,600 garbage
    datagrams/s cut the echo to 0.09 %."""
    capture, media_port = rtp_capture
    audio = pcap_for(tmp_path, "PCMA", speech_8k[1])
    rng = random.Random(11)
    garbage = [rng.randbytes(rng.randrange(12, 200)) for _ in range(256)]

    with echo_call_running(echo_server, capture, media_port, audio, tmp_path / "sipp") as outcome:
        started = time.monotonic()
        target = server_rtp_address(capture)
        with attacking(target, lambda i: garbage[i % len(garbage)], FLOOD_RATE) as attacker:
            time.sleep(max(0.0, started + sipp_speech_s(audio) - time.monotonic()))

    assert_call_finished(outcome)
    assert attacker.sent >= FLOOD_RATE * 2, attacker.sent
    assert_echo(media_packets(capture, audio.payload_type), audio)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("media", [[], ["--srtp"]], ids=["rtp", "srtp"])
def test_fuzz_rtp_at_a_live_call_leaves_it_untouched(media: list[str]) -> None:
    """scripts/fuzz_rtp.py, short: 100,000 datagrams of every kind at 20,000/s, a fresh seed."""
    seed = random.SystemRandom().randrange(1 << 32)
    replay = " ".join(["scripts/fuzz_rtp.py", "--count", str(FUZZ_COUNT), *media, "--seed", str(seed)])
    print(f"fuzz_rtp seed {seed} (replay: {replay})")
    run = subprocess.run(
        [sys.executable, "scripts/fuzz_rtp.py", "--count", str(FUZZ_COUNT), "--rate", str(FUZZ_RATE),
         *media, "--seed", str(seed), "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=110,
    )  # fmt: skip
    lines = [line for line in run.stdout.splitlines() if line.startswith("{")]
    assert lines, run.stdout + run.stderr
    report = json.loads(lines[-1])
    print(report)
    assert report["affected"] == [] and run.returncode == 0, report
    assert report["datagrams_sent"] == FUZZ_COUNT and report["echo_before"] >= 0.9, report
