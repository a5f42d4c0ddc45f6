"""RTP on the test side: build packets and SIPp pcap files, capture the echo, check its headers.

Independent of `voicegw.rtp` on purpose (a plain struct parser), so the checks cannot share a bug
with the code under test.
"""

from __future__ import annotations

import itertools
import socket
import struct
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from voicegw.testing.media import G711_CODECS, OPUS_RATE, OpusDecoder, Pcm, frames, opus_encode

RTP_VERSION = 2
RTP_HEADER = struct.Struct("!BBHII")
FRAME_INTERVAL = 0.020
OPUS_PAYLOAD_TYPE = 111
# pcap: classic little-endian file header, LINKTYPE_ETHERNET (SIPp's pcap parser reads Ethernet).
PCAP_HEADER = struct.Struct("<IHHiIII")
PCAP_RECORD = struct.Struct("<IIII")
PCAP_MAGIC = 0xA1B2C3D4
LINKTYPE_ETHERNET = 1
# The pcap's own UDP ports: SIPp rewrites both to the call's ports, only their difference matters.
PCAP_SOURCE_PORT = 40000
PCAP_DEST_PORT = 50000


@dataclass(frozen=True)
class RtpPacket:
    """An RTP packet as seen on the wire (fixed header fields, CSRCs and extension skipped)."""

    payload_type: int
    sequence_number: int
    timestamp: int
    ssrc: int
    marker: bool
    payload: bytes
    arrival: float = 0.0

    @classmethod
    def parse(cls, data: bytes, arrival: float = 0.0) -> RtpPacket:
        if len(data) < RTP_HEADER.size:
            raise ValueError(f"RTP packet of {len(data)} bytes is shorter than its header")
        first, second, seq, ts, ssrc = RTP_HEADER.unpack_from(data)
        if first >> 6 != RTP_VERSION:
            raise ValueError(f"RTP version {first >> 6}, expected 2")
        offset = RTP_HEADER.size + 4 * (first & 0x0F)
        if first & 0x10:
            (words,) = struct.unpack_from("!H", data, offset + 2)
            offset += 4 + 4 * words
        end = len(data) - (data[-1] if first & 0x20 else 0)
        if offset > end:
            raise ValueError("RTP packet has a truncated header")
        return cls(second & 0x7F, seq, ts, ssrc, bool(second & 0x80), data[offset:end], arrival)

    def __bytes__(self) -> bytes:
        header = RTP_HEADER.pack(
            RTP_VERSION << 6,
            (0x80 if self.marker else 0) | self.payload_type,
            self.sequence_number & 0xFFFF,
            self.timestamp & 0xFFFFFFFF,
            self.ssrc,
        )
        return header + self.payload


def rtp_stream(
    payloads: Iterable[bytes], *, payload_type: int, samples: int, ssrc: int = 0x5EC0FFEE, seq: int = 1000
) -> list[RtpPacket]:
    """Packets for consecutive frames, `samples` RTP clock ticks apart, marker on the first."""
    return [
        RtpPacket(payload_type, seq + i, 8000 + i * samples, ssrc, i == 0, payload)
        for i, payload in enumerate(payloads)
    ]


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _ethernet_ipv4_udp(payload: bytes) -> bytes:
    udp = struct.pack("!HHHH", PCAP_SOURCE_PORT, PCAP_DEST_PORT, 8 + len(payload), 0) + payload
    loopback = socket.inet_aton("127.0.0.1")
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0x4000, 64, 17, 0, loopback, loopback)
    ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
    return b"\0" * 12 + b"\x08\x00" + ip + udp


def write_pcap(path: Path, packets: Sequence[RtpPacket], *, interval: float = FRAME_INTERVAL) -> Path:
    """Write RTP packets `interval` apart as an Ethernet pcap that SIPp's play_pcap_audio replays."""
    with path.open("wb") as out:
        out.write(PCAP_HEADER.pack(PCAP_MAGIC, 2, 4, 0, 0, 65535, LINKTYPE_ETHERNET))
        for index, packet in enumerate(packets):
            frame = _ethernet_ipv4_udp(bytes(packet))
            micros = round(index * interval * 1_000_000)
            out.write(
                PCAP_RECORD.pack(
                    1_700_000_000 + micros // 1_000_000, micros % 1_000_000, len(frame), len(frame)
                )
            )
            out.write(frame)
    return path


