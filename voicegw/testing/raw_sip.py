"""A minimal SIP UAC over a UDP socket, for signaling tests that need exact control of each message."""

from __future__ import annotations

import hashlib
import re
import socket
import uuid
from dataclasses import dataclass, field

HOST = "127.0.0.1"
DIALOG_HEADERS = ("via", "from", "to", "call-id", "cseq")
"""What a response copies from the request it answers (RFC 3261 8.2.6.2)."""


def offer_sdp(
    port: int, codecs: str = "0 101", rtpmaps: str = "", *, proto: str = "RTP/AVP", crypto: str = ""
) -> str:
    """An audio offer; `crypto` is an ``a=crypto`` value (RFC 4568) for SRTP offers."""
    rtpmaps = rtpmaps or "a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
    crypto_line = f"a=crypto:{crypto}\r\n" if crypto else ""
    return (
        f"v=0\r\no=test 1 1 IN IP4 {HOST}\r\ns=-\r\nc=IN IP4 {HOST}\r\nt=0 0\r\n"
        f"m=audio {port} {proto} {codecs}\r\n{rtpmaps}a=sendrecv\r\n{crypto_line}"
    )


def digest_answer(
    challenge: str,
    user: str,
    password: str,
    *,
    method: str = "INVITE",
    uri: str = "sip:desk@192.0.2.1",
    nc: str = "00000001",
    qop: bool = True,
) -> str:
    """The Authorization a client sends for a WWW-Authenticate `challenge` (RFC 2617, MD5),
    computed with hashlib here, independently of voicegw.sip.digest."""
    params = dict(re.findall(r'(\w+)="?([^",]+)"?', challenge))

    def md5(text: str) -> str:
        return hashlib.md5(text.encode()).hexdigest()

    realm, nonce = params["realm"], params["nonce"]
    ha1, ha2 = md5(f"{user}:{realm}:{password}"), md5(f"{method}:{uri}")
    head = f'Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{uri}"'
    if not qop:
        return f'{head}, response="{md5(f"{ha1}:{nonce}:{ha2}")}"'
    response = md5(f"{ha1}:{nonce}:{nc}:0a4f113b:auth:{ha2}")
    return f'{head}, response="{response}", algorithm=MD5, cnonce="0a4f113b", nc={nc}, qop=auth'


@dataclass
class Response:
    status: int
    reason: str
    headers: dict[str, str]
    body: str


def parse_response(data: bytes) -> Response | None:
    text = data.decode(errors="replace")
    head, _, body = text.partition("\r\n\r\n")
    lines = head.split("\r\n")
    parts = lines[0].split(" ", 2)
    if parts[0] != "SIP/2.0" or len(parts) < 2:
        return None
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Response(int(parts[1]), parts[2] if len(parts) > 2 else "", headers, body)


@dataclass
class Dialog:
    """One INVITE dialog from a raw socket; just enough state for CANCEL, ACK, INFO and BYE."""

    server_port: int
    sock: socket.socket = field(default_factory=lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    call_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    invite_branch: str = field(default_factory=lambda: "z9hG4bK" + uuid.uuid4().hex[:12])
    to_header: str = ""
    cseq: int = 1

    def __post_init__(self) -> None:
        self.sock.bind((HOST, 0))
        self.sock.settimeout(5.0)
        self.local_port = self.sock.getsockname()[1]
        self.uri = f"sip:echo@{HOST}:{self.server_port}"
        self.to_header = f"<{self.uri}>"

    def _send(self, method: str, cseq: int, branch: str, body: str = "", extra: str = "") -> None:
        content_type = "Content-Type: application/sdp\r\n" if body and method in ("INVITE", "ACK") else ""
        message = (
            f"{method} {self.uri} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {HOST}:{self.local_port};branch={branch};rport\r\n"
            f"From: <sip:tester@{HOST}:{self.local_port}>;tag={self.tag}\r\n"
            f"To: {self.to_header}\r\nCall-ID: {self.call_id}\r\nCSeq: {cseq} {method}\r\n"
            f"Contact: <sip:tester@{HOST}:{self.local_port}>\r\nMax-Forwards: 70\r\n"
            f"{content_type}{extra}Content-Length: {len(body.encode())}\r\n\r\n{body}"
        )
        self.sock.sendto(message.encode(), (HOST, self.server_port))

    def invite(self, sdp: str, extra: str = "") -> None:
        self._send("INVITE", 1, self.invite_branch, sdp, extra)

    def invite_again(self, sdp: str, extra: str) -> None:
        """The INVITE after a 401/407/403 (ACKed first): a new transaction, no To tag, the next CSeq
        (pjsip answers 482 to a request that reuses the CSeq of one still in a transaction)."""
        self.cseq += 1
        self.invite_branch = "z9hG4bK" + uuid.uuid4().hex[:12]
        self.to_header = f"<{self.uri}>"
        self._send("INVITE", self.cseq, self.invite_branch, sdp, extra)

    def establish(self, sdp: str | None = None) -> Response:
        """INVITE, wait for the 200 OK, ACK it: a call in progress."""
        self.invite(sdp or offer_sdp(self.local_port + 2))
        ok = self.until(200)
        self.ack()
        return ok

    def cancel(self) -> None:
        self._send("CANCEL", 1, self.invite_branch)

    def ack(self, *, for_error: bool = False, cseq: int = 1, sdp: str = "") -> None:
        """ACK a final response; `sdp` is the answer when the 200 OK carried our offer."""
        branch = self.invite_branch if for_error else "z9hG4bK" + uuid.uuid4().hex[:12]
        self._send("ACK", cseq, branch, sdp)

    def request(self, method: str, body: str = "", extra: str = "") -> None:
        self.cseq += 1
        self._send(method, self.cseq, "z9hG4bK" + uuid.uuid4().hex[:12], body, extra)

    def receive(self) -> Response:
        """The next response (requests the server sends are skipped)."""
        while True:
            data, _ = self.sock.recvfrom(65535)
            response = parse_response(data)
            if response is not None:
                if response.status >= 200 and "to" in response.headers and "tag=" in response.headers["to"]:
                    self.to_header = response.headers["to"]
                return response

    def until(self, status: int) -> Response:
        while (response := self.receive()).status != status:
            if response.status >= 200 and response.status != status:
                raise AssertionError(f"expected {status}, got {response.status} {response.reason}")
        return response

    def until_request(self, method: str) -> str:
        """The next request `method` the server sends (responses before it are skipped), answered 200."""
        while True:
            data, address = self.sock.recvfrom(65535)
            text = data.decode(errors="replace")
            if text.startswith(f"{method} "):
                break
        head = text.partition("\r\n\r\n")[0].split("\r\n")
        copied = [line for line in head[1:] if line.split(":", 1)[0].lower() in DIALOG_HEADERS]
        reply = "SIP/2.0 200 OK\r\n" + "".join(f"{line}\r\n" for line in copied) + "Content-Length: 0\r\n\r\n"
        self.sock.sendto(reply.encode(), address)
        return text

    def close(self) -> None:
        self.sock.close()
