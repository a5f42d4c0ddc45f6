"""Who may call (the allow-list, digest credentials) and whether the model has room (503)."""

from __future__ import annotations

import asyncio
import contextlib
import socket

from voicegw.contracts.model import RealtimeModelConfig
from voicegw.server.admission import access_policy, default_node_id
from voicegw.server.app import MODEL_BUSY, AgentCalls
from voicegw.server.config import DigestSettings, ModelChoice, ServerConfig
from voicegw.sip.call import CallInfo
from voicegw.sip.digest import valid_node_id
from voicegw.sip.guard import IncomingRequest, Refusal
from voicegw.sip.policy import AccessLimits, SourcePolicy
from voicegw.testing.raw_sip import digest_answer

URI = "sip:desk@10.0.0.1"


def info(source: str) -> CallInfo:
    return CallInfo("c1", "<sip:bob@host>", "<sip:desk@host>", (source, 5060), {})


def invite(source: str, authorization: str = "") -> IncomingRequest:
    header = f"Authorization: {authorization}\r\n" if authorization else ""
    raw = f"INVITE {URI} SIP/2.0\r\nCall-ID: c1\r\n{header}Content-Length: 0\r\n\r\n"
    return IncomingRequest("INVITE", (source, 5060), "udp", False, raw.encode())


def test_source_policy_defaults_to_loopback_and_private_networks() -> None:
    default = SourcePolicy()
    for host in ("127.0.0.1", "10.1.2.3", "192.168.1.20", "172.31.0.1", "::1", "fd00::5", "::ffff:10.0.0.9"):
        assert default.allows(host), host
    for host in ("8.8.8.8", "54.172.60.1", "2001:db8::1", "not-an-address", "[::ffff:8.8.8.8]"):
        assert not default.allows(host), host
    trunk = SourcePolicy(["54.172.60.0/30"])
    assert trunk.allows("54.172.60.3")
    assert not trunk.allows("54.172.60.4") and not trunk.allows("127.0.0.1")


def test_access_policy_without_digest_forbids_strangers() -> None:
    policy = access_policy(ServerConfig())
    assert policy(invite("192.168.1.5"), 0.0) is None
    assert policy(invite("8.8.8.8"), 0.0) == Refusal(403, "Forbidden")


def test_access_policy_challenges_strangers_and_lets_the_allowed_in_without() -> None:
    config = ServerConfig(
        digest=DigestSettings({"alice": "wonderland"}, realm="desk", node_id="n1"),
        limits=AccessLimits(max_failures=7),
    )
    policy = access_policy(config)
    assert policy.limits.max_failures == 7
    assert policy(invite("10.0.0.2"), 0.0) is None  # the LAN is still allowed without credentials
    challenged = policy(invite("8.8.8.8"), 0.0)
    assert challenged is not None and challenged.status == 401
    challenge = dict(challenged.headers)["WWW-Authenticate"]
    assert policy(invite("8.8.8.8", digest_answer(challenge, "alice", "wonderland", uri=URI)), 0.0) is None
    wrong = digest_answer(challenge, "alice", "nope", nc="00000002", uri=URI)
    assert policy(invite("8.8.8.8", wrong), 0.0) == Refusal(403, "Forbidden")


def test_the_default_node_id_is_the_host_name_as_far_as_a_nonce_may_carry_it() -> None:
    node = default_node_id()
    assert valid_node_id(node)
    assert node in {socket.gethostname().split(".")[0][:64], "voicegw"}


async def test_a_saturated_model_turns_new_calls_away_with_503_until_it_drains() -> None:
    calls = AgentCalls(ServerConfig(model=ModelChoice("local")))
    assert calls.admit(info("8.8.8.8")) is None  # who may call is the access policy's business
    model = calls.new_model()
    await model.connect(RealtimeModelConfig(sample_rate=8000))
    try:
        queue = model._speaking.queue  # type: ignore[attr-defined]
        assert queue is not None
        async with contextlib.AsyncExitStack() as held:
            # Every inference slot busy, and as many turns waiting as the queue takes.
            for _ in range(queue.slots):
                await held.enter_async_context(queue.slot())
            waiting = [asyncio.create_task(_wait_for_slot(queue)) for _ in range(queue.max_waiting)]
            await asyncio.sleep(0)
            assert model.saturated
            assert calls.admit(info("127.0.0.1")) == MODEL_BUSY and MODEL_BUSY.status == 503
        await asyncio.gather(*waiting)
        assert not model.saturated and calls.admit(info("127.0.0.1")) is None
    finally:
        await model.close()


async def _wait_for_slot(queue) -> None:  # type: ignore[no-untyped-def]
    async with queue.slot():
        pass
