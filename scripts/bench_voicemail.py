#!/usr/bin/env python3
"""`voicegw call --amd` end to end: when the callee hears the agent, from the callee's side.

Places real calls (SIPp as the callee, playing synthetic pickups and voicemail greetings with a
beep from voicegw/testing/callees.py; the local OpenAI-Realtime-protocol server of
voicegw/testing/fake_realtime.py as the model, whose answer is a 2 s tone) and times what voicegw
sends on the callee's clock: for a person, the agent's first audio after the answer; for a
machine, the message's first audio after the beep's end (target: within 500 ms).
The callee's clock starts at the first packet voicegw sends, which is within a loopback round trip
of the pcap's start (the ACK): figures are good to about a packet (20 ms).
Wall-clock figures: run it on a quiet machine.

    .venv/bin/python scripts/bench_voicemail.py
    .venv/bin/python scripts/bench_voicemail.py --calls 5
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from voicegw.testing.amd_calls import GREETING, call_callee, tone_onset_ms  # noqa: E402
from voicegw.testing.callees import BEEPS_HZ, PICKUPS, VOICES, greeting, pickup  # noqa: E402
from voicegw.testing.harness import capture_for_sipp  # noqa: E402

HUMAN_EXIT, VOICEMAIL_EXIT = 0, 5


async def one_call(workdir: Path, index: int, machine: bool) -> tuple[float, str]:
    """(ms from the answer or the beep's end to the agent's first audio, a description)."""
    voice = VOICES[index % len(VOICES)]
    speech = workdir / "speech"
    if machine:
        callee = greeting(GREETING, voice, speech, lead_ms=300, beep_hz=BEEPS_HZ[index % len(BEEPS_HZ)])
        scenario, expected = "uas_answer_play_wait_bye.xml", VOICEMAIL_EXIT
    else:
        callee = pickup(PICKUPS[index % len(PICKUPS)], voice, speech, lead_ms=500)
        scenario, expected = "uas_answer_play_bye.xml", HUMAN_EXIT
    calldir = workdir / f"{'machine' if machine else 'human'}{index}"
    calldir.mkdir()
    capture, media_port = capture_for_sipp()
    with capture:
        status, stderr, _, _ = await call_callee(calldir, (capture, media_port), callee, scenario)
        if status != expected:
            raise SystemExit(f"{callee.name}: exit status {status}, expected {expected}\n{stderr[-2000:]}")
        onset = tone_onset_ms(capture)
    reference = callee.beep_end_ms if machine else 0
    assert reference is not None
    return onset - reference, callee.name


async def run(calls: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for machine in (False, True):
            delays = []
            for index in range(calls):
                delay, name = await one_call(workdir, index, machine)
                delays.append(delay)
                print(f"  {name}: {delay:.0f} ms")
            what = (
                "machine: message after the beep's end"
                if machine
                else "human: agent's first audio after the answer"
            )
            print(
                f"{what}: median {statistics.median(delays):.0f} ms, max {max(delays):.0f} ms ({calls} calls)"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3, help="calls of each kind (person, machine)")
    args = parser.parse_args()
    if not 1 <= args.calls <= 20:
        parser.error("--calls must be 1..20")
    asyncio.run(run(args.calls))


if __name__ == "__main__":
    main()
