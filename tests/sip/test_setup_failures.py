"""Calls whose set-up cannot succeed end with a final response and leave nothing behind (issue 11).

Before, `a=ptime:-20` got 180 Ringing and then nothing: the set-up task died, and the call kept
two RTP sockets and a `max_calls` slot for good; `m=audio 70000` was answered, and the RTP socket
then died on an overflow.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.test_operations import metric
from voicegw.testing.harness import EchoServer, free_udp_port, http_get
from voicegw.testing.raw_sip import Dialog, Response, offer_sdp

pytestmark = pytest.mark.timeout(90)

MAX_CALLS = 2
ATTEMPTS = MAX_CALLS + 2
"""More bad INVITEs than slots: one slot leaked per bad INVITE would turn the good call into 503."""

BAD_VALUES = {
    "ptime -20": ("a=sendrecv", "a=ptime:-20\r\na=sendrecv"),
    "ptime inf": ("a=sendrecv", "a=ptime:inf\r\na=sendrecv"),
    "port 70000": ("m=audio {port}", "m=audio 70000"),
    "rtcp port 0": ("a=sendrecv", "a=rtcp:0\r\na=sendrecv"),
    "payload type 300": ("RTP/AVP 0 101", "RTP/AVP 0 300"),
    "clock rate 0": ("PCMU/8000", "PCMU/0"),
    "address 300.1.1.1": ("c=IN IP4 127.0.0.1", "c=IN IP4 300.1.1.1"),
}


def final_response(dialog: Dialog) -> Response:
    while (response := dialog.receive()).status < 200:
        pass
    return response


def open_sockets(pid: int) -> int:
    fds = Path(f"/proc/{pid}/fd")
    count = 0
    for fd in fds.iterdir():
        try:
            count += fd.readlink().name.startswith("socket:")
        except FileNotFoundError:
            continue  # closed while we looked
    return count


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.1)
    return predicate()


@pytest.fixture
def limited(voicegw: Callable[..., EchoServer]) -> tuple[EchoServer, int]:
    http_port = free_udp_port()
    server = voicegw(f'[sip]\nmax_calls = {MAX_CALLS}\n[server]\nhttp = "127.0.0.1:{http_port}"\n')
    return server, http_port


def good_call_gets_in(server: EchoServer) -> None:
    dialog = Dialog(server.port)
    try:
        dialog.establish()
        dialog.request("BYE")
        dialog.until(200)
    finally:
        dialog.close()


@pytest.mark.parametrize("bad", sorted(BAD_VALUES))
def test_sdp_values_out_of_range_get_a_final_response_and_leave_nothing_behind(
    bad: str, limited: tuple[EchoServer, int]
) -> None:
    server, http_port = limited
    good_call_gets_in(server)  # the first call opens what stays open (pjsua's pools, the clock)
    sockets = open_sockets(server.proc.pid)
    old, new = BAD_VALUES[bad]
    for _ in range(ATTEMPTS):
        dialog = Dialog(server.port)
        try:
            offer = offer_sdp(dialog.local_port + 2)
            dialog.invite(offer.replace(old.format(port=dialog.local_port + 2), new))
            final = final_response(dialog)
            dialog.ack(for_error=True)
        finally:
            dialog.close()
        assert final.status in (400, 488), f"{bad}: {final.status} {final.reason}"

    assert wait_for(lambda: metric(http_get(http_port, "/metrics")[1], "voicegw_calls_active") == 0)
    assert wait_for(lambda: open_sockets(server.proc.pid) <= sockets), open_sockets(server.proc.pid)
    good_call_gets_in(server)


def test_a_failure_of_our_own_ends_the_call_with_500_and_frees_its_slot(tmp_path: Path) -> None:
    """RTP sockets that cannot be bound (an address not on this host): 500, counted, slot freed."""
    http_port = free_udp_port()
    config = f'[sip]\nmax_calls = {MAX_CALLS}\n[rtp]\nhost = "192.0.2.1"\n'
    server = EchoServer("voicegw", tmp_path, config=config + f'[server]\nhttp = "127.0.0.1:{http_port}"\n')
    try:
        server.wait_ready()
        for _ in range(ATTEMPTS):
            dialog = Dialog(server.port)
            try:
                dialog.invite(offer_sdp(dialog.local_port + 2))
                final = final_response(dialog)
                dialog.ack(for_error=True)
            finally:
                dialog.close()
            assert final.status == 500, f"{final.status} {final.reason}"
        text = http_get(http_port, "/metrics")[1]
        assert metric(text, "voicegw_call_setup_failures_total", cause="error") == ATTEMPTS
        assert metric(text, "voicegw_calls_total", outcome="rejected", status="500") == ATTEMPTS
        assert wait_for(lambda: metric(http_get(http_port, "/metrics")[1], "voicegw_calls_active") == 0)
        failures = [e for e in server.log_events() if e.get("event") == "call_setup_failed"]
        assert len(failures) == ATTEMPTS and all(e.get("call_id") for e in failures), failures
    finally:
        assert server.stop(), server.output()
