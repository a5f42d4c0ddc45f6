"""The fuzzer's sans-I/O parts: seeds, mutations and delta debugging."""

from __future__ import annotations

import random
import re

import pytest

from voicegw.sip.message import parse_request
from voicegw.testing.fuzz.minimise import ddmin, minimise_message
from voicegw.testing.fuzz.sip_mutate import (
    MAX_UDP,
    drop_blank_line,
    duplicate_header,
    huge_header,
    mutate,
    numeric_boundary,
)
from voicegw.testing.fuzz.sip_seeds import METHOD_SEEDS, SEEDS, Endpoints, render

ENDPOINTS = Endpoints("127.0.0.1", 5060, "127.0.0.1", 5070, "UDP")


def rendered(name: str, seed: int = 1) -> bytes:
    return render(name, ENDPOINTS, random.Random(seed))


@pytest.mark.parametrize("name", sorted(METHOD_SEEDS))
def test_method_seeds_are_whole_requests_with_a_correct_content_length(name: str) -> None:
    message = rendered(name)
    request = parse_request(message.decode())

    assert b"$" not in message
    assert request.method == (name if name != "unknown" else "FROBNICATE")
    assert int(request.headers["content-length"]) == len(request.body.encode())
    assert request.headers["cseq"].endswith(request.method)


def test_every_seed_renders_to_a_message() -> None:
    for name in SEEDS:
        message = rendered(name)
        assert b"\r\n" in message and b"$host" not in message and b"$branch" not in message, name


def test_a_seed_replays_the_same_messages() -> None:
    def run(seed: int) -> list[bytes]:
        rng = random.Random(seed)
        return [mutate(render(rng.choice(tuple(SEEDS)), ENDPOINTS, rng), [], rng)[0] for _ in range(200)]

    assert run(7) == run(7)
    assert run(7) != run(8)


def test_fresh_identifiers_for_each_message() -> None:
    rng = random.Random(3)
    first, second = (parse_request(render("INVITE", ENDPOINTS, rng).decode()) for _ in range(2))
    assert first.headers["call-id"] != second.headers["call-id"]
    assert first.headers["via"] != second.headers["via"]


def test_numeric_boundary_puts_edge_values_in_number_fields() -> None:
    message = rendered("OPTIONS")
    lengths = set()
    for seed in range(300):
        mutant = numeric_boundary(message, random.Random(seed))
        assert mutant != message or b"Content-Length: 0\r\n" in message
        if (match := re.search(rb"Content-Length: (.*)\r\n", mutant)) is not None:
            lengths.add(match.group(1))
    assert len(lengths - {b"0"}) >= 3, lengths


def test_header_duplication_huge_headers_and_no_blank_line() -> None:
    message = rendered("OPTIONS")
    lines = message.count(b"\r\n")
    assert max(duplicate_header(message, random.Random(s)).count(b"\r\n") for s in range(30)) >= lines + 69
    assert max(len(huge_header(message, random.Random(s))) for s in range(30)) >= len(message) + 8192
    assert b"\r\n\r\n" not in drop_blank_line(message, random.Random(0))


def test_mutants_fit_a_datagram() -> None:
    rng = random.Random(5)
    for _ in range(300):
        data, names = mutate(rendered("long_values"), [rendered("INVITE")], rng)
        assert len(data) <= MAX_UDP and 1 <= len(names) <= 3


def test_ddmin_finds_the_two_items_that_matter() -> None:
    items = list(range(100))
    assert ddmin(items, lambda xs: 17 in xs and 83 in xs, budget=1000) == [17, 83]


def test_minimise_message_keeps_only_the_fatal_line_and_byte() -> None:
    message = rendered("INVITE")

    smallest = minimise_message(message, lambda m: b"\x00" in m or b"INVITE sip" in m, budget=2000)

    assert smallest == b"INVITE sip"
