"""The signalling policy in `voicegw serve` (and `voicegw call`): every method under the access
rules, budgets per source, and refusals that leave nothing behind (digest:
tests/sip/test_inbound_auth.py).

Raw UDP requests from 127.0.0.1; servers with ``allow = []`` make 127.0.0.1 a stranger, as a
source on the internet would be.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.sip.test_signaling import events
from voicegw.testing.fake_realtime import API_KEY, FakeRealtimeServer
from voicegw.testing.harness import HOST, EchoServer, free_udp_port, run_process
from voicegw.testing.raw_peer import MESSAGE, SUBSCRIBE, Peer, rss_kb
from voicegw.testing.sipp import sipp_uas

pytestmark = pytest.mark.timeout(120)
CLOSED = "[access]\nallow = []\n"


@pytest.mark.parametrize("config", [CLOSED, ""], ids=["refused-source", "allowed-source"])
def test_unserved_methods_are_refused_and_nothing_is_ever_sent_to_the_addresses_they_name(
    voicegw: Callable[..., EchoServer], config: str
) -> None:
    server = voicegw(config)
    peer, victim = Peer(server.port), Peer(server.port)
    try:
        requests = [
            ("SUBSCRIBE", SUBSCRIBE, "", 405),
            ("SUBSCRIBE", SUBSCRIBE, "x1", 405),  # as if inside a dialog
            ("REFER", f"Refer-To: <sip:victim@{HOST}:{victim.port}>\r\n", "", 405),
            ("MESSAGE", MESSAGE, "", 405),
            ("REGISTER", "Expires: 3600\r\n", "", 405),
            ("PUBLISH", "Event: presence\r\n", "", 405),
            ("NOTIFY", "Event: presence\r\nSubscription-State: active\r\n", "", 481),
            ("FROBNICATE", "", "", 501),
        ]
        for method, extra, to_tag, _ in requests:
            peer.send(method, contact_port=victim.port, extra=extra, to_tag=to_tag)
            time.sleep(0.02)  # in order
        answers = peer.responses(len(requests))
        assert [(r.headers["cseq"].split()[1], r.status) for r in answers] == [
            (method, status) for method, _, _, status in requests
        ]
        assert all("SUBSCRIBE" not in r.headers["allow"] for r in answers if r.status in (405, 501))
        assert peer.collect() == [], "a refusal was answered more than once"
        assert victim.collect(0.5) == [], "voicegw sent something to the address a request named"
        assert not events(server, "call_incoming")
    finally:
        peer.close()
        victim.close()


def test_a_refused_invite_is_answered_once_statelessly(voicegw: Callable[..., EchoServer]) -> None:
    server = voicegw(CLOSED)
    peer = Peer(server.port)
    try:
        peer.send("INVITE")
        (forbidden,) = peer.responses(1)
        assert forbidden.status == 403
        # Never ACKed: a transaction would retransmit its 403 (Timer G, from 0.5 s on).
        assert peer.collect() == []
        assert not events(server, "call_incoming")
    finally:
        peer.close()


FLOOD = 5000
WARM_UP = 500
RSS_GROWTH_KB = 24_000
"""Answered statefully, 5,000 refused INVITEs grew voicegw by 158 MB and 5,000 MESSAGEs by 58 MB."""


def test_thousands_of_refused_invites_and_messages_leave_memory_flat(
    voicegw: Callable[..., EchoServer],
) -> None:
    # A budget wide enough that every request reaches the 403/405 path, not the rate limit.
    server = voicegw(CLOSED + "rate = 100000\nburst = 100000\n")
    peer = Peer(server.port)
    try:
        # Warm-up: the allocator's arenas, pjsip's pools, Python's caches.
        statuses = peer.flood("INVITE", WARM_UP) + peer.flood("MESSAGE", WARM_UP, extra=MESSAGE)
        before = rss_kb(server.proc.pid)
        statuses += peer.flood("INVITE", FLOOD) + peer.flood("MESSAGE", FLOOD, extra=MESSAGE)
        statuses += peer.flood("BYE", FLOOD // 5, to_tag="forged")  # passed on to pjsip: 481
        assert peer.collect() == []
        after = rss_kb(server.proc.pid)
        assert statuses == {403: FLOOD + WARM_UP, 405: FLOOD + WARM_UP, 481: FLOOD // 5}
        assert after - before < RSS_GROWTH_KB, f"RSS grew from {before} kB to {after} kB"
        assert not events(server, "call_incoming")
    finally:
        peer.close()


@pytest.mark.parametrize("digest", ["", '[access.digest]\n[access.digest.users]\nalice = "wonderland"\n'])
def test_a_strangers_requests_in_a_forged_dialog_get_481_and_leave_nothing(
    voicegw: Callable[..., EchoServer], digest: str
) -> None:
    server = voicegw(CLOSED + digest)
    peer, victim = Peer(server.port), Peer(server.port)
    try:
        # Passed on (a dialog authorises them), matched against nothing: pjsip's stateless 481.
        for method in ("BYE", "INVITE", "INFO", "NOTIFY", "UPDATE"):
            peer.send(method, contact_port=victim.port, to_tag="forged", extra="Event: refer\r\n")
            time.sleep(0.02)
        peer.send("CANCEL")
        answers = peer.responses(6)
        assert sorted((r.headers["cseq"].split()[1], r.status) for r in answers) == sorted(
            (method, 481) for method in ("BYE", "INVITE", "INFO", "NOTIFY", "UPDATE", "CANCEL")
        )
        assert peer.collect() == []
        assert victim.collect(0.5) == []
        assert not events(server, "call_incoming")
    finally:
        peer.close()
        victim.close()


def test_a_strangers_requests_over_tcp_are_refused_the_same_way(voicegw: Callable[..., EchoServer]) -> None:
    server = voicegw(CLOSED)
    with socket.create_connection((HOST, server.port), timeout=5.0) as sock:
        local = sock.getsockname()[1]
        for n, method in enumerate(("SUBSCRIBE", "MESSAGE", "INVITE", "FROBNICATE")):
            sock.sendall(
                (
                    f"{method} sip:echo@{HOST}:{server.port};transport=tcp SIP/2.0\r\n"
                    f"Via: SIP/2.0/TCP {HOST}:{local};branch=z9hG4bKtcp{n}\r\n"
                    f"From: <sip:tester@{HOST}>;tag=t{n}\r\nTo: <sip:echo@{HOST}>\r\nCall-ID: tcp{n}\r\n"
                    f"CSeq: 1 {method}\r\nContact: <sip:victim@{HOST}:{local};transport=tcp>\r\n"
                    f"Max-Forwards: 70\r\n{SUBSCRIBE}Content-Length: 0\r\n\r\n"
                ).encode()
            )
        received = b""
        while received.count(b"SIP/2.0 ") < 4:
            received += sock.recv(65535)
    statuses = [int(line.split()[1]) for line in received.split(b"\r\n") if line.startswith(b"SIP/2.0 ")]
    assert statuses == [405, 405, 403, 501]
    assert not events(server, "call_incoming")


def test_a_stranger_past_its_budget_gets_503_with_retry_after(voicegw: Callable[..., EchoServer]) -> None:
    server = voicegw(CLOSED + "rate = 1\nburst = 20\n")
    peer = Peer(server.port)
    try:
        for _ in range(30):
            peer.send("OPTIONS")
        answers = peer.responses(30)
        statuses = [r.status for r in answers]
        # The burst (less what the start-up probes spent, plus a token or two refilled), then 503.
        assert len(statuses) == 30 and set(statuses) == {200, 503}
        assert 15 <= statuses.count(200) <= 22, statuses
        assert {r.headers["retry-after"] for r in answers if r.status == 503} <= {"1", "2"}
    finally:
        peer.close()


async def test_voicegw_call_refuses_a_subscribe_while_it_dials(tmp_path: Path) -> None:
    sip_port = free_udp_port()
    config = tmp_path / "voicegw.toml"
    config.write_text(f'[sip]\nlisten = "{HOST}:{sip_port}"\n')
    async with (
        FakeRealtimeServer("greeting") as model,
        sipp_uas("uas_ring_cancel.xml", tmp_path) as (port, sipp),
    ):
        dialling = asyncio.create_task(
            run_process(
                sys.executable, "-m", "voicegw", "call", f"sip:bob@{HOST}:{port}", "--config", str(config),
                "--agent", "voicegw.testing.agents:greeter", "--timeout", "4",
                env={"OPENAI_API_KEY": API_KEY, "OPENAI_BASE_URL": model.base_url},
            )
        )  # fmt: skip
        status, sent_out = await asyncio.to_thread(subscribe_until_answered, sip_port)
        await asyncio.gather(dialling, sipp)
    assert status == 405
    assert sent_out == [], "voicegw call sent something to the address the SUBSCRIBE named"


def subscribe_until_answered(port: int, timeout: float = 15.0) -> tuple[int, list[bytes]]:
    """SUBSCRIBE to `port` until the SIP stack there (starting up) answers: its status, and what
    came to the Contact address meanwhile and for a while after."""
    peer, victim = Peer(port), Peer(port)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            peer.send("SUBSCRIBE", contact_port=victim.port, extra=SUBSCRIBE)
            if answers := peer.responses(1, timeout=0.3):
                return answers[0].status, victim.collect()
        raise AssertionError(f"nothing answered on port {port}")
    finally:
        peer.close()
        victim.close()
