from __future__ import annotations

import base64

import pytest

from voicegw.rtp.srtp import SrtpKeys
from voicegw.sip import sdp

SIPP_OFFER = (
    "v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)
# A softphone's offer (Linphone-like): Opus first, several rates of telephone-event, video declined by us.
LINPHONE_OFFER = """v=0
o=alice 1234 5678 IN IP4 192.168.1.20
s=Talk
c=IN IP4 192.168.1.20
t=0 0
m=audio 7078 RTP/AVP 96 97 98 0 8 101 100
a=rtpmap:96 opus/48000/2
a=fmtp:96 useinbandfec=1
a=rtpmap:97 speex/16000
a=rtpmap:98 speex/8000
a=rtpmap:101 telephone-event/48000
a=rtpmap:100 telephone-event/8000
a=rtcp:7079 IN IP4 192.168.1.20
m=video 9078 RTP/AVP 102
a=rtpmap:102 VP8/90000
"""


def test_parse_keeps_static_and_dynamic_payload_types() -> None:
    offer = sdp.parse(LINPHONE_OFFER)
    audio = offer.audio()
    assert audio is not None and audio.port == 7078 and audio.rtcp_port == 7079
    assert audio.rtpmaps[0].encoding == "PCMU" and audio.rtpmaps[96].channels == 2
    assert audio.rtpmaps[96].fmtp == "useinbandfec=1"
    assert [m.media for m in offer.media] == ["audio", "video"]


def test_our_preference_wins_and_telephone_event_matches_the_codec_clock() -> None:
    negotiated = sdp.negotiate(sdp.parse(LINPHONE_OFFER))
    assert negotiated.codec.encoding == "PCMU"
    assert negotiated.telephone_event is not None and negotiated.telephone_event.payload_type == 100
    opus = sdp.negotiate(sdp.parse(LINPHONE_OFFER), ("opus", "PCMU"))
    assert (opus.codec.payload_type, opus.telephone_event) == (96, sdp.RtpMap(101, "telephone-event", 48000))


def test_answer_has_one_line_per_offered_stream_and_our_port() -> None:
    offer = sdp.parse(LINPHONE_OFFER)
    text = sdp.answer(offer, sdp.negotiate(offer), address="10.0.0.5", port=40000, session_id=7)
    assert "c=IN IP4 10.0.0.5" in text
    assert "m=audio 40000 RTP/AVP 0 100\r\n" in text
    assert "a=rtcp:40001" in text and "a=sendrecv" in text
    assert "m=video 0 RTP/AVP 102" in text
    again = sdp.parse(text)
    assert again.audio() is not None and again.audio().rtpmaps[0].encoding == "PCMU"  # type: ignore[union-attr]


def test_hold_offers_are_answered_and_detected() -> None:
    sendonly = sdp.parse(SIPP_OFFER + "a=sendonly\r\n")
    negotiated = sdp.negotiate(sendonly)
    assert negotiated.direction == "recvonly" and negotiated.on_hold
    zero = sdp.parse(SIPP_OFFER.replace("c=IN IP4 127.0.0.1", "c=IN IP4 0.0.0.0"))
    assert sdp.negotiate(zero).on_hold
    assert not sdp.negotiate(sdp.parse(SIPP_OFFER)).on_hold


def test_no_common_codec_names_what_was_offered() -> None:
    offer = sdp.parse(SIPP_OFFER.replace("RTP/AVP 0", "RTP/AVP 3").replace("0 PCMU", "3 GSM"))
    with pytest.raises(sdp.NoCommonCodec, match="no common codec: offered GSM"):
        sdp.negotiate(offer)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("v=0\r\nbogus\r\n", "SDP line 'bogus' is not 'x=value'"),
        ("v=0\r\nc=IN IP4 1.2.3.4\r\n", "SDP has no m= line"),
        ("v=0\r\nm=audio\r\n", "SDP media line 'm=audio' is truncated"),
        ("v=0\r\nm=audio x RTP/AVP 0\r\n", "port 'x' is not a number in 0-65535"),
        ("v=0\r\nc=IN XX\r\nm=audio 1 RTP/AVP 0\r\n", "is not 'IN IP4|IP6 address'"),
        (
            "v=0\r\nm=audio 1 RTP/AVP 0\r\na=rtpmap:x PCMU/8000\r\n",
            "payload type 'x' is not a number in 0-127",
        ),
    ],
)
def test_malformed_sdp_is_the_peers_error(text: str, message: str) -> None:
    with pytest.raises(sdp.SdpError, match=message):
        sdp.parse(text)


