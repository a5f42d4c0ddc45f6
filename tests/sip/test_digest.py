"""Digest authentication of callers (voicegw.sip.digest): RFC vectors, challenges, every refusal."""

from __future__ import annotations

import re

import pytest

from voicegw.sip.digest import (
    NONCE_TTL_S,
    RETRANSMISSION_S,
    BadCredentials,
    DigestResponse,
    DigestVerifier,
    Unauthenticated,
)
from voicegw.testing.raw_sip import digest_answer as answer

URI = "sip:desk@192.0.2.1"
"""The Request-URI of the requests here (and voicegw.testing.raw_sip.digest_answer's default digest-uri)."""


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def verifier(clock: Clock) -> DigestVerifier:
    return DigestVerifier("voicegw", {"alice": "Circle Of Life"}, clock=clock)


def test_rfc_2617_example_response() -> None:
    # RFC 2617 section 3.5, the "Mufasa" example.
    header = (
        'Digest username="Mufasa", realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", '
        'uri="/dir/index.html", qop=auth, nc=00000001, cnonce="0a4f113b", '
        'response="6629fae49393a05397450978507c4ef1", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
    )
    parsed = DigestResponse.parse(header)
    assert parsed.expected("GET", "Circle Of Life") == parsed.response


def test_rfc_7616_sha256_example_response() -> None:
    # RFC 7616 section 3.9.1, SHA-256.
    header = (
        'Digest username="Mufasa", realm="http-auth@example.org", uri="/dir/index.html", '
        'algorithm=SHA-256, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", nc=00000001, '
        'cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", qop=auth, '
        'response="753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"'
    )
    parsed = DigestResponse.parse(header)
    assert parsed.expected("GET", "Circle of Life") == parsed.response


def test_challenge_answered_with_the_password_authenticates(verifier: DigestVerifier) -> None:
    challenge = verifier.challenge()
    assert challenge.startswith('Digest realm="voicegw", nonce="') and 'qop="auth"' in challenge
    assert verifier.verify("INVITE", URI, answer(challenge, "alice", "Circle Of Life")) == "alice"
    # RFC 2069 clients (no qop) too.
    assert (
        verifier.verify("INVITE", URI, answer(verifier.challenge(), "alice", "Circle Of Life", qop=False))
        == "alice"
    )


@pytest.mark.parametrize("user, password", [("alice", "circle of life"), ("mallory", "Circle Of Life")])
def test_wrong_password_or_unknown_user_is_bad_credentials(
    verifier: DigestVerifier, user: str, password: str
) -> None:
    with pytest.raises(BadCredentials, match=f"wrong credentials for user '{user}'"):
        verifier.verify("INVITE", URI, answer(verifier.challenge(), user, password))


def test_the_method_is_part_of_the_response(verifier: DigestVerifier) -> None:
    with pytest.raises(BadCredentials):
        verifier.verify(
            "INVITE", URI, answer(verifier.challenge(), "alice", "Circle Of Life", method="REGISTER")
        )


@pytest.mark.parametrize(
    "header, message",
    [
        (None, "no credentials"),
        ("", "no credentials"),
        ("Basic YWxpY2U6c2VjcmV0", "authorization scheme 'Basic' is not Digest"),
        ('Digest username="alice", realm="voicegw"', "digest parameter 'nonce' is missing"),
        ('Digest username="alice" realm', "malformed digest parameters"),
        (
            'Digest username="alice", realm="other", nonce="x", uri="sip:a", response="0"',
            "realm 'other' is not ours",
        ),
        (
            'Digest username="alice", realm="voicegw", nonce="forged", uri="sip:a", response="0"',
            "nonce was not issued here",
        ),
        (
            'Digest username="alice", realm="voicegw", nonce="x", uri="sip:a", response="0", '
            "algorithm=SHA-512",
            "algorithm 'SHA-512' is not supported",
        ),
        (
            'Digest username="alice", realm="voicegw", nonce="x", uri="sip:a", response="0", qop=auth',
            "qop=auth needs cnonce and nc",
        ),
    ],
)
def test_missing_or_malformed_credentials_are_challenged_again(
    verifier: DigestVerifier, header: str | None, message: str
) -> None:
    with pytest.raises(Unauthenticated, match=message) as raised:
        verifier.verify("INVITE", URI, header)
    assert not raised.value.stale


def test_an_expired_nonce_is_stale_and_a_fresh_challenge_works(
    verifier: DigestVerifier, clock: Clock
) -> None:
    challenge = verifier.challenge()
    clock.now += NONCE_TTL_S + 1
    with pytest.raises(Unauthenticated, match="nonce expired") as raised:
        verifier.verify("INVITE", URI, answer(challenge, "alice", "Circle Of Life"))
    assert raised.value.stale
    assert verifier.challenge(stale=True).endswith(", stale=true")
    assert verifier.verify("INVITE", URI, answer(verifier.challenge(), "alice", "Circle Of Life")) == "alice"


