"""SIP over TLS: TLS 1.2 and 1.3 with forward-secret suites by default, probed with `openssl s_client`."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from voicegw.rtp.clock import MediaClock
from voicegw.sip import tls
from voicegw.sip.tls import UnknownCipher
from voicegw.sip.ua import SipConfig, SipUserAgent
from voicegw.testing.harness import (
    HOST,
    EchoServer,
    free_tcp_port,
    free_udp_port,
    self_signed_certificate,
    tls_config,
)

pytestmark = pytest.mark.timeout(60)

HANDSHAKE_TIMEOUT_S = 15.0


def handshake(port: int, *args: str) -> str | None:
    """The protocol `openssl s_client` negotiated with these options, or None if refused."""
    result = subprocess.run(
        ["openssl", "s_client", "-connect", f"{HOST}:{port}", "-brief", *args],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=HANDSHAKE_TIMEOUT_S,
    )  # fmt: skip
    for line in result.stderr.splitlines():
        if line.startswith("Protocol version:"):
            return line.split(":", 1)[1].strip()
    return None


@pytest.fixture
def tls_server(voicegw: Callable[..., EchoServer], tmp_path: Path) -> Callable[[str], int]:
    def start(more: str = "") -> int:
        config, port = tls_config(tmp_path)
        voicegw(config + more)
        return port

    return start


def test_tls_1_3_and_forward_secret_1_2_are_accepted_static_rsa_and_1_1_refused(
    tls_server: Callable[[str], int],
) -> None:
    port = tls_server("")
    assert handshake(port, "-tls1_3") == "TLSv1.3"
    assert handshake(port, "-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256") == "TLSv1.2"
    assert handshake(port, "-tls1_2", "-cipher", "ECDHE-RSA-CHACHA20-POLY1305") == "TLSv1.2"
    for static_rsa in ("AES128-GCM-SHA256", "AES256-GCM-SHA384", "AES128-SHA"):
        assert handshake(port, "-tls1_2", "-cipher", static_rsa) is None, static_rsa
    # The client allows 1.1 at security level 0: only the server can refuse it.
    assert handshake(port, "-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0") is None


def test_tls_settings_narrow_versions_and_suites(tls_server: Callable[[str], int]) -> None:
    port = tls_server("tls_min_version = '1.3'\n")
    assert handshake(port, "-tls1_3") == "TLSv1.3"
    assert handshake(port, "-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256") is None

    port = tls_server("tls_ciphers = ['ECDHE-RSA-AES256-GCM-SHA384']\n")
    assert handshake(port, "-tls1_2", "-cipher", "ECDHE-RSA-AES256-GCM-SHA384") == "TLSv1.2"
    assert handshake(port, "-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256") is None


async def test_an_unknown_suite_set_in_code_stops_the_start_and_leaves_no_socket(tmp_path: Path) -> None:
    cert, key = self_signed_certificate(tmp_path)
    clock = MediaClock()
    await clock.start()
    config = SipConfig(
        host=HOST, port=free_udp_port(), tcp=False, tls_port=free_tcp_port(), tls_cert=str(cert),
        tls_key=str(key), tls_ciphers=("NOT-A-SUITE",),
    )  # fmt: skip
    try:
        failed = SipUserAgent(config, clock)
        with pytest.raises(UnknownCipher, match="NOT-A-SUITE"):
            await failed.start()
        # `failed` is still referenced, so the garbage collector has not torn pjsua2 down: the
        # failed start did, and the same ports are free again.
        ua = SipUserAgent(replace(config, tls_ciphers=tls.DEFAULT_CIPHERS), clock)
        await ua.start()
        await ua.stop()
        del failed
    finally:
        await clock.stop()


def test_suite_names_map_to_their_iana_numbers_and_versions_run_up_from_the_minimum() -> None:
    assert tls.cipher_ids(("TLS_AES_128_GCM_SHA256", "ECDHE-RSA-AES128-GCM-SHA256")) == [0x1301, 0xC02F]
    with pytest.raises(UnknownCipher, match="'RC4-NOPE'"):
        tls.cipher_ids(("RC4-NOPE",))
    assert tls.versions_from("1.2") == ("1.2", "1.3") and tls.versions_from("1.3") == ("1.3",)
    with pytest.raises(ValueError, match=r"'1\.0' is not one of 1\.2, 1\.3"):
        tls.versions_from("1.0")
    tls.check_suites("1.2", ("ECDHE-RSA-AES128-GCM-SHA256",))
    with pytest.raises(ValueError, match=r"needs a TLS 1\.3 suite"):
        tls.check_suites("1.3", ("ECDHE-RSA-AES128-GCM-SHA256",))
