"""The signalling policy (voicegw.sip.policy): request bytes and a time in, a refusal or None out."""

from __future__ import annotations

import random

import pytest

from voicegw.sip.digest import DigestVerifier
from voicegw.sip.guard import IncomingRequest, Refusal
from voicegw.sip.policy import ALLOW, AccessLimits, SignallingPolicy, SourcePolicy, source_key
from voicegw.sip.ratelimit import DEFAULT_CAPACITY
from voicegw.testing.raw_sip import digest_answer

URI = "sip:desk@192.0.2.1"
LAN = ("192.168.1.20", 5060)
STRANGER = ("203.0.113.9", 5060)
USERS = {"alice": "wonderland"}


def request(
    method: str,
    source: tuple[str, int] = STRANGER,
    *,
    in_dialog: bool = False,
    headers: str = "",
    uri: str = URI,
) -> IncomingRequest:
    to_tag = ";tag=ours" if in_dialog else ""
    raw = (
        f"{method} {uri} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {source[0]}:{source[1]};branch=z9hG4bK1\r\n"
        f"From: <sip:caller@{source[0]}>;tag=1\r\nTo: <{uri}>{to_tag}\r\nCall-ID: c1\r\n"
        f"CSeq: 1 {method}\r\nContact: <sip:caller@198.51.100.7>\r\n{headers}Content-Length: 0\r\n\r\n"
    )
    return IncomingRequest(method, source, "udp", in_dialog, raw.encode())


def policy(*, digest: bool = False, **limits: float) -> SignallingPolicy:
    verifier = DigestVerifier("desk", USERS, node_id="a") if digest else None
    return SignallingPolicy(SourcePolicy(), verifier, AccessLimits(**limits))  # type: ignore[arg-type]


def status(refusal: Refusal | None) -> int | None:
    return None if refusal is None else refusal.status


@pytest.mark.parametrize("source", [LAN, STRANGER])
@pytest.mark.parametrize("method", ["SUBSCRIBE", "MESSAGE", "REGISTER", "PUBLISH", "REFER"])
@pytest.mark.parametrize("in_dialog", [False, True])
def test_methods_voicegw_does_not_serve_get_405_with_allow_from_anyone(
    method: str, source: tuple[str, int], in_dialog: bool
) -> None:
    refusal = policy(digest=True)(request(method, source, in_dialog=in_dialog), 0.0)
    assert refusal is not None and (refusal.status, refusal.reason) == (405, "Method Not Allowed")
    assert dict(refusal.headers) == {"Allow": ALLOW}
    assert "SUBSCRIBE" not in ALLOW and "REFER" not in ALLOW


@pytest.mark.parametrize("method", ["FOO", "invite", "SUBSCRIBEX", ""])
def test_unknown_methods_get_501(method: str) -> None:
    assert status(policy()(request(method, LAN), 0.0)) == 501


@pytest.mark.parametrize("method", ["BYE", "UPDATE", "INFO", "PRACK", "NOTIFY"])
def test_methods_of_a_dialog_outside_one_get_481_and_inside_one_go_on(method: str) -> None:
    guard = policy()
    assert status(guard(request(method, LAN), 0.0)) == 481
    assert guard(request(method, LAN, in_dialog=True), 0.0) is None


@pytest.mark.parametrize("method", ["INVITE", "OPTIONS", "CANCEL", "ACK"])
def test_the_allow_list_may_send_what_voicegw_serves(method: str) -> None:
    assert policy()(request(method, LAN), 0.0) is None


def test_without_digest_a_strangers_invite_gets_403_and_its_dialog_requests_go_on() -> None:
    guard = policy()
    assert guard(request("INVITE"), 0.0) == Refusal(403, "Forbidden")
    # The far end of a call we dialled may be anywhere: the dialog authorises it, and pjsip
    # answers 481 to a request that matches no dialog or transaction.
    for method in ("INVITE", "BYE", "INFO", "NOTIFY"):
        assert guard(request(method, in_dialog=True), 0.0) is None
    for method in ("OPTIONS", "ACK", "CANCEL"):
        assert guard(request(method), 0.0) is None


