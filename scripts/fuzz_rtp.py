#!/usr/bin/env python3
"""RTP fuzzer: malformed and well-formed-but-foreign RTP/RTCP/SRTP at a live call's ports.

By default it starts `voicegw serve --echo` on loopback and calls it (raw SIP over UDP; a caller
that sends a unique PCMU noise frame every 20 ms, an RTCP report every second, and records the
echo). Once the echo runs it fires `--count` datagrams at `--rate` per second at the call's RTP
and RTCP ports, from other ports of 127.0.0.1 and from 127.0.0.2: garbage, truncated and
misversioned headers, runs of well-formed packets with fresh SSRCs (audio and RFC 4733 DTMF),
packets carrying the caller's own SSRC, RTCP (SR, RR, BYE, also with the caller's SSRC, also
muxed on the RTP port) and SRTP-shaped packets. It reports:

- the echo ratio before, during and after the attack: the share of the caller's frames that
  came back bit-exact (PCMU is decoded and re-encoded losslessly on the echo path);
- injected frames heard: attack payloads found in the echo (and DTMF digits the server logged);
- datagrams delivered to the attacker's sockets (the call's audio, or its RTCP, stolen);
- voicegw's CPU (per phase) and RSS, and its drop counters from the call's `rtp_closed` line.

The seed is printed; the same seed replays the same datagrams. The exit status is 1 when the
call was affected (echo down by more than 5 points, anything injected heard or stolen).

    .venv/bin/python scripts/fuzz_rtp.py --count 1000000 --rate 20000
    .venv/bin/python scripts/fuzz_rtp.py --count 100000 --seed 42 --json
    .venv/bin/python scripts/fuzz_rtp.py --srtp       # the call is SRTP (SDES): forgeries fail auth
    .venv/bin/python scripts/fuzz_rtp.py --target 127.0.0.1:20014 --count 10000   # fire only
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import socket
import struct
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from aiortc.rtp import RtcpByePacket, RtcpRrPacket, RtcpSenderInfo, RtcpSrPacket, RtpPacket

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # the test helpers: plain stdlib, no pytest needed

from voicegw.rtp.srtp import CryptoAttribute, SrtpContext, SrtpError, SrtpKeys  # noqa: E402
from voicegw.sip import sdp  # noqa: E402
from voicegw.testing.harness import EchoServer  # noqa: E402
from voicegw.testing.raw_sip import Dialog, offer_sdp  # noqa: E402

HOST = "127.0.0.1"
OTHER_HOST = "127.0.0.2"
"""Loopback is a /8 on Linux: a second source address without any set-up."""
PCMU_PT, TELEPHONE_EVENT_PT = 0, 101
SRTP_SUITE = "AES_CM_128_HMAC_SHA1_80"
FRAME_S = 0.020
FRAME_BYTES = 160
POOL_SIZE = 20_000
SPOOFED_SHARE = 0.2
"""Of the malformed datagrams, those sent from the caller's own socket (see `build_attack`)."""
RUN_LENGTH = 8
"""Packets in one run of a well-formed foreign stream (consecutive sequence numbers)."""
SOURCES_PER_HOST = 4
WARM_UP_S = 1.0
BEFORE_S = 3.0
AFTER_S = 3.0
ECHO_TOLERANCE = 0.05
PACE_BATCH = 64
RCVBUF = 4 << 20


def noise_frame(rng: random.Random) -> bytes:
    """160 random PCMU bytes; 0x7F (negative zero) decodes like 0xFF, so it is left out."""
    return rng.randbytes(FRAME_BYTES).replace(b"\x7f", b"\x7e")


def rtp(pt: int, seq: int, ts: int, ssrc: int, payload: bytes, marker: bool = False) -> bytes:
    return RtpPacket(
        payload_type=pt, sequence_number=seq & 0xFFFF, timestamp=ts & 0xFFFFFFFF, ssrc=ssrc,
        payload=payload, marker=int(marker),
    ).serialize()  # fmt: skip


