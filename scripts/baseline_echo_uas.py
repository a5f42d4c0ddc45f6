"""Baseline echo UAS on pjsua2's own C media: each call's audio is sent back to itself.

The reference the capacity benchmark compares voicegw against, and a second implementation the
end-to-end tests are proven on. Logs JSON lines (event: listening, dtmf, rtp_closed, media_timeout).
    python scripts/baseline_echo_uas.py --listen 127.0.0.1:5090 [--max-calls 1000] [--media-timeout 5]
"""

from __future__ import annotations

import argparse
import json
import signal
import time

import pjsua2 as pj

CLOCK_RATE = 8000  # conference bridge rate: G.711 needs no resampling
JB_PREFETCH_MS = (40, 20, 80)  # initial, min, max jitter buffer prefetch: shallow on loopback


def log(event: str, **fields: object) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


class EchoCall(pj.Call):
    def __init__(self, acc: EchoAccount, call_id: int) -> None:
        super().__init__(acc, call_id)
        self.account, self.last_rx, self.rx_at = acc, -1, time.monotonic()
        self.stats: dict[str, int] = {}

    def onCallMediaState(self, prm: pj.OnCallMediaStateParam) -> None:
        info = self.getInfo()  # keep it: iterating a temporary's vector reads freed memory
        for media in info.media:
            if media.type == pj.PJMEDIA_TYPE_AUDIO and media.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
                audio = self.getAudioMedia(media.index)
                audio.startTransmit(audio)

    def onDtmfDigit(self, prm: pj.OnDtmfDigitParam) -> None:
        log("dtmf", call_id=self.getId(), digit=prm.digit, duration_ms=prm.duration)

    def onStreamDestroyed(self, prm: pj.OnStreamDestroyedParam) -> None:
        self.poll()

    def poll(self) -> int:
        """Refresh the stream counters; return the RTP packets received so far (-1: no stream)."""
        try:
            stat = self.getStreamStat(0)
        except pj.Error:
            return -1
        rx, tx, jb = stat.rtcp.rxStat, stat.rtcp.txStat, stat.jbuf
        self.stats = dict(packets_in=rx.pkt, packets_out=tx.pkt, lost=rx.loss, late=jb.discard)
        return int(rx.pkt)

    def onCallState(self, prm: pj.OnCallStateParam) -> None:
        if self.getInfo().state == pj.PJSIP_INV_STATE_DISCONNECTED:
            log("rtp_closed", call_id=self.getId(), **self.stats)
            # Never drop the last reference inside its own callback: the main loop does it.
            self.account.finished.append(self.account.calls.pop(self.getId()))


class EchoAccount(pj.Account):
    def __init__(self) -> None:
        super().__init__()
        self.calls: dict[int, EchoCall] = {}
        self.finished: list[EchoCall] = []

    def onIncomingCall(self, prm: pj.OnIncomingCallParam) -> None:
        call = self.calls[prm.callId] = EchoCall(self, prm.callId)
        answer = pj.CallOpParam(True)
        answer.statusCode = 200  # pjsua itself answers 488 when no codec is common
        call.answer(answer)


def check_media_timeouts(calls: dict[int, EchoCall], timeout: float, now: float) -> None:
    for call in list(calls.values()):
        received = call.poll()
        if received != call.last_rx:
            call.last_rx, call.rx_at = received, now
        elif now - call.rx_at > timeout:
            log("media_timeout", call_id=call.getId(), silence_s=round(now - call.rx_at, 2))
            call.rx_at = float("inf")
            call.hangup(pj.CallOpParam(True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--listen", default="127.0.0.1:5090")
    parser.add_argument("--max-calls", type=int, default=1000)
    parser.add_argument("--media-timeout", type=float, default=0.0, help="seconds; 0 = never")
    args = parser.parse_args()
    host, port = args.listen.rsplit(":", 1)
    stop: list[int] = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))

    ep = pj.Endpoint()
    ep.libCreate()
    cfg = pj.EpConfig()
    cfg.uaConfig.maxCalls, cfg.uaConfig.threadCnt, cfg.uaConfig.mainThreadOnly = args.max_calls, 0, True
    cfg.medConfig.clockRate = cfg.medConfig.sndClockRate = CLOCK_RATE
    cfg.medConfig.jbInit, cfg.medConfig.jbMinPre, cfg.medConfig.jbMaxPre = JB_PREFETCH_MS
    cfg.medConfig.noVad = True  # a steady 50 packet/s stream, like a phone
    cfg.logConfig.level = cfg.logConfig.consoleLevel = 1
    ep.libInit(cfg)
    transport = pj.TransportConfig()
    transport.boundAddress, transport.port = host, int(port)
    ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, transport)
    ep.audDevManager().setNullDev()
    ep.libStart()
    account_cfg = pj.AccountConfig()
    account_cfg.idUri = f"sip:echo@{host}:{port}"
    account_cfg.mediaConfig.transportConfig.boundAddress = host
    account = EchoAccount()
    account.create(account_cfg)
    log("listening", address=args.listen, mode="pjsua2-baseline-echo")

    next_check = time.monotonic() + 1.0
    while not stop:
        ep.libHandleEvents(10)
        account.finished.clear()
        if args.media_timeout and time.monotonic() >= next_check:
            next_check = time.monotonic() + 1.0
            check_media_timeouts(account.calls, args.media_timeout, time.monotonic())
    ep.hangupAllCalls()
    for _ in range(50):
        ep.libHandleEvents(10)
    account.calls.clear()
    account.finished.clear()
    account.shutdown()
    ep.libDestroy()
    log("stopped")


if __name__ == "__main__":
    main()