def test_with_digest_a_stranger_is_challenged_and_its_dialog_requests_go_on() -> None:
    guard = policy(digest=True)
    challenge = guard(request("INVITE"), 0.0)
    assert challenge is not None and (challenge.status, challenge.headers[0][0]) == (401, "WWW-Authenticate")
    for method in ("BYE", "INFO", "NOTIFY", "INVITE"):
        assert guard(request(method, in_dialog=True), 0.0) is None
    assert guard(request("CANCEL"), 0.0) is None


def authorised(
    guard: SignallingPolicy,
    password: str,
    *,
    source: tuple[str, int] = STRANGER,
    user: str = "alice",
    **kw: str,
) -> IncomingRequest:
    """An INVITE answering a fresh challenge of `guard`'s."""
    assert guard.digest is not None
    header = digest_answer(guard.digest.challenge(), user, password, **kw)
    return request("INVITE", source, headers=f"Authorization: {header}\r\n")


def test_an_answered_challenge_lets_the_invite_in_once() -> None:
    guard = policy(digest=True)
    invite = authorised(guard, "wonderland")
    assert guard(invite, 1.0) is None
    again = invite.raw.replace(b"branch=z9hG4bK1", b"branch=z9hG4bK2")
    replayed = guard(IncomingRequest("INVITE", STRANGER, "udp", False, again), 2.0)
    assert replayed is not None and replayed.status == 401 and "stale=true" in replayed.headers[0][1]


def test_a_retransmitted_invite_is_not_a_replay_but_its_credentials_elsewhere_are() -> None:
    guard = policy(digest=True)
    invite = authorised(guard, "wonderland")
    assert guard(invite, 1.0) is None
    assert guard(invite, 1.5) is None  # the same datagram again: the client's Timer A
    moved = IncomingRequest(
        "INVITE", STRANGER, "udp", False, invite.raw.replace(b"Call-ID: c1", b"Call-ID: c2")
    )
    assert status(guard(moved, 2.0)) == 401


def test_a_digest_uri_other_than_the_request_uri_is_refused() -> None:
    guard = policy(digest=True)
    moved = authorised(guard, "wonderland", uri="sip:premium@192.0.2.1")
    assert guard(moved, 1.0) == Refusal(403, "Forbidden")


def test_wrong_passwords_lock_the_source_out_then_a_longer_back_off_each_time() -> None:
    guard = policy(digest=True, max_failures=3, lockout=60, max_lockout=600)
    for attempt in range(3):
        assert status(guard(authorised(guard, f"guess{attempt}"), 10.0)) == 403
    # Locked: even the right password gets the same 403, unchecked, and no challenge is spent.
    assert guard(authorised(guard, "wonderland"), 20.0) == Refusal(403, "Forbidden")
    assert guard(request("INVITE"), 69.0) == Refusal(403, "Forbidden")
    for attempt in range(3):
        assert status(guard(authorised(guard, f"again{attempt}"), 71.0)) == 403
    assert guard(authorised(guard, "wonderland"), 71.0 + 119) == Refusal(403, "Forbidden")
    assert guard(authorised(guard, "wonderland"), 71.0 + 121) is None
    # The right password clears the record: one wrong guess is not a lockout.
    assert status(guard(authorised(guard, "guess"), 200.0)) == 403
    assert guard(authorised(guard, "wonderland"), 200.0) is None


def test_a_user_is_locked_out_whichever_source_guesses() -> None:
    guard = policy(digest=True, max_failures=3, lockout=60, max_lockout=600, burst=1000)
    for attempt in range(3):
        source = (f"203.0.113.{10 + attempt}", 5060)
        assert status(guard(authorised(guard, f"guess{attempt}", source=source), 1.0)) == 403
    assert guard(authorised(guard, "wonderland", source=source), 1.0) == Refusal(403, "Forbidden")
    fresh = ("198.51.100.1", 5060)
    assert guard(authorised(guard, "wonderland", source=fresh), 2.0) == Refusal(403, "Forbidden")
    assert guard(authorised(guard, "wonderland", source=fresh), 62.0) is None


