"""SIP digest authentication of incoming requests (RFC 3261 §22, RFC 2617 / RFC 7616), no I/O.

pjsua authenticates what we send (its client side) but not what we receive: it hands every
INVITE to the application. So the server challenges callers itself: a 401 carrying
``WWW-Authenticate`` from `DigestVerifier.challenge`, and the caller's next INVITE carries an
``Authorization`` header that `DigestVerifier.verify` checks.

Nonces are stateless (a timestamp signed with a per-process secret), so any node behind a
dispatcher can check its own; a nonce is good for `NONCE_TTL_S`, and a (nonce, cnonce, nc) seen
once is refused as a replay.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

NONCE_TTL_S = 300.0
"""How long a challenge may be answered: long enough for a softphone's user, short for a replay."""

ALGORITHMS = {"MD5": "md5", "SHA-256": "sha256"}
"""What callers may answer with; the challenge offers MD5, which every SIP client speaks."""

_PARAM = re.compile(r'\s*([\w-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))\s*(?:,|$)')


def _same(ours: str, theirs: str) -> bool:
    """Constant-time comparison of a computed value with a peer's, which may hold any character
    (`hmac.compare_digest` raises TypeError on non-ASCII str: compare the UTF-8 bytes)."""
    return hmac.compare_digest(ours.encode(), theirs.encode(errors="surrogatepass"))


class DigestError(Exception):
    """An ``Authorization`` header that does not authenticate the request."""


class Unauthenticated(DigestError):
    """No credentials, or credentials for a nonce we no longer accept: challenge again (401)."""

    def __init__(self, message: str, *, stale: bool = False) -> None:
        super().__init__(message)
        self.stale = stale
        """True when only the nonce was at fault: the client may retry with the same password."""


class BadCredentials(DigestError):
    """A well-formed answer to our challenge that is wrong (unknown user, wrong password): 403."""


@dataclass(frozen=True, slots=True)
class DigestResponse:
    """The parameters of an ``Authorization: Digest ...`` header."""

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: str = "MD5"
    qop: str | None = None
    cnonce: str | None = None
    nc: str | None = None

    @classmethod
    def parse(cls, header: str) -> DigestResponse:
        """Parse a header value; raises `Unauthenticated` naming what is missing or malformed."""
        scheme, _, rest = header.strip().partition(" ")
        if scheme.lower() != "digest":
            raise Unauthenticated(f"authorization scheme {scheme!r} is not Digest")
        params: dict[str, str] = {}
        position = 0
        rest = rest.strip()
        while position < len(rest):
            match = _PARAM.match(rest, position)
            if match is None:
                raise Unauthenticated(f"malformed digest parameters at {rest[position:][:40]!r}")
            name, quoted, token = match.groups()
            params[name.lower()] = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else token
            position = match.end()
        missing = [p for p in ("username", "realm", "nonce", "uri", "response") if p not in params]
        if missing:
            raise Unauthenticated(f"digest parameter {missing[0]!r} is missing")
        return cls(
            username=params["username"],
            realm=params["realm"],
            nonce=params["nonce"],
            uri=params["uri"],
            response=params["response"].lower(),
            algorithm=params.get("algorithm", "MD5").upper(),
            qop=params.get("qop"),
            cnonce=params.get("cnonce"),
            nc=params.get("nc"),
        )

    def expected(self, method: str, password: str) -> str:
        """The response a client knowing `password` computes (RFC 7616 §3.4.1)."""
        name = ALGORITHMS[self.algorithm]

        def h(text: str) -> str:
            return hashlib.new(name, text.encode()).hexdigest()

        ha1 = h(f"{self.username}:{self.realm}:{password}")
        ha2 = h(f"{method}:{self.uri}")
        if self.qop is None:
            return h(f"{ha1}:{self.nonce}:{ha2}")
        return h(f"{ha1}:{self.nonce}:{self.nc}:{self.cnonce}:{self.qop}:{ha2}")


class DigestVerifier:
    """Challenges and checks callers against a table of user names and passwords."""

    def __init__(
        self,
        realm: str,
        users: Mapping[str, str],
        *,
        secret: bytes | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`users`: name -> password. `secret` signs nonces; nodes sharing one accept each other's."""
        self.realm = realm
        self.users = dict(users)
        self._secret = secret if secret is not None else secrets.token_bytes(32)
        self._clock = clock
        self._seen: dict[tuple[str, str, str], float] = {}

    def challenge(self, *, stale: bool = False) -> str:
        """A ``WWW-Authenticate`` header value with a fresh nonce."""
        value = f'Digest realm="{self.realm}", nonce="{self._nonce()}", algorithm=MD5, qop="auth"'
        return value + (", stale=true" if stale else "")

    def verify(self, method: str, authorization: str | None) -> str:
        """The authenticated user name; raises `Unauthenticated` (401) or `BadCredentials` (403)."""
        if not authorization:
            raise Unauthenticated("no credentials")
        answer = DigestResponse.parse(authorization)
        if answer.realm != self.realm:
            raise Unauthenticated(f"realm {answer.realm!r} is not ours")
        if answer.algorithm not in ALGORITHMS:
            raise Unauthenticated(f"algorithm {answer.algorithm!r} is not supported")
        if answer.qop not in (None, "auth") or (answer.qop and not (answer.cnonce and answer.nc)):
            raise Unauthenticated("qop=auth needs cnonce and nc")
        issued = self._issued_at(answer.nonce)
        now = self._clock()
        if issued is None:
            raise Unauthenticated("nonce was not issued here")
        if now - issued > NONCE_TTL_S:
            raise Unauthenticated("nonce expired", stale=True)
        password = self.users.get(answer.username)
        if password is None or not _same(answer.expected(method, password), answer.response):
            raise BadCredentials(f"wrong credentials for user {answer.username!r}")
        self._forget_before(now - NONCE_TTL_S)
        use = (answer.nonce, answer.cnonce or "", answer.nc or "")
        if use in self._seen:
            raise Unauthenticated("credentials replayed", stale=True)
        self._seen[use] = issued
        return answer.username

    def _nonce(self) -> str:
        stamp = f"{self._clock():.3f}"
        return base64.urlsafe_b64encode(f"{stamp}:{self._sign(stamp)}".encode()).decode()

    def _issued_at(self, nonce: str) -> float | None:
        try:
            stamp, signature = base64.urlsafe_b64decode(nonce.encode()).decode().split(":")
            issued = float(stamp)
        except ValueError:
            return None
        return issued if _same(signature, self._sign(stamp)) else None

    def _sign(self, stamp: str) -> str:
        return hmac.new(self._secret, stamp.encode(), hashlib.sha256).hexdigest()[:32]

    def _forget_before(self, horizon: float) -> None:
        for use in [use for use, issued in self._seen.items() if issued < horizon]:
            del self._seen[use]
