"""Seed messages of the SIP mutation fuzzer: a valid request of every method, and our own
messages for each class of case in RFC 4475 (SIP torture tests), written from its categories.

Every seed is a template: ``$host``/``$port`` (the server), ``$lhost``/``$lport`` (our socket),
``$transport`` (UDP, TCP or TLS), ``$branch``, ``$tag``, ``$callid`` and ``$cseq`` are filled
for each message sent, so that each mutated message starts a transaction of its own and none
can touch the live echo calls' dialogs. Every address in a seed is loopback or a ``.invalid``
name (RFC 6761): a mutation can still bend one, which is why the fuzzer runs in a network
namespace of its own.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from string import Template

# Port 9 (discard): a call the fuzz gets answered sends its RTP where nothing listens.
SDP = (
    "v=0\r\no=fuzz 2890844526 2890844526 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 9 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n"
)


def _request(
    method: str, body: str = "", content_type: str = "", extra: str = "", uri: str = "sip:echo@$host:$port"
) -> str:
    kind = f"Content-Type: {content_type}\r\n" if content_type else ""
    return (
        f"{method} {uri} SIP/2.0\r\n"
        "Via: SIP/2.0/$transport $lhost:$lport;branch=z9hG4bK$branch;rport\r\n"
        "Max-Forwards: 70\r\n"
        'From: "Fuzz" <sip:fuzz@$lhost:$lport>;tag=$tag\r\n'
        "To: <sip:echo@$host:$port>\r\n"
        "Call-ID: $callid@fuzz.invalid\r\n"
        f"CSeq: $cseq {method}\r\n"
        "Contact: <sip:fuzz@$lhost:$lport;transport=$transport>\r\n"
        f"{extra}{kind}Content-Length: {len(body.encode())}\r\n\r\n{body}"
    )


METHOD_SEEDS: dict[str, str] = {
    "INVITE": _request("INVITE", SDP, "application/sdp", "Allow: INVITE, ACK, CANCEL, BYE, OPTIONS\r\n"),
    "OPTIONS": _request("OPTIONS", extra="Accept: application/sdp\r\n"),
    "REGISTER": _request("REGISTER", extra="Expires: 3600\r\n", uri="sip:$host:$port"),
    "SUBSCRIBE": _request(
        "SUBSCRIBE", extra="Event: presence\r\nExpires: 600\r\nAccept: application/pidf+xml\r\n"
    ),
    "MESSAGE": _request("MESSAGE", "hello from the fuzzer", "text/plain"),
    "BYE": _request("BYE"),
    "CANCEL": _request("CANCEL"),
    "ACK": _request("ACK"),
    "INFO": _request("INFO", "Signal=5\r\nDuration=160\r\n", "application/dtmf-relay"),
    "UPDATE": _request("UPDATE", SDP, "application/sdp"),
    "REFER": _request(
        "REFER", extra="Refer-To: <sip:other@$host:$port>\r\nReferred-By: <sip:fuzz@$lhost>\r\n"
    ),
    "NOTIFY": _request(
        "NOTIFY", "SIP/2.0 200 OK\r\n", "message/sipfrag", "Event: refer\r\nSubscription-State: active\r\n"
    ),
    "PUBLISH": _request(
        "PUBLISH", "<presence/>", "application/pidf+xml", "Event: presence\r\nExpires: 60\r\n"
    ),
    "PRACK": _request("PRACK", extra="RAck: 1 1 INVITE\r\n"),
    "unknown": _request("FROBNICATE"),
}
"""One valid request of every method voicegw may meet (an unknown one last)."""

_VIA = "Via: SIP/2.0/$transport $lhost:$lport;branch=z9hG4bK$branch;rport\r\n"
_ENDS = (
    "From: <sip:fuzz@$lhost:$lport>;tag=$tag\r\nTo: <sip:echo@$host:$port>\r\n"
    "Call-ID: $callid@fuzz.invalid\r\nMax-Forwards: 70\r\n"
)


def _with_body(head: str, body: str, content_length: int | None = None) -> str:
    length = len(body.encode()) if content_length is None else content_length
    return f"{head}Content-Length: {length}\r\n\r\n{body}"


def _torture(
    method: str,
    *,
    uri: str = "sip:echo@$host:$port",
    extra: str = "",
    body: str = "",
    length: int | None = None,
) -> str:
    """A request with our usual Via, From, To, Call-ID and CSeq, then `extra` headers and `body`
    (`length`: a Content-Length other than the body's)."""
    head = f"{method} {uri} SIP/2.0\r\n{_VIA}{_ENDS}CSeq: $cseq {method}\r\n{extra}"
    return _with_body(head, body, length)


TORTURE_SEEDS: dict[str, str] = {
    # RFC 4475 3.1.1: valid messages that stress a parser.
    "tortuous": _with_body(
        "INVITE sip:echo@$host:$port;unknownparam SIP/2.0\r\n"
        "TO :\r\n <sip:echo@$host:$port> ;   tag    = 1918181833n\r\n"
        'from   : "J Rosenberg \\\\\\""       <sip:fuzz@$lhost:$lport>\r\n  ;\r\n  tag = $tag\r\n'
        "MaX-fOrWaRdS: 0068\r\nCall-ID: $callid@fuzz.invalid\r\n"
        "cseq: 0009\r\n  INVITE\r\n"
        "Via  : SIP  /   2.0\r\n /$transport\r\n    $lhost:$lport;branch=z9hG4bK$branch;rport\r\n"
        "s :\r\nNewFangledHeader:   newfangled value\r\n continued newfangled value\r\n"
        "UnknownHeaderWithUnusualValue: ;;,,;;,;\r\nContent-Type: application/sdp\r\n"
        "Route:\r\n <sip:services.fuzz.invalid;lr;unknownwith=value;unknown-no-value>\r\n"
        "v:  SIP  / 2.0  / $transport  $lhost:$lport;branch=z9hG4bK$branch.2;received=127.0.0.1\r\n"
        'm:"Quoted string \\"\\"" <sip:fuzz@$lhost:$lport> ; newparam =\r\n'
        "      newvalue ;\r\n  secondparam ; q = 0.33\r\n",
        SDP,
    ),
    "method_chars": _with_body(
        "!interesting-Method0123456789_*+`.%indeed'~ sip:1_unusual.URI~(to-be!sure)&isn't+it$$/$$"
        "looking=:@$host:$port SIP/2.0\r\n"
        + _VIA
        + _ENDS
        + "CSeq: $cseq !interesting-Method0123456789_*+`.%indeed'~\r\n",
        "",
    ),
    "escaped_uri": _with_body(
        "INVITE sip:sips%3Auser%40example.invalid@$host:$port SIP/2.0\r\n"
        + _VIA
        + _ENDS
        + "CSeq: $cseq INVITE\r\nContact: <sip:c%61ller@$lhost:$lport;p%61rameter=%6A%6F%68%6E>\r\n"
        + "Content-Type: application/sdp\r\n",
        SDP,
    ),
    "escaped_nul": "REGISTER sip:$host:$port SIP/2.0\r\n"
    + _VIA
    + "To: sip:null-%00-null@$host\r\nFrom: sip:null-%00-null@$host;tag=$tag\r\n"
    + "Call-ID: $callid@fuzz.invalid\r\nMax-Forwards: 70\r\nCSeq: $cseq REGISTER\r\n"
    + "Contact: <sip:%00@$lhost:$lport>\r\nContact: <sip:%00%00@$lhost:$lport>\r\nL:0\r\n\r\n",
    "uri_headers": _torture("OPTIONS", uri="sip:echo@$host:$port?Route=%3Csip:example.invalid%3E"),
    "display_lws": _with_body(
        "OPTIONS sip:echo@$host:$port SIP/2.0\r\n"
        + _VIA
        + 'To: "Echo"<sip:echo@$host:$port>\r\nFrom: caller<sip:fuzz@$lhost:$lport>;tag=$tag\r\n'
        + "Call-ID: $callid@fuzz.invalid\r\nMax-Forwards: 70\r\nCSeq: $cseq OPTIONS\r\n",
        "",
    ),
    "long_values": _with_body(
        "INVITE sip:echo@$host:$port SIP/2.0\r\n"
        + "".join(
            f"Via: SIP/2.0/$transport 127.0.0.{i}:5060;branch=z9hG4bK${{branch}}.{i}\r\n" for i in range(29)
        )
        + _VIA
        + 'To: "'
        + "I have a user name of extreme length " * 10
        + '" <sip:echo@$host:$port>\r\n'
        + "From: <sip:fuzz@$lhost:$lport>;tag="
        + "longtag" * 60
        + "$tag\r\n"
        + "Call-ID: $callid"
        + "callid" * 50
        + "@fuzz.invalid\r\nMax-Forwards: 70\r\nCSeq: $cseq INVITE\r\n"
        + "X-Long: "
        + "x" * 1200
        + "\r\nContent-Type: application/sdp\r\n",
        SDP,
    ),
    "two_messages": _with_body(
        "REGISTER sip:$host:$port SIP/2.0\r\n" + _VIA + _ENDS + "CSeq: $cseq REGISTER\r\n",
        "",
    )
    + _request("INVITE", SDP, "application/sdp"),
    "semicolon_user": _torture("OPTIONS", uri="sip:user;par=u%40example.invalid@$host:$port"),
    "odd_transports": _with_body(
        "OPTIONS sip:echo@$host:$port SIP/2.0\r\n"
        + _VIA
        + "Via: SIP/2.0/SCTP 127.0.0.2:5060;branch=z9hG4bK$branch.s\r\n"
        + "Via: SIP/2.0/TLS 127.0.0.3:5061;branch=z9hG4bK$branch.t\r\n"
        + "Via: SIP/2.0/UNKNOWN 127.0.0.4:5060;branch=z9hG4bK$branch.u\r\n"
        + _ENDS
        + "CSeq: $cseq OPTIONS\r\n",
        "",
    ),
    "multipart": _with_body(
        "MESSAGE sip:echo@$host:$port SIP/2.0\r\n"
        + _VIA
        + _ENDS
        + "CSeq: $cseq MESSAGE\r\n"
        + "Content-Type: multipart/mixed;boundary=7a9cbec02ceef655\r\nMIME-Version: 1.0\r\n",
        "--7a9cbec02ceef655\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
        "--7a9cbec02ceef655\r\nContent-Type: application/octet-stream\r\n"
        "Content-Transfer-Encoding: binary\r\n\r\n\x00\x01\x02\x03\r\n--7a9cbec02ceef655--\r\n",
    ),
    "odd_reason": "SIP/2.0 200 = 2**3 * 5**2 \u043d\u043e \u0441\u0442\u043e "
    "\u0434\u0435\u0432\u044f\u043d\u043e\u0441\u0442\u043e\r\n"
    + _VIA
    + _ENDS
    + "CSeq: $cseq INVITE\r\nContent-Length: 0\r\n\r\n",
    "no_reason": "SIP/2.0 100 \r\n" + _VIA + _ENDS + "CSeq: $cseq INVITE\r\nContent-Length: 0\r\n\r\n",
    # RFC 4475 3.1.2: invalid messages a parser must refuse without harm.
    "separators": _with_body(
        "OPTIONS sip:echo@$host:$port SIP/2.0\r\n"
        + "Via: SIP/2.0/$transport $lhost:$lport;;,;,,\r\n"
        + _ENDS
        + "CSeq: $cseq OPTIONS\r\n",
        "",
    ),
    "content_length_long": _torture(
        "INVITE", extra="Content-Type: application/sdp\r\n", body=SDP, length=9999
    ),
    "content_length_negative": _torture(
        "INVITE", extra="Content-Type: application/sdp\r\n", body=SDP, length=-999
    ),
    "scalars_large": _with_body(
        "REGISTER sip:$host:$port SIP/2.0\r\n"
        + _VIA
        + "From: <sip:fuzz@$lhost:$lport>;tag=$tag\r\nTo: <sip:fuzz@$lhost>\r\nCall-ID: $callid\r\n"
        + "Max-Forwards: 300\r\nCSeq: 36893488147419103232 REGISTER\r\nExpires: 1$cseq$cseq$cseq$cseq\r\n"
        + "Contact: <sip:fuzz@$lhost:$lport>;expires=280297596632815\r\n",
        "",
    ),
    "response_scalars_large": "SIP/2.0 503 Service Unavailable\r\n"
    + _VIA
    + _ENDS
    + 'CSeq: 1 INVITE\r\nRetry-After: 18446744073709551616\r\nWarning: 1812 overture "In Progress"\r\n'
    + "Content-Length: 0\r\n\r\n",
    "unbalanced_quote": _with_body(
        "INVITE sip:echo@$host:$port SIP/2.0\r\n"
        + _VIA
        + 'To: "Mr. Echo <sip:echo@$host:$port>\r\nFrom: "Fuzz <sip:fuzz@$lhost:$lport>;tag=$tag\r\n'
        + "Call-ID: $callid@fuzz.invalid\r\nMax-Forwards: 70\r\nCSeq: $cseq INVITE\r\n"
        + "Content-Type: application/sdp\r\n",
        SDP,
    ),
    "bracketed_ruri": _torture(
        "INVITE", uri="<sip:echo@$host:$port>", extra="Content-Type: application/sdp\r\n", body=SDP
    ),
    "lws_in_ruri": _with_body(
        "INVITE sip:echo@$host:$port;lr; transport=udp SIP/2.0\r\n"
        + _VIA
        + _ENDS
        + "CSeq: $cseq INVITE\r\nContent-Type: application/sdp\r\n",
        SDP,
    ),
    "many_spaces": _torture(
        "INVITE", uri=" sip:echo@$host:$port    ", extra="Content-Type: application/sdp\r\n", body=SDP
    ),
    "trailing_space": _with_body(
        "OPTIONS sip:echo@$host:$port SIP/2.0 \r\n" + _VIA + _ENDS + "CSeq: $cseq OPTIONS\r\n",
        "",
    ),
    "escaped_headers_ruri": _with_body(
        "INVITE sip:echo@$host:$port?Route=%3Csip:sip.example.invalid%3E SIP/2.0\r\n"
        + _VIA
        + _ENDS
        + "CSeq: $cseq INVITE\r\nContent-Type: application/sdp\r\n",
        SDP,
    ),
    "bad_date": _torture(
        "INVITE", extra="Date: Fri, 01 Jan 2010 16:00:00 EST\r\nContent-Type: application/sdp\r\n", body=SDP
    ),
    "contact_unbracketed": _torture(
        "REGISTER",
        uri="sip:$host:$port",
        extra="Contact: sip:fuzz@$lhost:$lport?Route=%3Csip:example.invalid%3E;expires=10\r\n",
    ),
    "spaces_in_addr_spec": _with_body(
        "OPTIONS sip:echo@$host:$port SIP/2.0\r\n"
        + _VIA
        + "To: sip:echo @ $host\r\nFrom: <sip:fuzz@ $lhost>;tag=$tag\r\n"
        + "Call-ID: $callid@fuzz.invalid\r\nMax-Forwards: 70\r\nCSeq: $cseq OPTIONS\r\n",
        "",
    ),
    "display_name_chars": _with_body(
        "OPTIONS sip:echo@$host:$port SIP/2.0\r\n"
        + _VIA
        + "To: Echo, Mr. <sip:echo@$host>\r\nFrom: Fuzz (the) @test <sip:fuzz@$lhost>;tag=$tag\r\n"
        + "Call-ID: $callid@fuzz.invalid\r\nMax-Forwards: 70\r\nCSeq: $cseq OPTIONS\r\n",
        "",
    ),
    "version_7": _with_body(
        "OPTIONS sip:echo@$host:$port SIP/7.0\r\n"
        "Via: SIP/7.0/$transport $lhost:$lport;branch=z9hG4bK$branch\r\n" + _ENDS + "CSeq: $cseq OPTIONS\r\n",
        "",
    ),
    "cseq_mismatch": _with_body(
        "OPTIONS sip:echo@$host:$port SIP/2.0\r\n" + _VIA + _ENDS + "CSeq: $cseq INVITE\r\n",
        "",
    ),
    "cseq_mismatch_unknown": _with_body(
        "NEWMETHOD sip:echo@$host:$port SIP/2.0\r\n"
        + _VIA
        + _ENDS
        + "CSeq: $cseq INVITE\r\n"
        + "Content-Type: application/sdp\r\n",
        SDP,
    ),
    "big_code": "SIP/2.0 4294967301 better not break the receiver\r\n"
    + _VIA
    + _ENDS
    + "CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
    # RFC 4475 3.2 and 3.3: backward compatibility, transaction and application layer.
    "bad_branch": _with_body(
        "OPTIONS sip:echo@$host:$port SIP/2.0\r\nVia: SIP/2.0/$transport $lhost:$lport;branch=z9hG4bK\r\n"
        + _ENDS
        + "CSeq: $cseq OPTIONS\r\n",
        "",
    ),
    "missing_headers": "INVITE sip:echo@$host:$port SIP/2.0\r\nCSeq: $cseq INVITE\r\n"
    "From: <sip:fuzz@$lhost>;tag=$tag\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
    "unknown_scheme": _torture("OPTIONS", uri="nobodyknowsthisscheme:totallyopaquecontent"),
    "novel_scheme": _with_body(
        "OPTIONS soap.beep://$host:$port/echo SIP/2.0\r\n" + _VIA + _ENDS + "CSeq: $cseq OPTIONS\r\n",
        "",
    ),
    "unknown_scheme_headers": _with_body(
        "OPTIONS sip:echo@$host:$port SIP/2.0\r\n"
        + _VIA
        + "To: isbn:2983792873\r\nFrom: <http://www.example.invalid>;tag=$tag\r\n"
        + "Contact: <name:John_Smith>\r\nCall-ID: $callid@fuzz.invalid\r\nMax-Forwards: 70\r\n"
        + "CSeq: $cseq OPTIONS\r\n",
        "",
    ),
    "unknown_extension": _torture(
        "OPTIONS", extra="Require: nothingyoudoknow\r\nProxy-Require: nothingyoudoknow\r\n"
    ),
    "unknown_content_type": _torture(
        "INVITE",
        extra="Contact: <sip:fuzz@$lhost:$lport>\r\nContent-Type: application/unknownformat\r\n",
        body='<audio><pcmu port="443"/></audio>\r\n',
    ),
    "register_authorization": _with_body(
        "REGISTER sip:$host:$port SIP/2.0\r\n"
        + _VIA
        + _ENDS
        + "CSeq: $cseq REGISTER\r\n"
        + "Contact: <sip:fuzz@$lhost:$lport>\r\n"
        + 'Authorization: Digest username="fuzz", realm="voicegw", nonce="ZmFrZTpub25jZQ==", '
        'uri="sip:$host", response="0123456789abcdef0123456789abcdef", qop=auth, nc=00000001, '
        'cnonce="deadbeef"\r\n',
        "",
    ),
    "single_value_twice": _with_body(
        "INVITE sip:echo@$host:$port SIP/2.0\r\n"
        + _VIA
        + _VIA.replace("$branch", "$branch.2")
        + "From: <sip:fuzz@$lhost:$lport>;tag=$tag\r\nFrom: <sip:other@$lhost>;tag=2$tag\r\n"
        + "To: <sip:echo@$host:$port>\r\nTo: <sip:other@$host>\r\nCall-ID: $callid@fuzz.invalid\r\n"
        + "Call-ID: 2$callid@fuzz.invalid\r\nMax-Forwards: 70\r\nCSeq: $cseq INVITE\r\nCSeq: 2 INVITE\r\n"
        + "Content-Type: application/sdp\r\n",
        SDP,
    ),
    "content_length_twice": "INVITE sip:echo@$host:$port SIP/2.0\r\n"
    + _VIA
    + _ENDS
    + "CSeq: $cseq INVITE\r\nContent-Type: application/sdp\r\nContent-Length: 0\r\n"
    + f"Content-Length: {len(SDP)}\r\n\r\n{SDP}",
    "broadcast_uri": _with_body(
        "OPTIONS sip:echo@255.255.255.255:$port SIP/2.0\r\n" + _VIA + _ENDS + "CSeq: $cseq OPTIONS\r\n",
        "",
    ),
    "zero_max_forwards": _with_body(
        "OPTIONS sip:echo@$host:$port SIP/2.0\r\n"
        + _VIA
        + "From: <sip:fuzz@$lhost:$lport>;tag=$tag\r\nTo: <sip:echo@$host:$port>\r\n"
        + "Call-ID: $callid@fuzz.invalid\r\nMax-Forwards: 0\r\nCSeq: $cseq OPTIONS\r\n",
        "",
    ),
    "contact_params": _torture(
        "REGISTER",
        uri="sip:$host:$port",
        extra="Contact: sip:fuzz@$lhost:$lport;expires=3600;q=0.5, <sip:fuzz2@$lhost>;expires=-1\r\n"
        + "Expires: 0x10\r\n",
    ),
    "escaped_route_contact": _torture(
        "REGISTER",
        uri="sip:$host:$port",
        extra="Contact: <sip:fuzz@$lhost:$lport?Route=%3Csip:sip.example.invalid%3E>\r\n",
    ),
    "unacceptable_accept": _torture(
        "INVITE", extra="Accept: text/nobodyknowsthis\r\nContent-Type: application/sdp\r\n", body=SDP
    ),
    "rfc2543_style": _with_body(
        "INVITE sip:echo@$host:$port SIP/2.0\r\nVia: SIP/2.0/$transport $lhost:$lport\r\n"
        + "From: <sip:fuzz@$lhost:$lport>\r\nTo: <sip:echo@$host:$port>\r\nCall-ID: $callid@fuzz.invalid\r\n"
        + "CSeq: $cseq INVITE\r\nContent-Type: application/sdp\r\n",
        SDP,
    ),
}
"""Our own message for each class of case of RFC 4475 (valid but tortuous, invalid, stray
responses, backward compatibility, transaction and application layer)."""

SEEDS: dict[str, str] = {**METHOD_SEEDS, **TORTURE_SEEDS}


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Where a message goes and where it claims to come from."""

    host: str
    port: int
    lhost: str
    lport: int
    transport: str


def render(name: str, endpoints: Endpoints, rng: random.Random) -> bytes:
    """Seed `name` for `endpoints`, with fresh identifiers drawn from `rng`."""
    values = {
        "host": endpoints.host,
        "port": str(endpoints.port),
        "lhost": endpoints.lhost,
        "lport": str(endpoints.lport),
        "transport": endpoints.transport,
        "branch": f"{rng.getrandbits(48):012x}",
        "tag": f"{rng.getrandbits(32):08x}",
        "callid": f"{rng.getrandbits(64):016x}",
        "cseq": str(rng.randint(1, 9999)),
    }
    return Template(SEEDS[name]).safe_substitute(values).encode("utf-8", "surrogateescape")
