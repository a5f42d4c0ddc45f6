"""SRTP (RFC 3711) keyed by SDES (RFC 4568 ``a=crypto``), sans-I/O.

`CryptoAttribute` is one ``a=crypto`` line: parsed, formatted and generated here, where the
suites live, so SDP (`voicegw.sip.sdp`) only picks among them. `SrtpContext` wraps two
pylibsrtp sessions (libsrtp, in C): outbound protected with our key (the one our answer
carries), inbound checked with the peer's (the one its offer carries). No socket, no clock.
"""

from __future__ import annotations

import base64
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TypeAlias

import pylibsrtp

SrtpMode: TypeAlias = Literal["off", "optional", "required"]
"""Whether calls may (optional), must (required) or may not (off) use SRTP."""

SRTP_MODES: tuple[SrtpMode, ...] = ("off", "optional", "required")


@dataclass(frozen=True, slots=True)
class SrtpSuite:
    """One SDES crypto suite and the libsrtp profile that implements it."""

    name: str
    profile: int
    key_length: int
    salt_length: int

    @property
    def key_salt_length(self) -> int:
        """Bytes of the inline ``key||salt``."""
        return self.key_length + self.salt_length


SUITES: dict[str, SrtpSuite] = {
    suite.name: suite
    for suite in (
        SrtpSuite("AES_CM_128_HMAC_SHA1_80", pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80, 16, 14),
        SrtpSuite("AES_CM_128_HMAC_SHA1_32", pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_32, 16, 14),
        # RFC 7714 section 12: the GCM suites' SDES names and 12-byte salts.
        SrtpSuite("AEAD_AES_128_GCM", pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM, 16, 12),
        SrtpSuite("AEAD_AES_256_GCM", pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_256_GCM, 32, 12),
    )
}
"""Every suite libsrtp gives us, by SDES name."""

MAX_TAG = 999_999_999
"""RFC 4568 section 9.1: a tag is 1 to 9 digits."""

_LIFETIME = re.compile(r"(2\^)?(\d+)")
_MKI = re.compile(r"(\d+):(\d+)")


class SrtpError(ValueError):
    """Base of the peer's bad SRTP input (a crypto line, a packet)."""


class CryptoAttributeError(SrtpError):
    """An ``a=crypto`` value is malformed; the message says which part."""


class UnsupportedCrypto(SrtpError):
    """A well-formed ``a=crypto`` we cannot use (unknown suite, MKI, session parameters)."""


class SrtpAuthError(SrtpError):
    """An SRTP/SRTCP packet failed its check: forged, damaged, keyed otherwise, or replayed."""

    def __init__(self, message: str, *, replay: bool) -> None:
        super().__init__(message)
        self.replay = replay


@dataclass(frozen=True, slots=True)
class CryptoAttribute:
    """One ``a=crypto:<tag> <suite> inline:<key||salt>[|lifetime][|MKI:length] [params]`` line."""

    tag: int
    suite: str
    key: bytes
    """The master key followed by the master salt."""

    lifetime: str | None = None
    """As written (``2^31`` or ``1048576``): packets before re-keying is due."""

    mki: tuple[int, int] | None = None
    """(MKI value, its length in bytes in each packet), when the key has one."""

    session_params: tuple[str, ...] = ()
    """Session parameters (``KDR=1``, ``UNENCRYPTED_SRTP``...), as written."""

    @classmethod
    def parse(cls, value: str) -> CryptoAttribute:
        """Parse the value after ``a=crypto:``; raises `CryptoAttributeError`."""
        parts = value.split()
        if len(parts) < 3:
            raise CryptoAttributeError(f"a=crypto:{value} is not '<tag> <suite> inline:<key>'")
        tag_text, suite, key_params, *params = parts
        if not (tag_text.isdigit() and len(tag_text) <= 9):
            raise CryptoAttributeError(f"a=crypto tag {tag_text!r} is not a number of 1-9 digits")
        if ";" in key_params:
            raise CryptoAttributeError("a=crypto with more than one key is not supported")
        method, _, key_info = key_params.partition(":")
        if method != "inline" or not key_info:
            raise CryptoAttributeError(f"a=crypto key parameter {key_params!r} is not 'inline:<key>'")
        key_text, *extra = key_info.split("|")
        try:
            key = base64.b64decode(key_text, validate=True)
        except ValueError:  # binascii.Error, or a str with non-ASCII characters (plain ValueError)
            raise CryptoAttributeError(f"a=crypto key {key_text!r} is not base64") from None
        known = SUITES.get(suite)
        if known is not None and len(key) != known.key_salt_length:
            raise CryptoAttributeError(
                f"a=crypto key of {suite} is {len(key)} bytes, not {known.key_salt_length} (key||salt)"
            )
        lifetime, mki = _key_extras(extra)
        return cls(int(tag_text), suite, key, lifetime, mki, tuple(params))

    def __str__(self) -> str:
        """The value after ``a=crypto:``."""
        key_info = base64.b64encode(self.key).decode()
        if self.lifetime is not None:
            key_info += f"|{self.lifetime}"
        if self.mki is not None:
            key_info += f"|{self.mki[0]}:{self.mki[1]}"
        return " ".join((str(self.tag), self.suite, f"inline:{key_info}", *self.session_params))

    @classmethod
    def generate(cls, tag: int, suite: str) -> CryptoAttribute:
        """Our own fresh key||salt for `suite` (from the OS's CSPRNG)."""
        if not 0 <= tag <= MAX_TAG:
            raise ValueError(f"crypto tag {tag} is out of range")
        if suite not in SUITES:
            raise ValueError(f"crypto suite {suite!r} is not supported")
        return cls(tag, suite, secrets.token_bytes(SUITES[suite].key_salt_length))

    def check_usable(self) -> SrtpSuite:
        """The suite, if we can key SRTP from this line; else raises `UnsupportedCrypto`."""
        suite = SUITES.get(self.suite)
        if suite is None:
            raise UnsupportedCrypto(f"crypto suite {self.suite} is not supported")
        # pylibsrtp cannot set an MKI; session parameters change the keying in ways we do not do.
        if self.mki is not None:
            raise UnsupportedCrypto(f"crypto tag {self.tag}: keys with an MKI are not supported")
        if self.session_params:
            raise UnsupportedCrypto(
                f"crypto tag {self.tag}: session parameter {self.session_params[0]} is not supported"
            )
        return suite