# pjsua 2.12's own offer (its full media stack, as tests/e2e's caller sends): c= inside the m=
# section, session-level attributes, b= lines, two telephone-event clocks.
PJSUA_OFFER = """v=0
o=- 3973570437 3973570437 IN IP4 127.0.0.1
s=pjmedia
b=AS:84
t=0 0
a=X-nat:0
m=audio 4000 RTP/AVP 9 0 8 120 121
c=IN IP4 127.0.0.1
b=TIAS:64000
a=rtcp:4001 IN IP4 127.0.0.1
a=sendrecv
a=rtpmap:9 G722/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:120 telephone-event/16000
a=fmtp:120 0-16
a=rtpmap:121 telephone-event/8000
a=fmtp:121 0-16
a=ssrc:1234 cname:5a1c2c3d
"""
# A carrier trunk's offer (Twilio-style): G.711 both laws, telephone-event 101, maxptime.
TRUNK_OFFER = (
    "v=0\r\no=root 1977 1977 IN IP4 54.172.60.1\r\ns=Twilio Media Gateway\r\nc=IN IP4 54.172.60.1\r\n"
    "t=0 0\r\nm=audio 13440 RTP/AVP 8 0 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=maxptime:150\r\na=sendrecv\r\n"
)


def test_pjsua_offer_gives_media_level_address_and_matching_telephone_event() -> None:
    negotiated = sdp.negotiate(sdp.parse(PJSUA_OFFER))
    assert negotiated.codec == sdp.RtpMap(0, "PCMU", 8000)
    assert negotiated.telephone_event == sdp.RtpMap(121, "telephone-event", 8000, 1, "0-16")
    assert (negotiated.remote_address, negotiated.remote_port) == ("127.0.0.1", 4000)
    assert (negotiated.remote_rtcp_address, negotiated.remote_rtcp_port) == ("127.0.0.1", 4001)
    assert negotiated.direction == "sendrecv" and not negotiated.on_hold


def test_our_preference_beats_the_offers_order() -> None:
    negotiated = sdp.negotiate(sdp.parse(TRUNK_OFFER))
    assert negotiated.codec.encoding == "PCMU" and negotiated.codec.payload_type == 0
    assert negotiated.telephone_event is not None and negotiated.telephone_event.payload_type == 101
    assert negotiated.remote_rtcp_port == 13441  # no a=rtcp: RTP port + 1
    pcma = sdp.negotiate(sdp.parse(TRUNK_OFFER), ("PCMA",))
    assert pcma.codec.payload_type == 8


@pytest.mark.parametrize("offer", [SIPP_OFFER, LINPHONE_OFFER, PJSUA_OFFER, TRUNK_OFFER])
def test_serialize_round_trips(offer: str) -> None:
    parsed = sdp.parse(offer)
    assert sdp.parse(parsed.serialize()) == parsed


def test_unknown_attributes_survive_serialization() -> None:
    text = sdp.parse(TRUNK_OFFER).serialize()
    assert "a=maxptime:150\r\n" in text and "a=fmtp:101 0-16\r\n" in text


@pytest.mark.parametrize(
    ("direction", "answered", "on_hold"),
    [
        ("sendrecv", "sendrecv", False),
        ("sendonly", "recvonly", True),
        ("inactive", "inactive", True),
        ("recvonly", "sendonly", False),
    ],
)
def test_directions_are_answered_per_rfc3264(direction: str, answered: str, on_hold: bool) -> None:
    offer = sdp.parse(TRUNK_OFFER.replace("a=sendrecv", f"a={direction}"))
    negotiated = sdp.negotiate(offer)
    assert (negotiated.direction, negotiated.on_hold) == (answered, on_hold)
    text = sdp.answer(offer, negotiated, address="10.0.0.5", port=40000, session_id=1)
    assert f"a={answered}\r\n" in text


def test_session_level_sendonly_is_a_hold() -> None:
    offer = sdp.parse(SIPP_OFFER.replace("t=0 0\r\n", "t=0 0\r\na=sendonly\r\n"))
    assert offer.direction == "sendonly"
    assert sdp.negotiate(offer).direction == "recvonly"


def test_ptime_is_kept_for_g711_and_20_for_opus() -> None:
    assert sdp.negotiate(sdp.parse(TRUNK_OFFER.replace("ptime:20", "ptime:40"))).ptime == 40
    assert sdp.negotiate(sdp.parse(TRUNK_OFFER.replace("ptime:20", "ptime:30"))).ptime == 20
    opus = sdp.negotiate(sdp.parse(LINPHONE_OFFER + "a=ptime:40\r\n"), ("opus",))
    assert opus.ptime == 20


