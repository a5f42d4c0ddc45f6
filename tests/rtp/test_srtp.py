"""SDES ``a=crypto`` lines and SRTP contexts, sans-I/O: two sessions wired by hand, no sockets."""

import base64
import random

import pytest
from aiortc.rtp import RtcpByePacket, RtpPacket

from tests.rtp.helpers import deliver, drain_events
from voicegw.rtp.events import BadPacket, MediaReceived, RtcpReceived
from voicegw.rtp.packet import parse_rtp
from voicegw.rtp.session import RtpSession, RtpSessionConfig
from voicegw.rtp.srtp import (
    SUITES,
    CryptoAttribute,
    CryptoAttributeError,
    SrtpAuthError,
    SrtpContext,
    SrtpKeys,
    UnsupportedCrypto,
)

A = ("127.0.0.1", 40000)
B = ("127.0.0.1", 42000)
# RFC 4568 section 6.1's example key.
RFC_KEY = "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz"


# ------------------------------------------------------------------------------- a=crypto lines


@pytest.mark.parametrize(
    "value",
    [
        f"1 AES_CM_128_HMAC_SHA1_80 inline:{RFC_KEY}|2^20|1:4",
        f"1 AES_CM_128_HMAC_SHA1_80 inline:{RFC_KEY}|2^20|1:4 KDR=1 UNENCRYPTED_SRTCP",
        f"2 AES_CM_128_HMAC_SHA1_32 inline:{RFC_KEY}",
        f"3 AES_CM_128_HMAC_SHA1_80 inline:{RFC_KEY}|1048576",
        f"4 AES_CM_128_HMAC_SHA1_80 inline:{RFC_KEY}|7:2",
        "5 AEAD_AES_128_GCM inline:" + base64.b64encode(bytes(range(28))).decode(),
        "6 F8_128_HMAC_SHA1_80 inline:" + base64.b64encode(bytes(range(30))).decode(),
    ],
)
def test_crypto_round_trip(value: str) -> None:
    attribute = CryptoAttribute.parse(value)
    assert str(attribute) == value
    assert CryptoAttribute.parse(str(attribute)) == attribute


def test_crypto_fields() -> None:
    attribute = CryptoAttribute.parse(f"1 AES_CM_128_HMAC_SHA1_80 inline:{RFC_KEY}|2^20|1:4 KDR=1")
    assert attribute.tag == 1 and attribute.suite == "AES_CM_128_HMAC_SHA1_80"
    assert attribute.key == base64.b64decode(RFC_KEY) and len(attribute.key) == 30
    assert attribute.lifetime == "2^20" and attribute.mki == (1, 4)
    assert attribute.session_params == ("KDR=1",)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("1 AES_CM_128_HMAC_SHA1_80",
         "a=crypto:1 AES_CM_128_HMAC_SHA1_80 is not '<tag> <suite> inline:<key>'"),
        (f"x AES_CM_128_HMAC_SHA1_80 inline:{RFC_KEY}", "a=crypto tag 'x' is not a number of 1-9 digits"),
        (f"1234567890 AES_CM_128_HMAC_SHA1_80 inline:{RFC_KEY}",
         "a=crypto tag '1234567890' is not a number of 1-9 digits"),
        (f"1 AES_CM_128_HMAC_SHA1_80 uri:{RFC_KEY}",
         f"a=crypto key parameter 'uri:{RFC_KEY}' is not 'inline:<key>'"),
        (f"1 AES_CM_128_HMAC_SHA1_80 inline:{RFC_KEY};inline:{RFC_KEY}",
         "a=crypto with more than one key is not supported"),
        ("1 AES_CM_128_HMAC_SHA1_80 inline:not*base64", "a=crypto key 'not*base64' is not base64"),
        ("1 AES_CM_128_HMAC_SHA1_80 inline:" + base64.b64encode(bytes(20)).decode(),
         "a=crypto key of AES_CM_128_HMAC_SHA1_80 is 20 bytes, not 30 (key||salt)"),
        (f"1 AES_CM_128_HMAC_SHA1_80 inline:{RFC_KEY}|2^20|1:4|9",
         "a=crypto key has 3 '|' fields, at most 2 allowed"),
        (f"1 AES_CM_128_HMAC_SHA1_80 inline:{RFC_KEY}|soon",
         "a=crypto key field 'soon' is neither a lifetime nor MKI:length"),
        (f"1 AES_CM_128_HMAC_SHA1_80 inline:{RFC_KEY}|1:200", "a=crypto MKI length 200 is not 1-128"),
    ],
)  # fmt: skip
def test_crypto_errors(value: str, message: str) -> None:
    with pytest.raises(CryptoAttributeError) as info:
        CryptoAttribute.parse(value)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("6 F8_128_HMAC_SHA1_80 inline:" + base64.b64encode(bytes(30)).decode(),
         "crypto suite F8_128_HMAC_SHA1_80 is not supported"),
        (f"1 AES_CM_128_HMAC_SHA1_80 inline:{RFC_KEY}|2^20|1:4",
         "crypto tag 1: keys with an MKI are not supported"),
        (f"2 AES_CM_128_HMAC_SHA1_80 inline:{RFC_KEY} UNENCRYPTED_SRTP",
         "crypto tag 2: session parameter UNENCRYPTED_SRTP is not supported"),
    ],
)  # fmt: skip
def test_crypto_we_cannot_use(value: str, message: str) -> None:
    attribute = CryptoAttribute.parse(value)
    with pytest.raises(UnsupportedCrypto) as info:
        attribute.check_usable()
    assert str(info.value) == message


