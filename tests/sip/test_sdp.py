from __future__ import annotations

import pytest

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
        ("v=0\r\nm=audio x RTP/AVP 0\r\n", "non-numeric port or format"),
        ("v=0\r\nc=IN XX\r\nm=audio 1 RTP/AVP 0\r\n", "is not 'IN IP4|IP6 address'"),
        ("v=0\r\nm=audio 1 RTP/AVP 0\r\na=rtpmap:x PCMU/8000\r\n", "'a=rtpmap:x PCMU/8000' is malformed"),
    ],
)
def test_malformed_sdp_is_the_peers_error(text: str, message: str) -> None:
    with pytest.raises(sdp.SdpError, match=message):
        sdp.parse(text)