# SDES keys as RFC 4568's examples write them (30 bytes key||salt each).
KEY_80 = "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz"
KEY_32 = "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR"
CRYPTO_80 = f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_80}\r\n"
CRYPTO_32 = f"a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:{KEY_32}\r\n"
SRTP_OFFER = TRUNK_OFFER.replace("RTP/AVP", "RTP/SAVP") + CRYPTO_80 + CRYPTO_32


def test_srtp_only_offer_is_refused_when_srtp_is_off() -> None:
    with pytest.raises(
        sdp.SrtpNotAcceptable, match=r"^the offer's audio is SRTP \(RTP/SAVP\) only and SRTP is off$"
    ):
        sdp.negotiate(sdp.parse(SRTP_OFFER))


@pytest.mark.parametrize("mode", ["optional", "required"])
def test_srtp_offer_is_answered_with_the_first_usable_crypto_and_our_key(mode: sdp.SrtpMode) -> None:
    offer = sdp.parse(SRTP_OFFER)
    negotiated = sdp.negotiate(offer, srtp=mode)
    assert negotiated.remote_crypto is not None and negotiated.local_crypto is not None
    assert negotiated.remote_crypto.tag == 1 and negotiated.remote_crypto.key == base64.b64decode(KEY_80)
    ours = negotiated.local_crypto
    assert (ours.tag, ours.suite, len(ours.key)) == (1, "AES_CM_128_HMAC_SHA1_80", 30)
    assert ours.key != negotiated.remote_crypto.key
    assert negotiated.srtp == SrtpKeys("AES_CM_128_HMAC_SHA1_80", ours.key, base64.b64decode(KEY_80))
    text = sdp.answer(offer, negotiated, address="10.0.0.5", port=40000, session_id=1)
    assert "m=audio 40000 RTP/SAVP 0 101\r\n" in text
    crypto_lines = [line for line in text.splitlines() if line.startswith("a=crypto:")]
    assert crypto_lines == [f"a=crypto:{ours}"]
    # Parsing our answer back gives the same line: what the caller keys its inbound stream with.
    assert sdp.parse(text).media[0].crypto == [str(ours)]


def test_srtp_suite_and_key_kept_on_reoffer() -> None:
    first = sdp.negotiate(sdp.parse(SRTP_OFFER), srtp="optional")
    # A re-offer listing the suites the other way round still gets the call's suite and our key.
    reoffer = sdp.parse(TRUNK_OFFER.replace("RTP/AVP", "RTP/SAVP") + CRYPTO_32 + CRYPTO_80)
    again = sdp.negotiate(
        reoffer, srtp="required", suites=("AES_CM_128_HMAC_SHA1_80",), keep=first.local_crypto
    )
    assert again.local_crypto == first.local_crypto and again.remote_crypto == first.remote_crypto
    with pytest.raises(
        sdp.SrtpNotAcceptable, match="crypto suite AES_CM_128_HMAC_SHA1_32 is not allowed here"
    ):
        sdp.negotiate(sdp.parse(TRUNK_OFFER.replace("RTP/AVP", "RTP/SAVP") + CRYPTO_32),
                      srtp="required", suites=("AES_CM_128_HMAC_SHA1_80",))  # fmt: skip


@pytest.mark.parametrize(
    ("crypto", "message"),
    [
        ("", "the offer's RTP/SAVP audio has no a=crypto (only SDES keying is supported)"),
        ("a=crypto:1 F8_128_HMAC_SHA1_80 inline:" + KEY_80 + "\r\n",
         "no usable a=crypto in the offer: crypto suite F8_128_HMAC_SHA1_80 is not supported"),
        (f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_80}|2^20|1:4\r\n"
         "a=crypto:2 AES_CM_128_HMAC_SHA1_80\r\n",
         "no usable a=crypto in the offer: crypto tag 1: keys with an MKI are not supported; "
         "a=crypto:2 AES_CM_128_HMAC_SHA1_80 is not '<tag> <suite> inline:<key>'"),
    ],
)  # fmt: skip
def test_srtp_offer_we_cannot_key_is_not_acceptable(crypto: str, message: str) -> None:
    offer = sdp.parse(TRUNK_OFFER.replace("RTP/AVP", "RTP/SAVP") + crypto)
    with pytest.raises(sdp.SrtpNotAcceptable) as info:
        sdp.negotiate(offer, srtp="optional")
    assert str(info.value) == message
    assert isinstance(info.value, sdp.NotAcceptable)  # the user agent answers 488