@pytest.mark.parametrize("suite", sorted(SUITES))
def test_generated_keys_are_fresh_and_sized(suite: str) -> None:
    first, second = CryptoAttribute.generate(7, suite), CryptoAttribute.generate(7, suite)
    assert len(first.key) == SUITES[suite].key_salt_length
    assert first.key != second.key
    assert first.check_usable() is SUITES[suite]
    assert CryptoAttribute.parse(str(first)) == first


def test_generate_refuses_unknown_suite() -> None:
    with pytest.raises(ValueError, match="crypto suite 'NULL' is not supported"):
        CryptoAttribute.generate(1, "NULL")


# ------------------------------------------------------------------------------------ contexts


def contexts(suite: str) -> tuple[SrtpContext, SrtpContext]:
    """Two ends of one SDES exchange: each protects with its own key, checks with the other's."""
    a, b = CryptoAttribute.generate(1, suite).key, CryptoAttribute.generate(1, suite).key
    return SrtpContext(SrtpKeys(suite, a, b)), SrtpContext(SrtpKeys(suite, b, a))


def rtp(seq: int, payload: bytes = bytes(range(160))) -> bytes:
    return RtpPacket(
        payload_type=0, sequence_number=seq, timestamp=seq * 160, ssrc=0x1234, payload=payload
    ).serialize()


@pytest.mark.parametrize("suite", sorted(SUITES))
def test_protect_unprotect(suite: str) -> None:
    alice, bob = contexts(suite)
    plain = rtp(1)
    protected = alice.protect(plain)
    assert protected[:12] == plain[:12]  # the header stays readable
    assert plain[12:] not in protected  # the payload does not
    assert bob.unprotect(protected) == plain
    bye = bytes(RtcpByePacket(sources=[0x1234]))
    assert bob.unprotect_rtcp(alice.protect_rtcp(bye)) == bye
    # The other direction uses the other key.
    assert alice.unprotect(bob.protect(rtp(2))) == rtp(2)


def test_tampered_or_foreign_packets_fail_authentication() -> None:
    alice, bob = contexts("AES_CM_128_HMAC_SHA1_80")
    protected = bytearray(alice.protect(rtp(1)))
    protected[20] ^= 1
    with pytest.raises(SrtpAuthError) as info:
        bob.unprotect(bytes(protected))
    assert str(info.value) == "SRTP packet of 182 bytes: authentication failure" and not info.value.replay
    with pytest.raises(SrtpAuthError, match="authentication failure"):
        bob.unprotect(rtp(2))  # plain RTP where SRTP is due
    with pytest.raises(SrtpAuthError, match="SRTCP"):
        bob.unprotect_rtcp(bytes(RtcpByePacket(sources=[1])))


