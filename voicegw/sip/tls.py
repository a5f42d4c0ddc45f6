"""SIP over TLS: which protocol versions and cipher suites the listener accepts.

By default TLS 1.2 and 1.3 with forward-secret suites only (ECDHE key exchange for 1.2; every
1.3 suite is). `[sip] tls_min_version` and `tls_ciphers` change that; names are OpenSSL's
("ECDHE-RSA-AES128-GCM-SHA256", "TLS_AES_128_GCM_SHA256"). pjsip takes suites by number (the
IANA code point), which OpenSSL's own table, read through Python's `ssl`, gives for each name.
"""

from __future__ import annotations

import ssl
from functools import cache

TLS_VERSIONS = ("1.2", "1.3")
"""What `tls_min_version` may be: older versions are never offered."""
DEFAULT_MIN_VERSION = "1.2"
DEFAULT_CIPHERS = (
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-CHACHA20-POLY1305",
)
TLS13_PREFIX = "TLS_"
"""OpenSSL names TLS 1.3 suites TLS_..., and no older one so."""
_CODE_POINT_MASK = 0x00FFFFFF
"""OpenSSL's cipher ids carry a protocol byte above the IANA code point that pjsip uses."""


class UnknownCipher(ValueError):
    """A cipher suite name that this machine's OpenSSL does not know."""


@cache
def _code_points() -> dict[str, int]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.set_ciphers("ALL:@SECLEVEL=0")
    return {cipher["name"]: cipher["id"] & _CODE_POINT_MASK for cipher in context.get_ciphers()}


def cipher_ids(names: tuple[str, ...]) -> list[int]:
    """pjsip's cipher numbers for OpenSSL cipher suite `names`; raises UnknownCipher."""
    known = _code_points()
    unknown = [name for name in names if name not in known]
    if unknown:
        raise UnknownCipher(f"unknown TLS cipher suite {unknown[0]!r}")
    return [known[name] for name in names]


def check_suites(minimum: str, names: tuple[str, ...]) -> None:
    """Raise ValueError when no suite of `names` serves a version from `minimum` on."""
    if "1.2" not in versions_from(minimum) and not any(name.startswith(TLS13_PREFIX) for name in names):
        raise ValueError(f"TLS {minimum} and up needs a TLS 1.3 suite ({TLS13_PREFIX}...) among the ciphers")


def versions_from(minimum: str) -> tuple[str, ...]:
    """The TLS versions accepted when `minimum` is the oldest; raises ValueError."""
    if minimum not in TLS_VERSIONS:
        raise ValueError(f"TLS version {minimum!r} is not one of {', '.join(TLS_VERSIONS)}")
    return TLS_VERSIONS[TLS_VERSIONS.index(minimum) :]