def _key_extras(extra: list[str]) -> tuple[str | None, tuple[int, int] | None]:
    """The optional ``|lifetime`` and ``|MKI:length`` after the key, in that order."""
    if len(extra) > 2:
        raise CryptoAttributeError(f"a=crypto key has {len(extra)} '|' fields, at most 2 allowed")
    lifetime: str | None = None
    mki: tuple[int, int] | None = None
    for index, item in enumerate(extra):
        if (match := _MKI.fullmatch(item)) is not None:
            mki = (int(match[1]), int(match[2]))
            if not 1 <= mki[1] <= 128:
                raise CryptoAttributeError(f"a=crypto MKI length {mki[1]} is not 1-128")
        elif index == 0 and _LIFETIME.fullmatch(item):
            lifetime = item
        else:
            raise CryptoAttributeError(f"a=crypto key field {item!r} is neither a lifetime nor MKI:length")
    return lifetime, mki


@dataclass(frozen=True, slots=True)
class SrtpKeys:
    """What SDES settled for one media stream."""

    suite: str
    local_key: bytes
    """Ours (our answer's ``a=crypto``): outbound packets are protected with it."""

    remote_key: bytes
    """The peer's (its offer's ``a=crypto``): inbound packets are checked with it."""


class SrtpContext:
    """Protect what we send, unprotect what we receive, for one media stream (RTP and RTCP)."""

    def __init__(self, keys: SrtpKeys) -> None:
        suite = SUITES.get(keys.suite)
        if suite is None:
            raise ValueError(f"crypto suite {keys.suite!r} is not supported")
        self.suite = suite
        self._outbound = pylibsrtp.Session(
            pylibsrtp.Policy(keys.local_key, pylibsrtp.Policy.SSRC_ANY_OUTBOUND, srtp_profile=suite.profile)
        )
        self.remote_key = keys.remote_key
        self._inbound = self._inbound_session(keys.remote_key)

    def _inbound_session(self, key: bytes) -> pylibsrtp.Session:
        # Any inbound SSRC: libsrtp starts a stream per source, so a new SSRC needs no re-keying.
        return pylibsrtp.Session(
            pylibsrtp.Policy(key, pylibsrtp.Policy.SSRC_ANY_INBOUND, srtp_profile=self.suite.profile)
        )

    def rekey_inbound(self, remote_key: bytes) -> None:
        """The peer offered a new key (re-INVITE): check its packets with that one from now on."""
        if remote_key != self.remote_key:
            self.remote_key = remote_key
            self._inbound = self._inbound_session(remote_key)

    def protect(self, rtp: bytes) -> bytes:
        return self._outbound.protect(rtp)

    def protect_rtcp(self, rtcp: bytes) -> bytes:
        return self._outbound.protect_rtcp(rtcp)

    def unprotect(self, srtp: bytes) -> bytes:
        """The RTP packet inside; raises `SrtpAuthError`."""
        return _checked(self._inbound.unprotect, srtp, "SRTP")

    def unprotect_rtcp(self, srtcp: bytes) -> bytes:
        """The RTCP compound packet inside; raises `SrtpAuthError`."""
        return _checked(self._inbound.unprotect_rtcp, srtcp, "SRTCP")


def _checked(unprotect: Callable[[bytes], bytes], data: bytes, kind: str) -> bytes:
    try:
        return unprotect(data)
    except (pylibsrtp.Error, ValueError) as exc:
        # libsrtp's messages: "authentication failure", "replay check failed (...)", "error parsing data".
        reason = str(exc)
        raise SrtpAuthError(
            f"{kind} packet of {len(data)} bytes: {reason}", replay="replay" in reason
        ) from None
