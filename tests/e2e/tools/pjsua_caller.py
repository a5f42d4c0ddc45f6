"""A SIP caller on pjsua2's own full media stack, for the end-to-end tests.

pjsua2 allows one library instance per process, so tests run this as a subprocess:

    python tests/e2e/tools/pjsua_caller.py sip:echo@127.0.0.1:5080 --codec PCMU \
        --play in.wav --record out.wav --dtmf 5# --hold --end hangup

It calls the URI offering only `--codec` (plus telephone-event), plays the WAV into the call with
pjsua2's player, records what comes back with its recorder (its own jitter buffer and conference
bridge: a different code path from voicegw's), then sends RFC 4733 DTMF, holds and resumes by
re-INVITE, and either hangs up (`--end hangup`) or waits for the far end's BYE (`--end wait-bye`).
`--tls` signals over TLS (the URI gets ``;transport=tls``) and `--srtp mandatory` makes pjmedia's
own SRTP (SDES) key the media, as a secure softphone would.
It prints one JSON report on stdout: call states, status codes, timings, what each step saw.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections.abc import Callable
from typing import Any

import pjsua2 as pj

CLOCK_RATE = 8000
JB_PREFETCH_MS = (40, 20, 80)  # initial, min, max jitter buffer prefetch: shallow on loopback
STEP_TIMEOUT = 10.0
ECHO_TAIL = 1.0  # keep recording this long after the WAV ends: the echo arrives late
CODEC_IDS = {"PCMU": "PCMU/8000/1", "PCMA": "PCMA/8000/1"}
SRTP_USE = {
    "off": pj.PJMEDIA_SRTP_DISABLED,
    "optional": pj.PJMEDIA_SRTP_OPTIONAL,
    "mandatory": pj.PJMEDIA_SRTP_MANDATORY,
}
MEDIA_PROTOS = {
    pj.PJMEDIA_TP_PROTO_RTP_AVP: "RTP/AVP",
    pj.PJMEDIA_TP_PROTO_RTP_SAVP: "RTP/SAVP",
    pj.PJMEDIA_TP_PROTO_RTP_AVPF: "RTP/AVPF",
    pj.PJMEDIA_TP_PROTO_RTP_SAVPF: "RTP/SAVPF",
}


class Caller(pj.Call):
    """Remembers everything the test asserts on; pjsua2 calls it back on the main thread."""

    def __init__(self, account: pj.Account) -> None:
        super().__init__(account)
        self.account = account
        self.transfers: list[str] = []
        """Targets of the REFERs received (pjsua accepts them and calls the target)."""
        self.transferred_call: Caller | None = None
        self.recorder: pj.AudioMediaRecorder | None = None
        """Records the whole call when there is nothing to play (`--record` alone)."""
        self.states: list[str] = []
        self.status_codes: list[int] = []
        self.media_statuses: list[str] = []
        self.confirmed_at: float | None = None
        self.disconnected_at: float | None = None
        self.last_reason = ""
        self.answer_sdp = ""

    def onCallTsxState(self, prm: pj.OnCallTsxStateParam) -> None:
        # The INVITE's 2xx: the far end's SDP answer, for the report.
        event = prm.e
        if event.type == pj.PJSIP_EVENT_TSX_STATE and event.body.tsxState.type == pj.PJSIP_EVENT_RX_MSG:
            message = event.body.tsxState.src.rdata.wholeMsg
            if message.startswith("SIP/2.0 200") and "m=audio" in message and not self.answer_sdp:
                self.answer_sdp = message.split("\r\n\r\n", 1)[-1]

    def onCallState(self, prm: pj.OnCallStateParam) -> None:
        info = self.getInfo()
        self.states.append(info.stateText)
        if info.lastStatusCode and (not self.status_codes or self.status_codes[-1] != info.lastStatusCode):
            self.status_codes.append(int(info.lastStatusCode))
        if info.state == pj.PJSIP_INV_STATE_CONFIRMED and self.confirmed_at is None:
            self.confirmed_at = time.monotonic()
        if info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self.disconnected_at = time.monotonic()
            self.last_reason = info.lastReason

    def onCallTransferRequest(self, prm: pj.OnCallTransferRequestParam) -> None:
        # Accepted (202) as prm says; pjsua calls the target on this new Call and NOTIFYs the outcome.
        self.transfers.append(prm.dstUri)
        self.transferred_call = Caller(self.account)
        prm.newCall = self.transferred_call

    def onCallMediaState(self, prm: pj.OnCallMediaStateParam) -> None:
        info = self.getInfo()  # keep it: iterating a temporary's vector reads freed memory
        for media in info.media:
            if media.type == pj.PJMEDIA_TYPE_AUDIO:
                self.media_statuses.append(MEDIA_STATUS.get(media.status, str(media.status)))

    @property
    def media_status(self) -> str:
        return self.media_statuses[-1] if self.media_statuses else "none"

    @property
    def disconnected(self) -> bool:
        return self.disconnected_at is not None


MEDIA_STATUS = {
    pj.PJSUA_CALL_MEDIA_NONE: "none",
    pj.PJSUA_CALL_MEDIA_ACTIVE: "active",
    pj.PJSUA_CALL_MEDIA_LOCAL_HOLD: "local_hold",
    pj.PJSUA_CALL_MEDIA_REMOTE_HOLD: "remote_hold",
    pj.PJSUA_CALL_MEDIA_ERROR: "error",
}


class Session:
    """The pjsua2 library for one call: single-threaded, events pumped by `wait`."""

    def __init__(
        self, codec: str, *, vad: bool, tls: bool = False, srtp: str = "off", credentials: str = ""
    ) -> None:
        self.ep = pj.Endpoint()
        self.ep.libCreate()
        cfg = pj.EpConfig()
        cfg.uaConfig.threadCnt, cfg.uaConfig.mainThreadOnly = 0, True
        cfg.medConfig.clockRate = cfg.medConfig.sndClockRate = CLOCK_RATE
        cfg.medConfig.jbInit, cfg.medConfig.jbMinPre, cfg.medConfig.jbMaxPre = JB_PREFETCH_MS
        # Without VAD a steady 50 packet/s stream, like a phone; with it pjmedia sends nothing during
        # silence (one keep-alive frame per 5 s), which is how the media-timeout test goes quiet.
        cfg.medConfig.noVad = not vad
        cfg.logConfig.level = cfg.logConfig.consoleLevel = 1
        self.ep.libInit(cfg)
        transport = pj.TransportConfig()
        transport.boundAddress, transport.port = "127.0.0.1", 0
        self.ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, transport)
        tls_transport = None
        if tls:
            # The server's certificate is the test's own, self-signed: not verified.
            tls_transport = self.ep.transportCreate(pj.PJSIP_TRANSPORT_TLS, transport)
        self.ep.audDevManager().setNullDev()
        self.ep.libStart()
        for info in self.ep.codecEnum2():
            self.ep.codecSetPriority(info.codecId, 255 if info.codecId == CODEC_IDS[codec] else 0)
        account_cfg = pj.AccountConfig()
        account_cfg.idUri = "sip:caller@127.0.0.1"
        account_cfg.mediaConfig.transportConfig.boundAddress = "127.0.0.1"
        if tls_transport is not None:
            account_cfg.sipConfig.transportId = tls_transport
        account_cfg.mediaConfig.srtpUse = SRTP_USE[srtp]
        # With SRTP, keys go only over TLS (SDES over plain UDP would hand them to any listener).
        account_cfg.mediaConfig.srtpSecureSignaling = 1 if tls else 0
        if credentials:
            # pjsua answers a 401/407 challenge with these, for any realm.
            username, _, password = credentials.partition(":")
            account_cfg.sipConfig.authCreds.append(pj.AuthCredInfo("digest", "*", username, 0, password))
        self.account = pj.Account()
        self.account.create(account_cfg)

    def wait(self, condition: Callable[[], bool], timeout: float = STEP_TIMEOUT) -> bool:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() >= deadline:
                return False
            self.ep.libHandleEvents(10)
        return True

    def sleep(self, seconds: float) -> None:
        self.wait(lambda: False, seconds)

    def close(self) -> None:
        self.ep.hangupAllCalls()
        self.sleep(0.2)
        self.account.shutdown()
        self.ep.libDestroy()


def run(args: argparse.Namespace) -> dict[str, Any]:
    session = Session(args.codec, vad=args.vad, tls=args.tls, srtp=args.srtp, credentials=args.auth)
    try:
        # The Call lives only inside place_call: gone before the library, whose end it cannot outlive.
        return place_call(session, args)
    finally:
        session.close()


def place_call(session: Session, args: argparse.Namespace) -> dict[str, Any]:
    call = Caller(session.account)
    report: dict[str, Any] = {"codec_offered": args.codec}
    started = time.monotonic()
    uri = args.uri + (";transport=tls" if args.tls and "transport=" not in args.uri else "")
    call.makeCall(uri, pj.CallOpParam(True))
    answered = session.wait(lambda: call.media_status == "active" or call.disconnected)
    report["answered"] = answered and not call.disconnected
    if report["answered"]:
        assert call.confirmed_at is not None
        report["setup_ms"] = round((call.confirmed_at - started) * 1000, 1)
        stream = call.getStreamInfo(0)
        report["codec"] = stream.codecName
        report["media_proto"] = MEDIA_PROTOS.get(stream.proto, str(stream.proto))
        report["answer_sdp"] = call.answer_sdp
        report.update(exchange(session, call, args))
    report["stream"] = stream_stats(call)
    if args.end == "wait-bye":
        report["bye_received"] = session.wait(lambda: call.disconnected, args.bye_timeout)
        report["bye_after_s"] = round(time.monotonic() - started, 2)
    elif not call.disconnected:
        call.hangup(pj.CallOpParam(True))
        session.wait(lambda: call.disconnected)
    call.recorder = None  # closes its WAV file
    if call.transfers:
        report["transfers"] = call.transfers
        report["transferred_call"] = end_transferred_call(session, call.transferred_call)
    report.update(
        states=call.states,
        status_codes=call.status_codes,
        media_statuses=call.media_statuses,
        disconnect_reason=call.last_reason,
        duration_s=round(time.monotonic() - started, 2),
    )
    return report


def end_transferred_call(session: Session, new_leg: Caller | None) -> dict[str, Any]:
    """Hang up the leg a transfer created (here, while its Call is alive: pjsua2 crashes in
    hangupAllCalls on a call whose Call object is gone); what it went through."""
    if new_leg is None:
        return {}
    if not new_leg.disconnected:
        with contextlib.suppress(pj.Error):  # it never started
            new_leg.hangup(pj.CallOpParam(True))
        session.wait(lambda: new_leg.disconnected)
    return {"states": new_leg.states, "status_codes": new_leg.status_codes}


def stream_stats(call: Caller) -> dict[str, int]:
    """The far end's stream as pjmedia saw it (empty once the stream is gone)."""
    try:
        stat = call.getStreamStat(0)
    except pj.Error:
        return {}
    rx = stat.rtcp.rxStat
    return {
        "packets_in": int(rx.pkt),
        "packets_out": int(stat.rtcp.txStat.pkt),
        "lost": int(rx.loss),
        "reordered": int(rx.reorder),
        "jb_discarded": int(stat.jbuf.discard),
        "jb_lost": int(stat.jbuf.lost),
        "jb_empty": int(stat.jbuf.empty),
    }