def test_a_replayed_answer_is_refused_but_the_next_nonce_count_is_taken(verifier: DigestVerifier) -> None:
    challenge = verifier.challenge()
    first = answer(challenge, "alice", "Circle Of Life")
    assert verifier.verify("INVITE", URI, first) == "alice"
    with pytest.raises(Unauthenticated, match="replayed") as raised:
        verifier.verify("INVITE", URI, first)
    assert raised.value.stale
    assert (
        verifier.verify("INVITE", URI, answer(challenge, "alice", "Circle Of Life", nc="00000002")) == "alice"
    )


def test_a_node_accepts_only_its_own_nonces_so_an_answer_counts_once_in_the_cluster(clock: Clock) -> None:
    users = {"alice": "Circle Of Life"}
    one, two = (
        DigestVerifier("voicegw", users, secret=b"shared", node_id=name, clock=clock) for name in "ab"
    )
    stranger = DigestVerifier("voicegw", users, clock=clock)
    captured = answer(one.challenge(), "alice", "Circle Of Life")
    # A peer's nonce is genuine but not its own: a stale challenge, so the client retries at once.
    with pytest.raises(Unauthenticated, match="issued by 'a', another node or run") as raised:
        two.verify("INVITE", URI, captured)
    assert raised.value.stale
    assert one.verify("INVITE", URI, captured) == "alice"
    for node in (one, two):
        with pytest.raises(Unauthenticated):
            node.verify("INVITE", URI, captured)
    with pytest.raises(Unauthenticated, match="not issued here"):
        stranger.verify("INVITE", URI, answer(one.challenge(), "alice", "Circle Of Life"))


def test_the_same_answer_in_the_same_transaction_soon_after_is_a_retransmission(
    verifier: DigestVerifier, clock: Clock
) -> None:
    first = answer(verifier.challenge(), "alice", "Circle Of Life")
    assert verifier.verify("INVITE", URI, first, transaction="c1 z9hG4bK1") == "alice"
    clock.now += 4
    assert verifier.verify("INVITE", URI, first, transaction="c1 z9hG4bK1") == "alice"
    for transaction in ("c2 z9hG4bK1", "c1 z9hG4bK2", ""):
        with pytest.raises(Unauthenticated, match="replayed"):
            verifier.verify("INVITE", URI, first, transaction=transaction)
    clock.now += RETRANSMISSION_S
    with pytest.raises(Unauthenticated, match="replayed"):
        verifier.verify("INVITE", URI, first, transaction="c1 z9hG4bK1")


def test_challenges_in_the_same_instant_differ(verifier: DigestVerifier) -> None:
    assert len({verifier.challenge() for _ in range(100)}) == 100


def test_a_restarted_node_refuses_the_nonces_of_its_previous_run(clock: Clock) -> None:
    users = {"alice": "Circle Of Life"}
    before = DigestVerifier("voicegw", users, secret=b"kept", node_id="a", clock=clock)
    captured = answer(before.challenge(), "alice", "Circle Of Life")
    assert before.verify("INVITE", URI, captured) == "alice"
    after = DigestVerifier("voicegw", users, secret=b"kept", node_id="a", clock=clock)
    with pytest.raises(Unauthenticated, match="another node or run"):
        after.verify("INVITE", URI, captured)


def test_the_digest_uri_must_be_the_request_uri(verifier: DigestVerifier) -> None:
    moved = answer(verifier.challenge(), "alice", "Circle Of Life", uri="sip:other@192.0.2.1")
    with pytest.raises(BadCredentials, match=r"digest uri 'sip:other@192\.0\.2\.1' is not the Request-URI"):
        verifier.verify("INVITE", URI, moved)


@pytest.mark.parametrize("field", ["response", "nonce"])
def test_non_ascii_in_the_compared_values_is_refused_not_raised(verifier: DigestVerifier, field: str) -> None:
    good = answer(verifier.challenge(), "alice", "Circle Of Life")
    value = re.search(f'{field}="([^"]+)"', good)
    assert value is not None
    header = good.replace(value.group(1), value.group(1)[:-1] + "é")
    with pytest.raises((BadCredentials, Unauthenticated)):
        verifier.verify("INVITE", URI, header)


@pytest.mark.parametrize("node_id", ["", "a:b", "x" * 65, "nœud"])
def test_a_node_id_that_would_break_the_nonce_is_refused(node_id: str) -> None:
    with pytest.raises(ValueError, match="node id"):
        DigestVerifier("voicegw", {}, node_id=node_id)
