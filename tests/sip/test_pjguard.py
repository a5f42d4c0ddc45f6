"""`refusal_text`: what the guard's I/O shell hands the C module for a refusal."""

from __future__ import annotations

import re

import pytest

from voicegw.sip.guard import Refusal
from voicegw.sip.pjguard import OUT_LEN, refusal_text


def test_reason_and_headers_are_crlf_separated_and_nul_ended() -> None:
    text = refusal_text(Refusal(403, "Forbidden", (("Retry-After", "30"), ("Allow", "INVITE, BYE"))))
    assert text == b"Forbidden\r\nRetry-After: 30\r\nAllow: INVITE, BYE\0"


@pytest.mark.parametrize(
    ("refusal", "message"),
    [
        (Refusal(200, "OK"), "status must be 300-699, not 200"),
        (Refusal(700, "Nope"), "status must be 300-699, not 700"),
        (Refusal(403, "Forbidden\r\nVia: x"), "reason: 'Forbidden\\r\\nVia: x' has a line break"),
        (Refusal(403, "Forbidden", (("X-A", "1\n2"),)), "X-A: '1\\n2' has a line break"),
        (Refusal(403, "Forbidden", (("Bad Name", "1"),)), "'Bad Name' is not a header name"),
        (Refusal(403, "Forbidden", (("X-A", "1"),) * 17), "at most 16 headers, not 17"),
        (Refusal(403, "x" * OUT_LEN), f"take {OUT_LEN + 1} bytes, more than {OUT_LEN}"),
    ],
)
def test_what_cannot_go_on_the_wire_is_refused(refusal: Refusal, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        refusal_text(refusal)