def test_plain_offer_stays_plain_unless_srtp_is_required() -> None:
    offer = sdp.parse(TRUNK_OFFER)
    negotiated = sdp.negotiate(offer, srtp="optional")
    assert negotiated.srtp is None
    text = sdp.answer(offer, negotiated, address="10.0.0.5", port=40000, session_id=1)
    assert "RTP/AVP" in text and "a=crypto" not in text
    with pytest.raises(
        sdp.SrtpNotAcceptable, match=r"^SRTP is required and the offer's audio is plain RTP/AVP$"
    ):
        sdp.negotiate(offer, srtp="required")


def test_best_effort_srtp_on_rtp_avp() -> None:
    # pjsua's optional SRTP: RTP/AVP with a=crypto. Answered with SRTP, unless SRTP is off.
    offer = sdp.parse(TRUNK_OFFER + CRYPTO_80)
    negotiated = sdp.negotiate(offer, srtp="optional")
    assert negotiated.srtp is not None
    assert "m=audio 40000 RTP/AVP 0 101\r\n" in sdp.answer(
        offer, negotiated, address="10.0.0.5", port=40000, session_id=1
    )
    assert sdp.negotiate(offer, srtp="off").srtp is None
    assert sdp.negotiate(offer, srtp="required").srtp is not None
    # Keys we cannot use: plain RTP is a valid answer to best effort, but not when SRTP is required.
    unusable = sdp.parse(TRUNK_OFFER + CRYPTO_80.replace("AES_CM", "F8"))
    assert sdp.negotiate(unusable, srtp="optional").srtp is None
    with pytest.raises(sdp.SrtpNotAcceptable):
        sdp.negotiate(unusable, srtp="required")


def test_srtp_stream_is_preferred_over_a_plain_alternative() -> None:
    # Two m= lines offering the same audio with and without SRTP: we answer one, decline the other.
    both = TRUNK_OFFER + SRTP_OFFER.split("t=0 0\r\n", 1)[1]
    offer = sdp.parse(both)
    secure = sdp.negotiate(offer, srtp="optional")
    assert secure.media_index == 1 and secure.srtp is not None
    text = sdp.answer(offer, secure, address="10.0.0.5", port=40000, session_id=1)
    assert "m=audio 0 RTP/AVP 8 0 101\r\n" in text and "m=audio 40000 RTP/SAVP 0 101\r\n" in text
    plain = sdp.negotiate(offer, srtp="off")
    assert plain.media_index == 0 and plain.srtp is None


def test_answer_keeps_the_session_id_and_bumps_the_version() -> None:
    offer = sdp.parse(TRUNK_OFFER)
    negotiated = sdp.negotiate(offer)
    first = sdp.parse(sdp.answer(offer, negotiated, address="10.0.0.5", port=40000, session_id=77))
    second = sdp.parse(
        sdp.answer(offer, negotiated, address="10.0.0.5", port=40000, session_id=77, version=2)
    )
    assert first.origin == "voicegw 77 1 IN IP4 10.0.0.5" and second.origin == "voicegw 77 2 IN IP4 10.0.0.5"


def test_offer_with_no_connection_address_is_malformed() -> None:
    offer = sdp.parse(SIPP_OFFER.replace("c=IN IP4 127.0.0.1\r\n", ""))
    with pytest.raises(sdp.SdpError, match="the offer has no c= line for its audio"):
        sdp.negotiate(offer)


# --- dialling out: our offer, their answer ---------------------------------------------------

OFFERED = ("PCMU", "PCMA", "opus")


def test_offer_lists_our_codecs_in_order_with_telephone_event_per_clock() -> None:
    text = sdp.offer(OFFERED, address="10.0.0.5", port=40000, session_id=9)
    assert "m=audio 40000 RTP/AVP 0 8 111 101 110\r\n" in text
    assert "a=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10;useinbandfec=1\r\n" in text
    assert "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n" in text
    assert "a=rtpmap:110 telephone-event/48000\r\n" in text
    assert "c=IN IP4 10.0.0.5" in text and "a=rtcp:40001" in text and "a=sendrecv" in text
    assert text.startswith("v=0\r\no=voicegw 9 1 IN IP4 10.0.0.5\r\n")
    parsed = sdp.parse(text)
    audio = parsed.audio()
    assert audio is not None and [audio.rtpmaps[pt].encoding for pt in audio.formats[:3]] == list(OFFERED)


