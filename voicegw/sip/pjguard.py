"""The request guard's I/O shell: a `RequestGuard` behind pjsip's native request hook.

`voicegw/sip/native/request_guard.c`, compiled into pjsua2's extension by
`scripts/build_pjsua2.sh`, shows every incoming request (ACK aside) to one C callback ahead of
pjsip's transaction layer. `PjRequestGuard` is that callback: it turns the C arguments into an
`IncomingRequest`, asks the guard, and writes a `Refusal` back as the reason phrase and header
lines the C side puts on a stateless response. It runs on the thread that pumps pjsua2 (the
event loop's) for every request, so it does no more than that, and nothing it does may raise
into C: a failing guard is logged and the request answered 500.
"""

from __future__ import annotations

import ctypes
import importlib.util
import re
from collections.abc import Callable

import structlog

from voicegw.sip.guard import IncomingRequest, Refusal, RequestGuard

log = structlog.get_logger(__name__)

EXTENSION = "_pjsua2"
"""pjsua2's compiled module, which holds the hook's exported functions."""
OUT_LEN = 2048
"""GUARD_OUT_LEN in request_guard.c: room for the reason and header lines, NUL included."""
MAX_HEADERS = 16
"""GUARD_MAX_HEADERS in request_guard.c."""
GUARD_FAILED = Refusal(500, "Server Internal Error")

_TRANSPORTS = {b"UDP": "udp", b"UDP6": "udp", b"TCP": "tcp", b"TCP6": "tcp", b"TLS": "tls", b"TLS6": "tls"}
_TOKEN = re.compile(r"[!%'*+\-.0-9A-Z^_`a-z|~]+")
_TEXT = re.compile(r"[^\x00-\x1f\x7f]*")

GuardCallback = ctypes.CFUNCTYPE(
    ctypes.c_int,
    ctypes.c_void_p,  # method (not NUL-terminated)
    ctypes.c_size_t,
    ctypes.c_char_p,  # source address
    ctypes.c_int,  # source port
    ctypes.c_char_p,  # transport type name
    ctypes.c_int,  # in dialog
    ctypes.c_void_p,  # the whole message
    ctypes.c_size_t,
    ctypes.c_void_p,  # out: reason and header lines
    ctypes.c_size_t,
)


class GuardUnavailable(RuntimeError):
    """pjsua2's extension has no request hook (a wheel not built by scripts/build_pjsua2.sh)."""


def refusal_text(refusal: Refusal) -> bytes:
    """The reason phrase and header lines for request_guard.c, CRLF-separated, NUL-ended.

    Raises ValueError for what cannot go on the wire as given: a status outside 300-699, a
    line break or control character in a value, a header name that is not a token, too many
    headers or too much text.
    """
    if not 300 <= refusal.status <= 699:
        raise ValueError(f"a refusal's status must be 300-699, not {refusal.status}")
    if len(refusal.headers) > MAX_HEADERS:
        raise ValueError(f"a refusal carries at most {MAX_HEADERS} headers, not {len(refusal.headers)}")
    lines = [_text(refusal.reason, "reason")]
    for name, value in refusal.headers:
        if not _TOKEN.fullmatch(name):
            raise ValueError(f"{name!r} is not a header name")
        lines.append(f"{name}: {_text(value, name)}")
    text = "\r\n".join(lines).encode() + b"\0"
    if len(text) > OUT_LEN:
        raise ValueError(f"a refusal's reason and headers take {len(text)} bytes, more than {OUT_LEN}")
    return text


def _text(value: str, what: str) -> str:
    if not _TEXT.fullmatch(value):
        raise ValueError(f"{what}: {value!r} has a line break or control character")
    return value


class PjRequestGuard:
    """Connects `guard` to pjsip's request hook; `now` is the clock handed to it (the loop's).

    Install after pjsua2's `libInit` and before its transports exist, uninstall before
    `libDestroy`; keep the object referenced in between (C holds a pointer into it).
    """

    def __init__(self, guard: RequestGuard, now: Callable[[], float]) -> None:
        self._guard = guard
        self._now = now
        self._callback = GuardCallback(self._on_request)
        self._lib = _extension()

    def install(self) -> None:
        status = self._lib.voicegw_guard_install(self._callback)
        if status != 0:
            raise GuardUnavailable(f"pjsip refused the request guard module (status {status})")

    def uninstall(self) -> None:
        self._lib.voicegw_guard_uninstall()

    def _on_request(
        self,
        method: int,
        method_len: int,
        host: bytes,
        port: int,
        transport: bytes,
        in_dialog: int,
        raw: int,
        raw_len: int,
        out: int,
        out_len: int,
    ) -> int:
        source = (host.decode(errors="replace"), port)
        try:
            request = IncomingRequest(
                method=ctypes.string_at(method, method_len).decode(errors="replace"),
                source=source,
                transport=_TRANSPORTS.get(transport) or transport.decode(errors="replace").lower(),
                in_dialog=bool(in_dialog),
                raw=ctypes.string_at(raw, raw_len),
            )
            refusal = self._guard(request, self._now())
            if refusal is None:
                return 0
            text = refusal_text(refusal)
        except Exception:  # nothing may raise into C
            log.exception("sip_guard_failed", source=f"{source[0]}:{source[1]}")
            refusal, text = GUARD_FAILED, refusal_text(GUARD_FAILED)
        ctypes.memmove(out, text, min(len(text), out_len))
        return refusal.status


def request_guard_missing() -> str | None:
    """Why pjsua2's extension has no request guard (a wheel not built by scripts/build_pjsua2.sh),
    or None when it has one."""
    try:
        _extension()
    except GuardUnavailable as exc:
        return str(exc)
    return None


def _extension() -> ctypes.CDLL:
    """pjsua2's extension (already loaded with pjsua2: dlopen hands back the same library)."""
    spec = importlib.util.find_spec(EXTENSION)
    if spec is None or spec.origin is None:
        raise GuardUnavailable(f"cannot find pjsua2's extension module {EXTENSION}")
    lib = ctypes.CDLL(spec.origin)
    try:
        lib.voicegw_guard_install.argtypes = [GuardCallback]
        lib.voicegw_guard_install.restype = ctypes.c_int
        lib.voicegw_guard_uninstall.argtypes = []
        lib.voicegw_guard_uninstall.restype = ctypes.c_int
    except AttributeError:
        raise GuardUnavailable(
            f"{spec.origin} has no request guard: rebuild pjsua2 with scripts/build_pjsua2.sh"
        ) from None
    return lib
