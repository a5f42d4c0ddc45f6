"""Reading a SIP request as pjsua2 hands it over (`SipRxData.wholeMsg`), sans-I/O.

pjsua2 exposes no parsed headers for an incoming INVITE; we need the caller's identity and
any X- headers (a trunk's account and call ids) for the agent's run context.
"""

from __future__ import annotations

from dataclasses import dataclass, field

COMPACT_NAMES = {
    "i": "call-id",
    "f": "from",
    "t": "to",
    "m": "contact",
    "v": "via",
    "c": "content-type",
    "l": "content-length",
    "k": "supported",
    "s": "subject",
}


@dataclass(frozen=True, slots=True)
class SipRequest:
    method: str
    uri: str
    headers: dict[str, str] = field(default_factory=dict)
    """Lower-cased names (compact forms expanded); repeated headers joined with ', '."""

    body: str = ""


def parse_request(message: str) -> SipRequest:
    """Split a request into its line, headers and body; tolerant of folding and bare LF.

    Fed by anyone on the network: linear in the message's length whatever its shape (repeated
    headers are joined once, at the end), and it never raises.
    """
    # The body is kept byte for byte; only the head is normalised to bare LF.
    crlf, lf = message.find("\r\n\r\n"), message.find("\n\n")
    if crlf != -1 and (lf == -1 or crlf < lf):
        head, body = message[:crlf], message[crlf + 4 :]
    elif lf != -1:
        head, body = message[:lf], message[lf + 2 :]
    else:
        head, body = message, ""
    lines = head.replace("\r\n", "\n").split("\n")
    parts = lines[0].split(" ")
    method, uri = (parts[0], parts[1]) if len(parts) >= 2 else ("", "")
    # Each value is a list of its folded pieces, joined once at the end (never grown in place).
    values: dict[str, list[list[str]]] = {}
    current: list[str] | None = None
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and current is not None:
            current.append(line.strip())
            continue
        raw_name, sep, value = line.partition(":")
        if not sep:
            continue
        name = raw_name.strip().lower()
        current = [value.strip()]
        values.setdefault(COMPACT_NAMES.get(name, name), []).append(current)
    headers = {name: ", ".join(" ".join(pieces) for pieces in found) for name, found in values.items()}
    return SipRequest(method=method, uri=uri, headers=headers, body=body)


MAX_REASON_CHARS = 256
"""A Reason header is kept for the call's record up to this length (it comes from the far end)."""


@dataclass(frozen=True, slots=True)
class HangupReason:
    """The far end's ``Reason`` header (RFC 3326) on its BYE."""

    header: str
    """As sent (cut to `MAX_REASON_CHARS`): ``Q.850;cause=16;text="Normal call clearing"``."""

    q850_cause: int | None
    """Its ISDN cause (1-127) when it carries a Q.850 reason; telephony's hang-up cause."""


def parse_reason(value: str) -> HangupReason | None:
    """The ``Reason`` header's value as a `HangupReason` (None when empty); never raises."""
    value = value.strip()[:MAX_REASON_CHARS]
    if not value:
        return None
    q850 = None
    # Reasons are comma-separated (``SIP;cause=200, Q.850;cause=16``); the first Q.850 one counts.
    for reason in value.split(","):
        protocol, _, params = reason.partition(";")
        if protocol.strip().upper() != "Q.850" or q850 is not None:
            continue
        for param in params.split(";"):
            name, _, number = (part.strip() for part in param.partition("="))
            # ASCII digits only: int() would also read other scripts' digits.
            if name.lower() == "cause" and number.isascii() and number.isdigit() and len(number) <= 3:
                q850 = int(number) if 1 <= int(number) <= 127 else None
    return HangupReason(value, q850)


DTMF_EVENT_DIGITS = "0123456789*#ABCD"
"""RFC 4733 event codes 0-15 in order: some phones send ``Signal=10`` for ``*``."""

DEFAULT_INFO_DTMF_MS = 100
"""Duration reported when a SIP INFO names no (valid) duration."""


@dataclass(frozen=True, slots=True)
class InfoDtmf:
    """A key press carried by SIP INFO (``application/dtmf-relay`` or ``application/dtmf``)."""

    digit: str
    duration_ms: int


def parse_info_dtmf(request: SipRequest) -> InfoDtmf | None:
    """The digit of a DTMF INFO, or None when the INFO carries something else (or garbage).

    ``application/dtmf-relay`` (Cisco's) has ``Signal=5`` and ``Duration=160`` lines;
    ``application/dtmf`` (RFC draft, Nortel/Polycom) is the bare digit.
    """
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type == "application/dtmf-relay":
        fields: dict[str, str] = {}
        for line in request.body.replace("\r\n", "\n").split("\n"):
            key, sep, value = line.partition("=")
            if sep:
                fields[key.strip().lower()] = value.strip()
        signal = fields.get("signal", "")
        duration_text = fields.get("duration", "")
    elif content_type == "application/dtmf":
        signal, duration_text = request.body.strip(), ""
    else:
        return None
    digit = _dtmf_digit(signal)
    if digit is None:
        return None
    duration = int(duration_text) if duration_text.isdigit() else DEFAULT_INFO_DTMF_MS
    return InfoDtmf(digit, duration)


def _dtmf_digit(signal: str) -> str | None:
    if len(signal) == 1 and signal.upper() in DTMF_EVENT_DIGITS:
        return signal.upper()
    if signal.isdigit() and 10 <= int(signal) < len(DTMF_EVENT_DIGITS):
        return DTMF_EVENT_DIGITS[int(signal)]
    return None
