"""Mutations of SIP messages, sans-I/O: a message and a `random.Random` in, a message out.

Each mutation is a small function; `mutate` stacks one to three of them. Every choice comes from
the one generator, so a run is replayed exactly from its seed.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence

MAX_UDP = 65_000
"""Largest message sent: a UDP datagram over IPv4 carries at most 65,507 bytes."""

BOUNDARY_NUMBERS: tuple[bytes, ...] = (
    b"0", b"-1", b"1", b"00000000000000000001", b"255", b"256", b"65535", b"65536", b"70000",
    b"2147483647", b"2147483648", b"-2147483649", b"4294967295", b"4294967296", b"9223372036854775807",
    b"18446744073709551616", b"99999999999999999999999999999999", b"", b" ", b"1e9", b"0x10", b"+5",
    b"-0", b"1.5", b"NaN",
)  # fmt: skip
"""Values for numeric fields: the edges of 8/16/32/64-bit integers, signs, empty, not numbers."""

NUMERIC_FIELDS = re.compile(
    rb"(?im)(?:^(?:content-length|l|cseq|max-forwards|expires|min-expires|retry-after|rack|rseq)[ \t]*:[ \t]*"
    rb"|:(?=\d{1,5}[;>\s])|^m=audio |;expires=|;q=|;rport=|;ttl=|^a=ptime:|^a=rtcp:)(\d*)"
)
"""Where numbers live in a SIP message: length, sequence and hop counters, timers, ports."""

BAD_BYTES: tuple[bytes, ...] = (
    b"\x00", b"\xff", b"\xc0\x80", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\xe2\x82", b"\x80",
    b"\xef\xbb\xbf", b"\r", b"\n", b"\r\n", b"\r\n\r\n", b":", b";", b",", b"<", b">", b"\"", b"\\",
    b"%", b"%00", b" ", b"\t", b"@", b"=", b"?", b"sip:",
)  # fmt: skip
"""Bytes that break lexers: NUL, invalid UTF-8 (overlong, surrogate, 5-byte, cut), SIP separators."""

HEADER_COPIES = (2, 3, 10, 70, 200, 1000)
HUGE_SIZES = (256, 1024, 4000, 4096, 4421, 8192, 16384, 32768, 60000)


def _position(rng: random.Random, data: bytes) -> int:
    return rng.randrange(len(data) + 1)


def flip_bits(data: bytes, rng: random.Random) -> bytes:
    if not data:
        return data
    out = bytearray(data)
    for _ in range(rng.choice((1, 1, 2, 4, 8))):
        out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
    return bytes(out)


def random_bytes(data: bytes, rng: random.Random) -> bytes:
    if not data:
        return data
    out = bytearray(data)
    for _ in range(rng.choice((1, 2, 4))):
        out[rng.randrange(len(out))] = rng.randrange(256)
    return bytes(out)


def insert(data: bytes, rng: random.Random) -> bytes:
    at = _position(rng, data)
    piece = rng.choice(BAD_BYTES) * rng.choice((1, 1, 2, 16))
    return data[:at] + piece + data[at:]


def delete(data: bytes, rng: random.Random) -> bytes:
    if not data:
        return data
    start = rng.randrange(len(data))
    return data[:start] + data[start + rng.choice((1, 2, 8, 64, 512)) :]


def _header_lines(data: bytes) -> tuple[list[bytes], bytes, bytes]:
    """The head's lines (the start line first), the separator and the body."""
    head, sep, body = data.partition(b"\r\n\r\n")
    return head.split(b"\r\n"), sep, body


def duplicate_header(data: bytes, rng: random.Random) -> bytes:
    lines, sep, body = _header_lines(data)
    if len(lines) < 2:
        return data
    index = rng.randrange(1, len(lines))
    lines[index:index] = [lines[index]] * (rng.choice(HEADER_COPIES) - 1)
    return b"\r\n".join(lines) + sep + body


def huge_header(data: bytes, rng: random.Random) -> bytes:
    lines, sep, body = _header_lines(data)
    size = rng.choice(HUGE_SIZES)
    filler = rng.choice((b"a", b"%", b";", b",", b" ", b"<")) * size
    if len(lines) >= 2 and rng.random() < 0.5:
        index = rng.randrange(1, len(lines))
        lines[index] += filler
    else:
        lines.insert(rng.randrange(1, len(lines) + 1), b"X-Huge: " + filler)
    return b"\r\n".join(lines) + sep + body


def drop_blank_line(data: bytes, rng: random.Random) -> bytes:
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return data
    return head + rng.choice((b"", b"\r\n", b"\n", b"\r")) + body


def truncate(data: bytes, rng: random.Random) -> bytes:
    return data[: _position(rng, data)]


def numeric_boundary(data: bytes, rng: random.Random) -> bytes:
    fields = list(NUMERIC_FIELDS.finditer(data))
    if not fields:
        return data
    match = rng.choice(fields)
    return data[: match.start(1)] + rng.choice(BOUNDARY_NUMBERS) + data[match.end(1) :]


def line_endings(data: bytes, rng: random.Random) -> bytes:
    return data.replace(b"\r\n", rng.choice((b"\n", b"\r", b"\n\r", b"\r\r\n")))


MUTATIONS: dict[str, Callable[[bytes, random.Random], bytes]] = {
    "flip_bits": flip_bits,
    "random_bytes": random_bytes,
    "insert": insert,
    "delete": delete,
    "duplicate_header": duplicate_header,
    "huge_header": huge_header,
    "drop_blank_line": drop_blank_line,
    "truncate": truncate,
    "numeric_boundary": numeric_boundary,
    "line_endings": line_endings,
}
"""Every mutation but `splice`, which needs a second message."""


def splice(data: bytes, other: bytes, rng: random.Random) -> bytes:
    """The head of one message and the tail of another."""
    return data[: _position(rng, data)] + other[_position(rng, other) :]


def mutate(data: bytes, others: Sequence[bytes], rng: random.Random) -> tuple[bytes, tuple[str, ...]]:
    """One to three stacked mutations of `data` (splice takes a partner from `others`), and their names."""
    names: list[str] = []
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        if others and rng.random() < 0.08:
            data = splice(data, rng.choice(others), rng)
            names.append("splice")
            continue
        name = rng.choice(tuple(MUTATIONS))
        data = MUTATIONS[name](data, rng)
        names.append(name)
    return data[:MAX_UDP], tuple(names)