def exchange(session: Session, call: Caller, args: argparse.Namespace) -> dict[str, Any]:
    """Play and record, then DTMF, then hold and resume; report what each step saw."""
    out: dict[str, Any] = {}
    audio = call.getAudioMedia(-1)
    if args.record and not args.play:
        call.recorder = pj.AudioMediaRecorder()
        call.recorder.createRecorder(args.record)
        audio.startTransmit(call.recorder)
    if args.play:
        player = pj.AudioMediaPlayer()
        player.createPlayer(args.play, pj.PJMEDIA_FILE_NO_LOOP)
        recorder = pj.AudioMediaRecorder()
        if args.record:
            recorder.createRecorder(args.record)
            audio.startTransmit(recorder)
        player.startTransmit(audio)
        duration = player.getInfo().sizeBytes / (2 * CLOCK_RATE) + ECHO_TAIL
        # The far end may hang up meanwhile: then its media port is gone and must not be touched.
        ended_early = session.wait(lambda: call.disconnected, duration)
        if not ended_early:
            player.stopTransmit(audio)
            if args.record:
                audio.stopTransmit(recorder)
        del recorder, player  # closes the WAV files
        out["played"] = not ended_early
    if args.dtmf:
        try:
            call.dialDtmf(args.dtmf)  # RFC 4733; fails if the answer had no telephone-event
        except pj.Error as exc:
            out["dtmf_error"] = exc.info()
        else:
            session.sleep(0.25 * len(args.dtmf) + 0.5)  # pjmedia sends each digit for ~200 ms
            out["dtmf_sent"] = args.dtmf
    if args.hold:
        try:
            call.setHold(pj.CallOpParam(True))
            out["held"] = session.wait(lambda: call.media_status == "local_hold" or call.disconnected)
            resume = pj.CallOpParam(True)
            resume.opt.flag = pj.PJSUA_CALL_UNHOLD
            call.reinvite(resume)
            out["resumed"] = session.wait(lambda: call.media_status == "active" or call.disconnected)
        except pj.Error as exc:
            out["hold_error"] = exc.info()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("uri")
    parser.add_argument("--codec", choices=sorted(CODEC_IDS), default="PCMU")
    parser.add_argument("--play", help="WAV to play into the call (8 kHz mono s16)")
    parser.add_argument(
        "--record", help="WAV to record the far end's audio into (with no --play: the whole call)"
    )
    parser.add_argument("--dtmf", default="", help="digits to send as RFC 4733 events")
    parser.add_argument("--hold", action="store_true", help="hold, then resume, by re-INVITE")
    parser.add_argument("--vad", action="store_true", help="send no RTP during silence")
    parser.add_argument("--end", choices=("hangup", "wait-bye"), default="hangup")
    parser.add_argument("--bye-timeout", type=float, default=20.0)
    parser.add_argument("--tls", action="store_true", help="signal over TLS (the URI's port: TLS listener)")
    parser.add_argument("--srtp", choices=sorted(SRTP_USE), default="off", help="pjmedia's SRTP use (SDES)")
    parser.add_argument("--auth", default="", metavar="USER:PASSWORD", help="digest credentials")
    report = run(parser.parse_args())
    json.dump(report, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