@dataclass
class RtpCapture:
    """A UDP socket on 127.0.0.1 recording every datagram it receives, from a thread.

    It is also the address the far end latches on to: tests send from it (`send`) so that
    voicegw's symmetric RTP answers here.
    """

    port: int = 0
    datagrams: list[tuple[float, bytes, tuple[str, int]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.sock.bind(("127.0.0.1", self.port))
        self.port = self.sock.getsockname()[1]
        self.sock.settimeout(0.1)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"rtp-capture-{self.port}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.datagrams.append((time.monotonic(), data, addr))

    def send(self, data: bytes, addr: tuple[str, int]) -> None:
        self.sock.sendto(data, addr)

    def packets(self) -> list[RtpPacket]:
        """What arrived so far, parsed; RTCP (PT 200-204 in the second byte) is left out."""
        with self._lock:
            snapshot = list(self.datagrams)
        return [
            RtpPacket.parse(data, arrival)
            for arrival, data, _ in snapshot
            if len(data) >= 2 and not 200 <= data[1] <= 204
        ]

    def wait_for(self, count: int, timeout: float) -> list[RtpPacket]:
        deadline = time.monotonic() + timeout
        while len(self.packets()) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.packets()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()

    def __enter__(self) -> RtpCapture:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class StreamReport:
    """What the headers of one received RTP stream say about its sender."""

    packets: int
    ssrcs: tuple[int, ...]
    payload_types: tuple[int, ...]
    seq_gaps: int
    """Consecutive packets whose sequence numbers are not +1 (mod 2^16)."""
    timestamp_errors: int
    """Packets whose timestamp step is not `samples` (or, after a marker, not a positive multiple)."""
    interval_p50_ms: float
    interval_p99_ms: float
    interval_max_ms: float

    def problems(self, *, samples_expected: bool = True) -> list[str]:
        out = []
        if len(self.ssrcs) != 1:
            out.append(f"SSRC changed: {[hex(s) for s in self.ssrcs]}")
        if self.seq_gaps:
            out.append(f"{self.seq_gaps} sequence discontinuities")
        if samples_expected and self.timestamp_errors:
            out.append(f"{self.timestamp_errors} timestamp steps not one frame")
        if not 18.0 <= self.interval_p50_ms <= 22.0:
            out.append(f"median packet interval {self.interval_p50_ms:.1f} ms, expected 20")
        return out


def analyse_stream(packets: Sequence[RtpPacket], *, samples: int) -> StreamReport:
    """Check SSRC, sequence and timestamp continuity and arrival intervals, in arrival order."""
    if not packets:
        return StreamReport(0, (), (), 0, 0, 0.0, 0.0, 0.0)
    seq_gaps = timestamp_errors = 0
    for previous, packet in itertools.pairwise(packets):
        if (packet.sequence_number - previous.sequence_number) & 0xFFFF != 1:
            seq_gaps += 1
        step = (packet.timestamp - previous.timestamp) & 0xFFFFFFFF
        # After a silence the sender may skip RTP time; RFC 3550 says it then sets the marker.
        resumed = packet.marker and step > 0 and step % samples == 0
        if step != samples and not resumed:
            timestamp_errors += 1
    intervals = np.diff([p.arrival for p in packets]) * 1000.0
    p50, p99, peak = (
        (float(np.percentile(intervals, 50)), float(np.percentile(intervals, 99)), float(intervals.max()))
        if len(intervals)
        else (0.0, 0.0, 0.0)
    )
    return StreamReport(
        packets=len(packets),
        ssrcs=tuple(dict.fromkeys(p.ssrc for p in packets)),
        payload_types=tuple(dict.fromkeys(p.payload_type for p in packets)),
        seq_gaps=seq_gaps,
        timestamp_errors=timestamp_errors,
        interval_p50_ms=p50,
        interval_p99_ms=p99,
        interval_max_ms=peak,
    )


def decode_stream(packets: Sequence[RtpPacket], codec: str, *, clock_rate: int) -> Pcm:
    """Rebuild the received audio on the RTP time line (gaps stay silent), decoded with `codec`.

    Packets are ordered by their unwrapped sequence number; each lands at its timestamp offset.
    """
    if not packets:
        return np.zeros(0, dtype=np.int16)
    ordered = sorted(packets, key=lambda p: _unwrap(p.sequence_number, packets[0].sequence_number))
    opus = OpusDecoder() if codec.lower() == "opus" else None
    base = ordered[0].timestamp
    pieces: list[tuple[int, Pcm]] = []
    for packet in ordered:
        pcm = opus.decode(packet.payload) if opus else G711_CODECS[codec].decode(packet.payload)
        pieces.append(((packet.timestamp - base) & 0xFFFFFFFF, pcm))
    length = max(offset + len(pcm) for offset, pcm in pieces)
    if length > clock_rate * 600:
        raise ValueError(f"RTP timestamps span {length / clock_rate:.0f} s: the stream's time line is broken")
    out = np.zeros(length, dtype=np.int16)
    for offset, pcm in pieces:
        out[offset : offset + len(pcm)] = pcm
    return out


def _unwrap(seq: int, first: int) -> int:
    delta = (seq - first) & 0xFFFF
    return delta - 0x10000 if delta >= 0x8000 else delta


@dataclass(frozen=True)
class PcapAudio:
    """A pcap SIPp replays, with what its packets carry once decoded (the echo's reference)."""

    path: Path
    codec: str
    payload_type: int
    clock_rate: int
    samples_per_packet: int
    packets: int
    reference: Pcm


def build_pcap(path: Path, codec: str, pcm: Pcm) -> PcapAudio:
    """Encode `pcm` (8 kHz for G.711, 48 kHz for Opus) into 20 ms RTP packets written as a pcap."""
    if codec.lower() == "opus":
        payloads = opus_encode(pcm)
        payload_type, clock_rate, reference = OPUS_PAYLOAD_TYPE, OPUS_RATE, pcm
    else:
        g711 = G711_CODECS[codec]
        payloads = [g711.encode(frame) for frame in frames(pcm, 8000)]
        payload_type, clock_rate = g711.payload_type, 8000
        reference = np.concatenate([g711.decode(p) for p in payloads])
    samples = clock_rate * 20 // 1000
    write_pcap(path, rtp_stream(payloads, payload_type=payload_type, samples=samples))
    return PcapAudio(path, codec, payload_type, clock_rate, samples, len(payloads), reference)
