"""Who may call (the allow-list, digest credentials) and whether the model has room (503)."""

from __future__ import annotations

import asyncio
import contextlib

from tests.sip.raw_sip import digest_answer
from voicegw.contracts.model import RealtimeModelConfig
from voicegw.server.admission import AccessPolicy, SourcePolicy
from voicegw.server.app import MODEL_BUSY, AgentCalls
from voicegw.server.config import DigestSettings, ModelChoice, ServerConfig
from voicegw.sip.call import CallInfo


def info(source: str, authorization: str = "") -> CallInfo:
    headers = {"authorization": authorization} if authorization else {}
    return CallInfo("c1", "<sip:bob@host>", "<sip:desk@host>", (source, 5060), headers)


def test_source_policy_defaults_to_loopback_and_private_networks() -> None:
    default = SourcePolicy()
    for host in ("127.0.0.1", "10.1.2.3", "192.168.1.20", "172.31.0.1", "::1", "fd00::5"):
        assert default.allows(host), host
    for host in ("8.8.8.8", "54.172.60.1", "2001:db8::1", "not-an-address"):
        assert not default.allows(host), host
    trunk = SourcePolicy(["54.172.60.0/30"])
    assert trunk.allows("54.172.60.3")
    assert not trunk.allows("54.172.60.4") and not trunk.allows("127.0.0.1")


def test_access_policy_without_digest_forbids_strangers() -> None:
    policy = AccessPolicy.configured(ServerConfig())
    assert policy.check(info("192.168.1.5")) is None
    refused = policy.check(info("8.8.8.8"))
    assert refused is not None and (refused.status, refused.reason) == (403, "Forbidden")
    assert refused.detail == "source 8.8.8.8 not allowed" and not refused.headers


def test_access_policy_challenges_strangers_and_lets_the_allowed_in_without() -> None:
    config = ServerConfig(digest=DigestSettings({"alice": "wonderland"}, realm="desk"))
    policy = AccessPolicy.configured(config)
    assert policy.check(info("10.0.0.2")) is None  # the LAN is still allowed without credentials
    challenged = policy.check(info("8.8.8.8"))
    assert challenged is not None and challenged.status == 401
    challenge = challenged.headers["WWW-Authenticate"]
    assert policy.check(info("8.8.8.8", digest_answer(challenge, "alice", "wonderland"))) is None
    wrong = policy.check(info("8.8.8.8", digest_answer(challenge, "alice", "nope", nc="00000002")))
    assert wrong is not None and (wrong.status, wrong.detail) == (403, "wrong credentials for user 'alice'")


async def test_a_saturated_model_turns_new_calls_away_with_503_until_it_drains() -> None:
    calls = AgentCalls(ServerConfig(model=ModelChoice("local")))
    assert calls.admit(info("8.8.8.8")) is None  # who may call is the AccessPolicy's business
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
