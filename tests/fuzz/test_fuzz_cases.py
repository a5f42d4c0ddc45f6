"""The SIP messages that once killed the server (tests/sip/fuzz_cases/), each sent to a fresh one."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from voicegw.testing.fuzz.sip_fuzzer import CASES_DIR, load_case, replay
from voicegw.testing.fuzz.sip_transports import HOST, StreamSender, Traffic, UdpSender
from voicegw.testing.fuzz.target import Target, exit_description

CASES = sorted(CASES_DIR.glob("*.bin"))
SETTLE_S = 0.5
REPLAY_RATE = 2500.0


def test_there_are_cases() -> None:
    assert CASES, f"no fuzz cases in {CASES_DIR}"


@pytest.mark.timeout(90)
@pytest.mark.parametrize("case", CASES, ids=[case.stem for case in CASES])
def test_fuzz_case_leaves_the_server_running(case: Path, tmp_path: Path) -> None:
    sequence = load_case(case)
    target = Target(tmp_path, tls=any(sent.transport == "TLS" for sent in sequence))
    target.start()
    try:
        senders: dict[str, UdpSender | StreamSender] = {
            "UDP": UdpSender((HOST, target.port), Traffic()),
            "TCP": StreamSender((HOST, target.port), Traffic()),
        }
        if target.tls_port is not None:
            senders["TLS"] = StreamSender((HOST, target.tls_port), Traffic(), tls=True)
        replay(sequence, senders, REPLAY_RATE)
        time.sleep(SETTLE_S)
        for sender in senders.values():
            sender.close()

        code = target.died()
        assert code is None, f"{case.name} killed the server ({exit_description(code)}):\n{target.log_tail()}"
        assert target.alive(1.0), f"{case.name}: the server no longer answers OPTIONS\n{target.log_tail()}"
        assert target.assertion_failures() == []
    finally:
        assert target.stop(), "the server did not exit cleanly on SIGTERM"