def test_offer_without_opus_has_one_telephone_event() -> None:
    text = sdp.offer(("PCMA",), address="127.0.0.1", port=20000, session_id=1)
    assert "m=audio 20000 RTP/AVP 8 101\r\n" in text and "/48000" not in text


def test_the_answerers_first_offered_codec_wins_with_its_payload_type() -> None:
    answer = sdp.parse(
        "v=0\r\no=far 1 1 IN IP4 192.0.2.7\r\ns=-\r\nc=IN IP4 192.0.2.7\r\nt=0 0\r\n"
        "m=audio 5004 RTP/AVP 8 0 101\r\na=rtpmap:101 telephone-event/8000\r\na=ptime:40\r\n"
    )
    negotiated = sdp.accept_answer(answer, OFFERED)
    assert negotiated.codec == sdp.RtpMap(8, "PCMA", 8000)
    assert negotiated.telephone_event == sdp.RtpMap(101, "telephone-event", 8000)
    assert (negotiated.remote_address, negotiated.remote_port, negotiated.remote_rtcp_port) == (
        "192.0.2.7",
        5004,
        5005,
    )
    assert (negotiated.direction, negotiated.ptime) == ("sendrecv", 40)


def test_an_opus_answer_keeps_the_answers_dynamic_payload_type() -> None:
    answer = sdp.parse(
        "v=0\r\no=far 1 1 IN IP4 192.0.2.7\r\ns=-\r\nc=IN IP4 192.0.2.7\r\nt=0 0\r\n"
        "m=audio 5004 RTP/AVP 96 97\r\na=rtpmap:96 opus/48000/2\r\na=rtpmap:97 telephone-event/48000\r\n"
        "a=recvonly\r\n"
    )
    negotiated = sdp.accept_answer(answer, OFFERED)
    assert (negotiated.codec.encoding, negotiated.codec.payload_type) == ("opus", 96)
    assert negotiated.telephone_event is not None and negotiated.telephone_event.payload_type == 97
    assert negotiated.direction == "sendonly"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("m=audio 5004 RTP/AVP 9\r\n", "no common codec: answered G722, we speak PCMU, PCMA, opus"),
        ("m=audio 0 RTP/AVP 0\r\n", "the answer has no active RTP/AVP audio stream"),
    ],
)
def test_an_answer_with_none_of_our_codecs_is_refused(body: str, message: str) -> None:
    answer = sdp.parse("v=0\r\no=far 1 1 IN IP4 192.0.2.7\r\ns=-\r\nc=IN IP4 192.0.2.7\r\nt=0 0\r\n" + body)
    with pytest.raises(sdp.NoCommonCodec, match=message):
        sdp.accept_answer(answer, OFFERED)


# --- range checks (issue 11: unchecked values left calls stuck) ------------------------------