def test_replay_is_refused() -> None:
    alice, bob = contexts("AES_CM_128_HMAC_SHA1_32")
    protected = alice.protect(rtp(5))
    bob.unprotect(protected)
    with pytest.raises(SrtpAuthError) as info:
        bob.unprotect(protected)
    assert info.value.replay


def test_rekey_inbound() -> None:
    suite = "AES_CM_128_HMAC_SHA1_80"
    _, bob = contexts(suite)
    new_key = CryptoAttribute.generate(1, suite).key
    alice_again = SrtpContext(SrtpKeys(suite, new_key, b"\0" * 30))
    with pytest.raises(SrtpAuthError):
        bob.unprotect(alice_again.protect(rtp(1)))
    bob.rekey_inbound(new_key)
    assert bob.unprotect(alice_again.protect(rtp(2))) == rtp(2)


# --------------------------------------------------------------------------- in the RTP session


def session(remote: tuple[str, int], seed: int, keys: SrtpKeys | None) -> RtpSession:
    config = RtpSessionConfig(clock_rate=8000, payload_type=0, remote=remote, srtp=keys)
    return RtpSession(config, now=0.0, rng=random.Random(seed))


def test_sessions_exchange_srtp_and_drop_forgeries() -> None:
    suite = "AES_CM_128_HMAC_SHA1_80"
    ka, kb = CryptoAttribute.generate(1, suite).key, CryptoAttribute.generate(1, suite).key
    a = session(B, 1, SrtpKeys(suite, ka, kb))
    b = session(A, 2, SrtpKeys(suite, kb, ka))
    payload = bytes(range(160))
    for i in range(3):
        a.send_media(payload, 160, marker=False, now=i * 0.02)
    sent = a.datagrams_to_send(0.04)
    assert all(payload not in d.data for d in sent)  # encrypted on the wire
    deliver(sent, b, to=B, source=A, now=0.05)
    media = [e for e in drain_events(b) if isinstance(e, MediaReceived)]
    assert [m.payload for m in media] == [payload] * 3

    # A forged packet (plain RTP from a stranger) is counted and latches nothing.
    stranger = ("127.0.0.1", 50000)
    header = parse_rtp(sent[0].data)
    forged = RtpPacket(payload_type=0, sequence_number=(header.sequence_number + 100) % 65536,
                       timestamp=header.timestamp, ssrc=header.ssrc, payload=payload)  # fmt: skip
    b.receive(forged.serialize(), stranger, 0.06)
    b.receive(sent[1].data, A, 0.06)  # a replay
    bad = [e for e in drain_events(b) if isinstance(e, BadPacket)]
    assert [e.reason for e in bad] == ["srtp_auth", "srtp_replay"]
    assert b.remote == A and b.bad_packets["srtp_auth"] == 1

    # RTCP goes as SRTCP both ways, BYE included.
    a.close(0.1)
    (bye,) = a.datagrams_to_send(0.1)
    assert bye.rtcp
    assert b"voicegw" not in bye.data  # the SDES CNAME is encrypted
    deliver([bye], b, to=B, source=A, now=0.1)
    assert [e.kinds for e in drain_events(b) if isinstance(e, RtcpReceived)] == [("sr", "sdes", "bye")]
    assert b.remote_bye


def test_forgeries_never_relatch_even_after_silence() -> None:
    suite = "AES_CM_128_HMAC_SHA1_80"
    ka, kb = CryptoAttribute.generate(1, suite).key, CryptoAttribute.generate(1, suite).key
    a = session(B, 1, SrtpKeys(suite, ka, kb))
    b = session(A, 2, SrtpKeys(suite, kb, ka))
    a.send_media(bytes(160), 160, marker=False, now=0.0)
    deliver(a.datagrams_to_send(0.0), b, to=B, source=A, now=0.0)
    # The latched peer went quiet: a stranger sends a perfect sequence, plain or under a wrong key.
    wrong_key = SrtpContext(SrtpKeys(suite, CryptoAttribute.generate(1, suite).key, ka))
    for i in range(50):
        plain = rtp(500 + i)
        forged = plain if i % 2 else wrong_key.protect(plain)
        b.receive(forged, ("127.0.0.1", 50000), 5.0 + i * 0.02)
    assert b.remote == A and b.remote_ssrc is not None
    assert b.bad_packets == {"srtp_auth": 50}
