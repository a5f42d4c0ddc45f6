"""SIPp calls the default front desk of a plain `voicegw serve` on the embedded model.

SIPp replays a pcap of the caller's side (a pause for the greeting, a question, "goodbye") from
the port its SDP announces; that port is the test's capture socket, so everything voicegw sends
lands there. The scenario waits for voicegw's BYE: after the question the agent's answer must
carry the tool's fact, and "goodbye" must end the call from our side. A caller who stays silent
is asked whether they are still there, then hung up on.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from tests.e2e.echo_checks import media_packets, sdp_keys
from tests.e2e.front_desk import GREETING_S, RATE, Listener, conversation, front_desk_server, tools_called
from voicegw.testing.harness import EchoServer, SippResult, run_sipp
from voicegw.testing.media import Pcm
from voicegw.testing.rtp_tools import PcapAudio, RtpCapture, build_pcap, decode_stream

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]
NO_INPUT_S = 3.0


async def call(
    server: EchoServer, rtp: tuple[RtpCapture, int], pcm: Pcm, tmp_path: Path
) -> tuple[SippResult, Pcm]:
    """One SIPp call that plays `pcm` and ends on voicegw's BYE; returns what voicegw sent."""
    capture, media_port = rtp
    audio: PcapAudio = build_pcap(tmp_path / "caller.pcap", "PCMU", pcm)
    try:
        await asyncio.to_thread(server.wait_ready, 120)
        result = await asyncio.to_thread(
            run_sipp, "uac_media_timeout.xml", server.port, workdir=tmp_path / "sipp", pcap=audio.path,
            media_port=media_port, keys=sdp_keys(audio), timeout=len(pcm) / RATE + 20,
        )  # fmt: skip
    finally:
        stopped = await asyncio.to_thread(server.stop)
    assert stopped, server.output()
    assert result.ok, (result.output, server.output())
    return result, decode_stream(media_packets(capture, audio.payload_type), "PCMU", clock_rate=RATE)


async def test_sipp_caller_gets_a_tool_answer_and_a_bye_after_goodbye(
    rtp_capture: tuple[RtpCapture, int], tmp_path: Path
) -> None:
    pcm, windows = conversation(tmp_path, ("What are your opening hours?", "Goodbye."))
    server = front_desk_server(tmp_path)

    _, heard = await call(server, rtp_capture, pcm, tmp_path)

    listener = Listener(heard, RATE)
    (hours_start, hours_end), (farewell_start, _) = windows
    greeting, hours = listener.said(0, GREETING_S), listener.said(hours_start, hours_end)
    # The BYE came in time to end SIPp's scenario (it waits for it); the farewell came before it.
    farewell = listener.said(farewell_start, len(heard) / RATE)
    assert "front desk" in greeting or "help" in greeting, (greeting, server.output())
    assert "monday" in hours and "friday" in hours, (hours, server.output())
    assert "goodbye" in farewell or "thank you" in farewell, (farewell, server.output())
    assert tools_called(server) == {"opening_hours", "hang_up"}, server.output()


async def test_sipp_caller_who_stays_silent_is_reprompted_then_hung_up_on(
    rtp_capture: tuple[RtpCapture, int], tmp_path: Path
) -> None:
    silence = np.zeros(int(RATE * 30), dtype=np.int16)
    server = front_desk_server(tmp_path, f"[server]\nno_input_timeout = {NO_INPUT_S}\n")

    _, heard = await call(server, rtp_capture, silence, tmp_path)

    transcript = Listener(heard, RATE).said(GREETING_S - 2, len(heard) / RATE)
    assert "still there" in transcript, (transcript, server.output())
    ended = [e for e in server.log_events() if e.get("event") == "session_ended"]
    assert ended and ended[-1]["supervisor"] == "no input from the caller", server.output()