def test_failures_from_countless_sources_cannot_push_a_locked_user_out_of_memory() -> None:
    guard = policy(digest=True, max_failures=2)
    for _ in range(2):
        guard(authorised(guard, "guess"), 1.0)
    for n in range(DEFAULT_CAPACITY + 1000):  # more failing sources than the source table holds
        guard.source_lockout.failed(f"198.18.{n >> 8 & 255}.{n & 255}", 2.0)
    assert len(guard.source_lockout) == DEFAULT_CAPACITY
    fresh = ("198.51.100.1", 5060)
    assert guard(authorised(guard, "wonderland", source=fresh), 3.0) == Refusal(403, "Forbidden")


def test_unknown_user_names_lock_out_the_source_but_keep_no_table_of_names() -> None:
    guard = policy(digest=True, max_failures=2)
    for name in ("root", "admin", "1000"):
        assert guard(authorised(guard, "x", user=name), 1.0) == Refusal(403, "Forbidden")
    assert (len(guard.source_lockout), len(guard.user_lockout)) == (1, 0)


def test_a_stranger_past_its_budget_gets_503_with_retry_after_and_the_allow_list_none() -> None:
    guard = policy(rate=2, burst=5)
    assert [status(guard(request("MESSAGE"), 0.0)) for _ in range(6)] == [405] * 5 + [503]
    assert guard(request("OPTIONS"), 0.0) == Refusal(503, "Service Unavailable", (("Retry-After", "1"),))
    assert status(guard(request("OPTIONS"), 1.0)) is None  # two tokens back after a second
    assert all(guard(request("OPTIONS", LAN), 0.0) is None for _ in range(100))


def test_a_spoofed_source_flood_costs_bounded_memory_and_counts_refusals() -> None:
    guard = policy()
    for n in range(40_000):
        source = (f"198.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}", 5060)
        guard(request("INVITE", source), n / 1000)
    assert len(guard.rate) == DEFAULT_CAPACITY < 40_000
    assert guard.refused == {("INVITE", 403): 40_000}


def test_ipv6_sources_share_a_budget_per_64_and_mapped_ipv4_is_the_ipv4_address() -> None:
    assert source_key("2001:db8:1:2::5") == source_key("[2001:db8:1:2:ffff::1]") == "2001:db8:1:2::/64"
    assert source_key("::ffff:203.0.113.9") == "203.0.113.9"
    assert source_key("not-an-address") == "not-an-address"


def test_garbage_in_the_request_is_challenged_not_raised() -> None:
    guard = policy(digest=True)
    headers = (
        "Authorization: Digest \xff\xfe\r\n",
        "Authorization: Basic Zm9vOmJhcg==\r\n",
        "Authorization:\r\n",
    )
    for header in headers:
        assert status(guard(request("INVITE", headers=header), 0.0)) == 401
    raw = IncomingRequest("INVITE", STRANGER, "udp", False, b"INVITE\xff\x00 \r\n\r\n")
    assert status(guard(raw, 0.0)) == 401


MUTATIONS = 3000


def test_mutated_requests_never_raise_and_every_refusal_fits_on_a_header_line() -> None:
    rng = random.Random(11)
    guard = policy(digest=True, burst=100_000, rate=100_000)
    seeds = [
        authorised(guard, "wonderland").raw,
        authorised(guard, "guess").raw,
        request("SUBSCRIBE", headers="Event: presence\r\n").raw,
    ]
    for n in range(MUTATIONS):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 8)):
            position = rng.randrange(len(data))
            match rng.randrange(3):
                case 0:
                    data[position] = rng.randrange(256)
                case 1:
                    del data[position : position + rng.randint(1, 40)]
                case _:
                    data[position:position] = data[rng.randrange(len(data)) :][: rng.randint(1, 200)]
        method = bytes(data.split(b" ", 1)[0]).decode("latin-1")
        source = (f"203.0.113.{n % 250}", 5060)
        refusal = guard(IncomingRequest(method, source, "udp", rng.random() < 0.3, bytes(data)), float(n))
        if refusal is not None:
            assert 300 <= refusal.status <= 699
            for text in (refusal.reason, *(value for _, value in refusal.headers)):
                assert text.isprintable(), (n, refusal)