def _offer_with(old: str, new: str) -> str:
    assert old in TRUNK_OFFER
    return TRUNK_OFFER.replace(old, new)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # The values that left calls stuck (issue 11) and their neighbours.
        (_offer_with("a=ptime:20", "a=ptime:-20"), r"a=ptime:-20'. packet time is not a number of 10-120 ms"),
        (_offer_with("a=ptime:20", "a=ptime:0"), "packet time is not a number of 10-120 ms"),
        (_offer_with("a=ptime:20", "a=ptime:nan"), "packet time"),
        (_offer_with("a=ptime:20", "a=ptime:inf"), "packet time"),
        (_offer_with("a=ptime:20", "a=ptime:100000"), "packet time"),
        (_offer_with("m=audio 13440", "m=audio 70000"), "port '70000' is not a number in 0-65535"),
        (_offer_with("m=audio 13440", "m=audio -1"), "port '-1' is not a number in 0-65535"),
        (_offer_with("m=audio 13440", "m=audio 13440/0"), "port count '0'"),
        (_offer_with("RTP/AVP 8 0 101", "RTP/AVP 8 0 200"), "payload type '200' is not a number in 0-127"),
        (_offer_with("RTP/AVP 8 0 101", "RTP/AVP 8 0 ²"), "payload type '²'"),
        (_offer_with("rtpmap:101 telephone-event/8000", "rtpmap:128 telephone-event/8000"), "'128'"),
        (_offer_with("telephone-event/8000", "telephone-event/0"), "clock rate '0' is not a number in 1000"),
        (_offer_with("telephone-event/8000", "telephone-event/99999999999"), "clock rate"),
        (_offer_with("PCMA/8000", "PCMA/8000/0"), "channels '0' is not a number in 1-8"),
        (_offer_with("PCMA/8000", "PCMA/8000/2/1"), "is not 'rtpmap:<pt> <encoding>/<clock>"),
        (_offer_with("PCMA/8000", "PCM<A>/8000"), "is not 'rtpmap:<pt> <encoding>/<clock>"),
        (_offer_with("a=fmtp:101 0-16", "a=fmtp:101 0-16\x07"), "characters other than printable ASCII"),
        (_offer_with("a=fmtp:101 0-16", "a=fmtp:300 0-16"), "payload type '300'"),
        (
            _offer_with("c=IN IP4 54.172.60.1", "c=IN IP4 54.172.600.1"),
            "'54.172.600.1' is not an IP4 address",
        ),
        (_offer_with("c=IN IP4 54.172.60.1", "c=IN IP4 ::1"), "::1 is not an IP4 address"),
        (_offer_with("c=IN IP4 54.172.60.1", "c=IN IP6 10.0.0.1"), "10.0.0.1 is not an IP6 address"),
        (_offer_with("c=IN IP4 54.172.60.1", "c=IN IP4 media.example.com"), "is not an IP4 address"),
        (_offer_with("c=IN IP4 54.172.60.1", "c=IN IP4 1.2.3.4 extra"), "is not 'IN IP4|IP6 address'"),
        (_offer_with("a=sendrecv", "a=rtcp:0"), "a=rtcp:0'. port '0' is not a number in 1-65535"),
        (_offer_with("a=sendrecv", "a=rtcp:70001 IN IP4 1.2.3.4"), "port '70001'"),
        (_offer_with("a=sendrecv", "a=rtcp:5001 IN IP4 1.2.3"), "'1.2.3' is not an IP4 address"),
        (_offer_with("a=sendrecv", "a=rtcp:5001 IN"), "is not 'rtcp:<port> \\[IN IP4|IP6 <address>\\]'"),
        # Found by the atheris SDP target: an empty value raised a plain ValueError, not SdpError.
        (_offer_with("a=sendrecv", "a=rtcp: "), "port '' is not a number in 1-65535"),
        (_offer_with("m=audio", "m=aud\x01io"), "media type or protocol that is not a token"),
        (_offer_with("a=sendrecv", "a=" + "x" * 2000), "is 2002 characters, at most 1024"),
        (TRUNK_OFFER + "m=audio 0 RTP/AVP 0\r\n" * 16, "more than 16 m= lines"),
        (TRUNK_OFFER + "a=x\r\n" * 260, "more than 256 a= lines"),
        (_offer_with("RTP/AVP 8 0 101", "RTP/AVP" + " 0" * 129), "lists 129 formats, at most 128"),
    ],
)
def test_values_out_of_range_are_the_peers_error(text: str, message: str) -> None:
    with pytest.raises(sdp.SdpError, match=message):
        sdp.parse(text)


def test_port_zero_refuses_a_stream_and_multicast_is_not_acceptable() -> None:
    declined = sdp.parse(LINPHONE_OFFER.replace("m=video 9078", "m=video 0"))
    assert declined.media[1].port == 0  # RFC 3264: a refused stream, allowed
    with pytest.raises(sdp.NotAcceptable, match=r"multicast media \(239\.1\.1\.1\) is not supported"):
        sdp.parse(_offer_with("c=IN IP4 54.172.60.1", "c=IN IP4 239.1.1.1/127"))
    with pytest.raises(sdp.SdpError, match="port 65535 leaves no port \\+ 1 for RTCP"):
        sdp.negotiate(sdp.parse(_offer_with("m=audio 13440", "m=audio 65535")))
    top = sdp.negotiate(sdp.parse(_offer_with("m=audio 13440", "m=audio 65535") + "a=rtcp:65534\r\n"))
    assert (top.remote_port, top.remote_rtcp_port) == (65535, 65534)


def test_addresses_are_normalized_as_sockets_report_them() -> None:
    offer = sdp.parse(_offer_with("c=IN IP4 54.172.60.1", "c=IN IP6 2001:DB8:0:0::1"))
    assert offer.connection == "2001:db8::1"


@pytest.mark.parametrize("ptime", ["10", "22.5", "120"])
def test_ptime_in_range_is_taken(ptime: str) -> None:
    assert sdp.parse(_offer_with("a=ptime:20", f"a=ptime:{ptime}")).media[0].ptime == int(float(ptime))
