"""A browser's SDP offer is hostile input: mutated offers (voicegw.testing.fuzz.sip_mutate, fresh
seed printed) get `WebRtcOfferError` from `accept` or an answer, and `close` never raises."""

from __future__ import annotations

import asyncio
import os
import random
import secrets

from aiortc import RTCPeerConnection

from voicegw.testing.fuzz.sip_mutate import mutate
from voicegw.transports.webrtc import WebRtcOfferError, WebRtcTransport

OFFERS = 1500
ACCEPT_TIMEOUT_S = 10


async def _browser_offer() -> bytes:
    pc = RTCPeerConnection()
    try:
        pc.addTransceiver("audio")
        pc.createDataChannel("events")
        await pc.setLocalDescription(await pc.createOffer())
        return pc.localDescription.sdp.encode()
    finally:
        await pc.close()


async def test_mutated_offers_are_refused_with_their_error_or_answered() -> None:
    seed = int(os.environ.get("WEBRTC_OFFER_SEED") or secrets.randbits(32))
    print(f"webrtc offer fuzz seed {seed} (replay: WEBRTC_OFFER_SEED={seed} pytest {__file__})")
    rng = random.Random(seed)
    offer = await _browser_offer()
    outcomes = {"answered": 0, "refused": 0}
    for n in range(OFFERS):
        mutated, mutations = mutate(offer, [offer], rng)
        transport = WebRtcTransport(sample_rate=16000)
        try:
            await asyncio.wait_for(transport.accept(mutated.decode("utf-8", "replace")), ACCEPT_TIMEOUT_S)
            outcomes["answered"] += 1
        except WebRtcOfferError:
            outcomes["refused"] += 1
        except Exception as exc:
            raise AssertionError(f"seed {seed}, offer {n} ({', '.join(mutations)}): {exc!r}") from exc
        finally:
            await transport.close()  # raises nothing, whatever the offer left half-applied
    print(outcomes)
    assert outcomes["refused"] > 0
