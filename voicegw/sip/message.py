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
    """Split a request into its line, headers and body; tolerant of folding and bare LF."""
    head, _, body = message.replace("\r\n", "\n").partition("\n\n")
    lines = head.split("\n")
    parts = lines[0].split(" ")
    method, uri = (parts[0], parts[1]) if len(parts) >= 2 else ("", "")
    headers: dict[str, str] = {}
    name = ""
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and name:
            headers[name] += " " + line.strip()
            continue
        raw_name, sep, value = line.partition(":")
        if not sep:
            continue
        name = raw_name.strip().lower()
        name = COMPACT_NAMES.get(name, name)
        value = value.strip()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return SipRequest(method=method, uri=uri, headers=headers, body=body)