@dataclass
class EchoCaller:
    """The call's own media, from an even RTP port and RTCP on the next one."""

    seed: int
    srtp: SrtpContext | None = None
    """Set before `start` when the call negotiated SRTP: everything in and out goes through it."""
    sent: list[tuple[float, bytes]] = field(default_factory=list)
    received: list[tuple[float, bytes]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.ssrc = self.rng.randrange(1, 1 << 32)
        self.rtp_sock, self.rtcp_sock = _socket_pair()
        self.port = self.rtp_sock.getsockname()[1]
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self, remote: tuple[str, int]) -> None:
        self._threads = [
            threading.Thread(target=self._send, args=(remote,), daemon=True),
            threading.Thread(target=self._receive, daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _send(self, remote: tuple[str, int]) -> None:
        start = time.monotonic()
        for k in range(1 << 62):
            if self._stop.is_set():
                return
            payload = noise_frame(self.rng)
            self.sent.append((time.monotonic(), payload))
            packet = rtp(PCMU_PT, k, k * FRAME_BYTES, self.ssrc, payload, k == 0)
            self.rtp_sock.sendto(self.srtp.protect(packet) if self.srtp else packet, remote)
            if k % 50 == 0:
                report = bytes(RtcpRrPacket(ssrc=self.ssrc, reports=[]))
                report = self.srtp.protect_rtcp(report) if self.srtp else report
                self.rtcp_sock.sendto(report, (remote[0], remote[1] + 1))
            time.sleep(max(0.0, start + (k + 1) * FRAME_S - time.monotonic()))

    def _receive(self) -> None:
        self.rtp_sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                data = self.rtp_sock.recv(2048)
            except TimeoutError:
                continue
            with contextlib.suppress(ValueError):  # SrtpError is one too
                data = self.srtp.unprotect(data) if self.srtp else data
                self.received.append((time.monotonic(), RtpPacket.parse(data).payload))

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(2)
        self.rtp_sock.close()
        self.rtcp_sock.close()

    def echo_ratio(self, start: float, end: float) -> float:
        """Share of the frames sent in [start, end) that came back bit-exact."""
        echoed = {payload for _, payload in self.received}
        frames = [payload for sent_at, payload in self.sent if start <= sent_at < end]
        return sum(payload in echoed for payload in frames) / len(frames) if frames else 0.0


def _socket_pair() -> tuple[socket.socket, socket.socket]:
    for _ in range(100):
        rtp_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rtp_sock.bind((HOST, 0))
        port = rtp_sock.getsockname()[1]
        rtcp_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            if port % 2:
                raise OSError("odd port")
            rtcp_sock.bind((HOST, port + 1))
        except OSError:
            rtp_sock.close()
            rtcp_sock.close()
            continue
        rtp_sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        return rtp_sock, rtcp_sock
    raise RuntimeError("no free even/odd port pair on 127.0.0.1")


@dataclass
class Attack:
    """The datagrams to fire, cycled: (data, source index, to the RTCP port)."""

    pool: list[tuple[bytes, int, bool]]
    injected: set[bytes]
    """Every audio payload the attack carries: none may come back in the echo."""


def build_attack(rng: random.Random, caller_ssrc: int, sources: int, *, spoof: int | None = None) -> Attack:
    """`sources` attacker sockets; with `spoof` (the index of the caller's own socket) a share of
    the malformed datagrams comes from the call's own address, as a source-spoofing attacker
    would send them: they pass the source check and reach the parsers."""
    pool: list[tuple[bytes, int, bool]] = []

    def malformed_source() -> int:
        return spoof if spoof is not None and rng.random() < SPOOFED_SHARE else source

    injected: set[bytes] = set()

    def audio() -> bytes:
        payload = noise_frame(rng)
        injected.add(payload)
        return payload

    while len(pool) < POOL_SIZE:
        source = rng.randrange(sources)
        kind = rng.randrange(10)
        seq, ts = rng.randrange(1 << 16), rng.randrange(1 << 32)
        if kind == 0:  # a run of a well-formed foreign stream: probation bait
            ssrc = rng.randrange(1, 1 << 32)
            pool += [
                (rtp(PCMU_PT, seq + i, ts + i * FRAME_BYTES, ssrc, audio(), i == 0), source, False)
                for i in range(RUN_LENGTH)
            ]
        elif kind == 1:  # fresh SSRC each, or the caller's own SSRC from elsewhere
            ssrc = caller_ssrc if rng.random() < 0.5 else rng.randrange(1, 1 << 32)
            pool.append((rtp(PCMU_PT, seq, ts, ssrc, audio()), source, False))
        elif kind == 2:  # RFC 4733 digits (event 0-15, end bit, volume 10)
            event = struct.pack("!BBH", rng.randrange(16), 0x80 | 10, 800)
            digit = rtp(TELEPHONE_EVENT_PT, seq, ts, rng.randrange(1, 1 << 32), event, True)
            pool.append((digit, source, False))
        elif kind == 3:  # random bytes, some looking like version 2
            data = bytearray(rng.randbytes(rng.randrange(0, 300)))
            if data and rng.random() < 0.5:
                data[0] = 0x80 | (data[0] & 0x3F)
            pool.append((bytes(data), malformed_source(), rng.random() < 0.3))
        elif kind == 4:  # a valid header, then cut, misversioned, or lying about CSRC/padding
            data = bytearray(rtp(PCMU_PT, seq, ts, caller_ssrc, audio()))
            how = rng.randrange(4)
            if how == 0:
                data = data[: rng.randrange(1, 12)]
            elif how == 1:
                data[0] = (rng.choice((0, 1, 3)) << 6) | (data[0] & 0x3F)
            elif how == 2:
                data[0] |= 0x0F  # 15 CSRCs that are not there
                data = data[: rng.randrange(12, 72)]
            else:
                data[0] |= 0x20
                data = data[: rng.randrange(13, 12 + 0xFF)]
                data[-1] = 0xFF  # padding longer than the packet
            pool.append((bytes(data), malformed_source(), False))
        elif kind == 5:  # SRTP-shaped: header, "ciphertext", an 80-bit tag
            ssrc = caller_ssrc if rng.random() < 0.5 else rng.randrange(1, 1 << 32)
            pool.append((rtp(PCMU_PT, seq, ts, ssrc, rng.randbytes(FRAME_BYTES + 10)), source, False))
        else:  # RTCP: SR, RR, BYE, with the caller's SSRC or not, on either port
            ssrc = caller_ssrc if rng.random() < 0.5 else rng.randrange(1, 1 << 32)
            info = RtcpSenderInfo(
                ntp_timestamp=rng.randrange(1 << 64), rtp_timestamp=ts, packet_count=seq, octet_count=seq
            )
            packet = rng.choice(
                (
                    RtcpSrPacket(ssrc=ssrc, sender_info=info),
                    RtcpRrPacket(ssrc=ssrc),
                    RtcpByePacket(sources=[ssrc]),
                )
            )
            pool.append((bytes(packet), source, rng.random() < 0.7))
    return Attack(pool, injected)


def attacker_sockets() -> list[socket.socket]:
    socks = []
    for host in (HOST, OTHER_HOST):
        for _ in range(SOURCES_PER_HOST):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
            sock.bind((host, 0))
            socks.append(sock)
    return socks


def fire(
    attack: Attack, socks: list[socket.socket], target: tuple[str, int], count: int, rate: float
) -> float:
    """Send `count` datagrams at `rate` per second; returns the seconds it took."""
    rtcp_target = (target[0], target[1] + 1)
    pool = attack.pool
    start = time.perf_counter()
    for i in range(count):
        if i % PACE_BATCH == 0:
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        data, source, to_rtcp = pool[i % len(pool)]
        socks[source].sendto(data, rtcp_target if to_rtcp else target)
    return time.perf_counter() - start


def drain(socks: list[socket.socket]) -> int:
    """Datagrams that reached the attacker's sockets (kept in their large receive buffers)."""
    received = 0
    for sock in socks:
        sock.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            while True:
                sock.recv(65535)
                received += 1
        sock.close()
    return received


@dataclass
class Usage:
    """A process's CPU seconds and memory, from /proc."""

    cpu_s: float
    rss_mb: float
    peak_rss_mb: float

    @classmethod
    def of(cls, pid: int) -> Usage:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        status = dict(
            line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line
        )
        mb = lambda key: int(status[key].split()[0]) / 1024  # noqa: E731
        return cls((int(fields[11]) + int(fields[12])) / ticks, mb("VmRSS"), mb("VmHWM"))


def cpu_percent(a: Usage, b: Usage, seconds: float) -> float:
    return round(100 * (b.cpu_s - a.cpu_s) / seconds, 1) if seconds > 0 else 0.0


def srtp_offer(port: int) -> tuple[str, CryptoAttribute]:
    """An RTP/SAVP offer with our SDES key, and that key."""
    ours = CryptoAttribute.generate(1, SRTP_SUITE)
    return offer_sdp(port, proto="RTP/SAVP", crypto=str(ours)), ours


def srtp_context(answer: sdp.MediaDescription, ours: CryptoAttribute) -> SrtpContext:
    """Our SRTP once voicegw's answer gave its key."""
    if not answer.crypto:
        raise SrtpError("voicegw answered the SRTP offer without a=crypto")
    theirs = CryptoAttribute.parse(answer.crypto[0])
    return SrtpContext(SrtpKeys(theirs.suite, local_key=ours.key, remote_key=theirs.key))


def fuzz_call(count: int, rate: float, seed: int, *, srtp: bool = False) -> dict[str, object]:
    """The whole run against a fresh `voicegw serve --echo`; the report."""
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="fuzz_rtp-") as workdir:
        server = EchoServer("voicegw", Path(workdir))
        dialog: Dialog | None = None
        caller = EchoCaller(rng.randrange(1 << 32))
        try:
            server.wait_ready()
            dialog = Dialog(server.port)
            offer, key = srtp_offer(caller.port) if srtp else (offer_sdp(caller.port), None)
            answer = sdp.parse(dialog.establish(offer).body).audio("optional")
            assert answer is not None, "the 200 OK has no audio stream"
            if key is not None:
                caller.srtp = srtp_context(answer, key)
            target = (HOST, answer.port)
            socks = attacker_sockets()
            attack = build_attack(rng, caller.ssrc, len(socks), spoof=len(socks))
            caller.start(target)
            time.sleep(WARM_UP_S)
            t_start, u_start = time.monotonic(), Usage.of(server.proc.pid)
            time.sleep(BEFORE_S)
            t_before, u_before = time.monotonic(), Usage.of(server.proc.pid)
            seconds = fire(attack, [*socks, caller.rtp_sock], target, count, rate)
            t_during, u_during = time.monotonic(), Usage.of(server.proc.pid)
            time.sleep(AFTER_S)
            t_after, u_after = time.monotonic(), Usage.of(server.proc.pid)
            caller.stop()
            dialog.request("BYE")
            dialog.until(200)
            stolen = drain(socks)
        finally:
            caller.stop()
            if dialog is not None:
                dialog.close()
            alive = server.proc.poll() is None
            server.stop()
        stats = (server.media_stats() or [{}])[-1]
        digits = [e for e in server.log_events() if e.get("event") == "dtmf"]
    heard = sum(payload in attack.injected for _, payload in caller.received)
    dropped: dict[str, int] = stats.get("bad_packets_by_reason", {})
    overflow = stats.get("datagrams_overflow", 0) + stats.get("candidates_overflow", 0)
    return {
        "seed": seed,
        "srtp": SRTP_SUITE if srtp else None,
        "datagrams_sent": count,
        "seconds": round(seconds, 2),
        "rate_achieved": round(count / seconds) if seconds else 0,
        "echo_before": round(caller.echo_ratio(t_start, t_before), 4),
        "echo_during": round(caller.echo_ratio(t_before, t_during), 4),
        "echo_after": round(caller.echo_ratio(t_during + 0.5, t_after - 0.5), 4),
        "injected_frames_heard": heard,
        "injected_dtmf_digits": len(digits),
        "datagrams_to_attacker": stolen,
        "server_alive": alive,
        "cpu_percent_before": cpu_percent(u_start, u_before, t_before - t_start),
        "cpu_percent_during": cpu_percent(u_before, u_during, t_during - t_before),
        "cpu_percent_after": cpu_percent(u_during, u_after, t_after - t_during),
        "rss_mb_before": round(u_before.rss_mb, 1),
        "rss_mb_after": round(u_after.rss_mb, 1),
        "peak_rss_mb": round(u_after.peak_rss_mb, 1),
        "dropped_by_reason": dropped,
        "overflow": overflow,
        # Never read by voicegw: dropped by the kernel, as the call's RTP socket is connected to
        # its caller while it talks (by design), or lost while voicegw was not scheduled.
        "datagrams_unread": max(0, count - sum(dropped.values()) - overflow),
        "packets_in": stats.get("packets_in", 0),
    }


def fire_only(target: tuple[str, int], count: int, rate: float, seed: int) -> dict[str, object]:
    """`--target`: fire at a call someone else placed; only what reached the attacker is known."""
    rng = random.Random(seed)
    socks = attacker_sockets()
    seconds = fire(build_attack(rng, rng.randrange(1, 1 << 32), len(socks)), socks, target, count, rate)
    time.sleep(1.0)
    return {
        "seed": seed,
        "datagrams_sent": count,
        "seconds": round(seconds, 2),
        "datagrams_to_attacker": drain(socks),
    }


def affected(report: dict[str, object]) -> list[str]:
    """What went wrong for the call, if anything (of what the report knows)."""
    problems = []
    before = float(report.get("echo_before", 0.0))  # type: ignore[arg-type]
    for phase in ("echo_during", "echo_after"):
        if phase in report and float(report[phase]) < before - ECHO_TOLERANCE:  # type: ignore[arg-type]
            problems.append(f"{phase} {report[phase]} against {before} before")
    for key in ("injected_frames_heard", "injected_dtmf_digits", "datagrams_to_attacker"):
        if report.get(key):
            problems.append(f"{key}: {report[key]}")
    if report.get("server_alive") is False:
        problems.append("voicegw died")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=100_000, help="datagrams to send (default 100000)")
    parser.add_argument("--rate", type=float, default=20_000, help="datagrams per second (default 20000)")
    parser.add_argument("--seed", type=int, default=None, help="replay a run (default: a fresh one)")
    parser.add_argument("--target", help="HOST:PORT of a call's RTP port: only fire at it (no server)")
    parser.add_argument("--srtp", action="store_true", help=f"the call negotiates SRTP ({SRTP_SUITE})")
    parser.add_argument("--json", action="store_true", help="one JSON line instead of text")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 32)
    print(f"fuzz_rtp: seed {seed}", file=sys.stderr, flush=True)
    if args.target:
        host, port = args.target.rsplit(":", 1)
        report = fire_only((host, int(port)), args.count, args.rate, seed)
    else:
        report = fuzz_call(args.count, args.rate, seed, srtp=args.srtp)
    problems = affected(report)
    report["affected"] = problems
    if args.json:
        print(json.dumps(report))
    else:
        for key, value in report.items():
            print(f"{key:>24}: {value}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
