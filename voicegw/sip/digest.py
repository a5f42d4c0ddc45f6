"""SIP digest authentication of incoming requests (RFC 3261 §22, RFC 2617 / RFC 7616), no I/O.

pjsua authenticates what we send (its client side) but not what we receive: it hands every
INVITE to the application. So the server challenges callers itself: a 401 carrying
``WWW-Authenticate`` from `DigestVerifier.challenge`, and the caller's next INVITE carries an
``Authorization`` header that `DigestVerifier.verify` checks.

Nonces are stateless (a timestamp and the issuing instance, signed), good for `NONCE_TTL_S`,
and bound to the instance that issued them: the node named `node_id`, in this run of the process.
Only that instance accepts them, and it refuses a (nonce, cnonce, nc) it has seen once, so one
captured ``Authorization`` is accepted at most once in a whole cluster (and never again after a
restart, which forgets the replay memory but also changes the instance). Replay memory needs no
sharing; the price is that a client must answer a challenge to the node that sent it, which a
client talking to one node does, and a dispatcher does when it keeps a Call-ID on one node. Nodes
sharing a secret recognise each other's nonces and answer them with a fresh challenge marked
``stale`` (the client retries with the same password) rather than as forgeries.

The digest-uri must be the request's Request-URI, so an answer cannot be moved to another request.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import string
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

NONCE_TTL_S = 300.0
"""How long a challenge may be answered: long enough for a softphone's user, short for a replay."""
RETRANSMISSION_S = 32.0
"""How long a client retransmits an INVITE (RFC 3261 Timer B, 64*T1): the same credentials in
the same transaction within it are a retransmission, not a replay."""

ALGORITHMS = {"MD5": "md5", "SHA-256": "sha256"}
"""What callers may answer with; the challenge offers MD5, which every SIP client speaks."""

NODE_ID_CHARS = frozenset(string.ascii_letters + string.digits + "._-")
MAX_NODE_ID = 64

NODE_ID_RULE = f"1-{MAX_NODE_ID} letters, digits, '.', '_' or '-'"

_PARAM = re.compile(r'\s*([\w-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))\s*(?:,|$)')


def _same(a: str, b: str) -> bool:
    """Constant-time comparison of a computed value with a peer's, which may hold any character
    (`hmac.compare_digest` raises TypeError on non-ASCII str: compare the UTF-8 bytes)."""
    return hmac.compare_digest(a.encode(errors="surrogatepass"), b.encode(errors="surrogatepass"))


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


@dataclass(frozen=True, slots=True)
class _Use:
    """When an answer's nonce was issued and the answer first taken, and in which transaction."""

    issued: float
    at: float
    transaction: str


class DigestVerifier:
    """Challenges and checks callers against a table of user names and passwords."""

    def __init__(
        self,
        realm: str,
        users: Mapping[str, str],
        *,
        secret: bytes | None = None,
        node_id: str = "voicegw",
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`users`: name -> password. `secret` signs nonces (nodes sharing it recognise each
        other's); `node_id` names this node in its nonces. Raises `ValueError` on a bad node id."""
        if not valid_node_id(node_id):
            raise ValueError(f"node id {node_id!r}: {NODE_ID_RULE}")
        self.realm = realm
        self.users = dict(users)
        self.node_id = node_id
        # The run of the process: a restart forgets the replay memory, so it refuses older nonces.
        self.instance = f"{node_id}/{secrets.token_hex(4)}"
        self._secret = secret if secret is not None else secrets.token_bytes(32)
        self._clock = clock
        self._seen: dict[tuple[str, str, str], _Use] = {}

    def challenge(self, *, stale: bool = False) -> str:
        """A ``WWW-Authenticate`` header value with a fresh nonce."""
        value = f'Digest realm="{self.realm}", nonce="{self._nonce()}", algorithm=MD5, qop="auth"'
        return value + (", stale=true" if stale else "")

    def verify(
        self, method: str, request_uri: str, authorization: str | None, *, transaction: str = ""
    ) -> str:
        """The authenticated user name; raises `Unauthenticated` (401) or `BadCredentials` (403).

        `transaction` identifies the request's transaction (its Call-ID and top Via branch): the
        same answer in the same transaction shortly after is a retransmission, and is taken.
        """
        if not authorization:
            raise Unauthenticated("no credentials")
        return self.check(method, request_uri, DigestResponse.parse(authorization), transaction=transaction)

    def check(self, method: str, request_uri: str, answer: DigestResponse, *, transaction: str = "") -> str:
        """`verify` for an answer already parsed (to look at its user name first)."""
        if answer.realm != self.realm:
            raise Unauthenticated(f"realm {answer.realm!r} is not ours")
        if answer.algorithm not in ALGORITHMS:
            raise Unauthenticated(f"algorithm {answer.algorithm!r} is not supported")
        if answer.qop not in (None, "auth") or (answer.qop and not (answer.cnonce and answer.nc)):
            raise Unauthenticated("qop=auth needs cnonce and nc")
        issued = self._issued(answer.nonce)
        now = self._clock()
        if issued is None:
            raise Unauthenticated("nonce was not issued here")
        stamp, instance = issued
        if instance != self.instance:
            issuer = instance.split("/")[0]
            raise Unauthenticated(f"nonce was issued by {issuer!r}, another node or run", stale=True)
        if now - stamp > NONCE_TTL_S:
            raise Unauthenticated("nonce expired", stale=True)
        if answer.uri != request_uri:
            raise BadCredentials(f"digest uri {answer.uri[:80]!r} is not the Request-URI")
        password = self.users.get(answer.username)
        if password is None or not _same(answer.response, answer.expected(method, password)):
            raise BadCredentials(f"wrong credentials for user {answer.username[:80]!r}")
        self._forget_before(now - NONCE_TTL_S)
        use = (answer.nonce, answer.cnonce or "", answer.nc or "")
        seen = self._seen.get(use)
        if seen is None:
            self._seen[use] = _Use(stamp, now, transaction)
        elif not (transaction and seen.transaction == transaction and now - seen.at < RETRANSMISSION_S):
            raise Unauthenticated("credentials replayed", stale=True)
        return answer.username

    def _nonce(self) -> str:
        # The salt: two challenges in the same millisecond must still differ.
        body = f"{self._clock():.3f}:{self.instance}:{secrets.token_hex(4)}"
        return base64.urlsafe_b64encode(f"{body}:{self._sign(body)}".encode()).decode()

    def _issued(self, nonce: str) -> tuple[float, str] | None:
        """When and by which instance a nonce we signed was issued; None for any other string."""
        try:
            body, _, signature = base64.urlsafe_b64decode(nonce.encode()).decode().rpartition(":")
            stamp, instance, _salt = body.split(":")
            issued = float(stamp)
        except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors too
            return None
        if not _same(signature, self._sign(body)):
            return None
        return issued, instance

    def _sign(self, body: str) -> str:
        return hmac.new(self._secret, body.encode(), hashlib.sha256).hexdigest()[:32]

    def _forget_before(self, horizon: float) -> None:
        for use in [use for use, seen in self._seen.items() if seen.issued < horizon]:
            del self._seen[use]


def valid_node_id(name: str) -> bool:
    """Whether `name` may name a node in its nonces (`NODE_ID_RULE`)."""
    return 0 < len(name) <= MAX_NODE_ID and set(name) <= NODE_ID_CHARS
