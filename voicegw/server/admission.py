"""Who may call: the signalling policy of ``[access]``, built from the server's configuration.

Safe by default: with no allow-list, only loopback and private (LAN) addresses may call, since
an open SIP port on the internet is found within hours by toll-fraud scanners. A profile for a
provider (``sip_profiles/twilio.toml``) lists the provider's signalling ranges instead; a PBX or
softphone elsewhere authenticates with SIP digest (``[access.digest]``). The rules themselves,
for every method, are `voicegw.sip.policy.SignallingPolicy`'s.
"""

from __future__ import annotations

import socket

from voicegw.server.config import ServerConfig
from voicegw.sip.digest import MAX_NODE_ID, NODE_ID_CHARS, DigestVerifier
from voicegw.sip.policy import SignallingPolicy, SourcePolicy


def access_policy(config: ServerConfig) -> SignallingPolicy:
    """The policy of ``[access]``: its allow-list, its limits and, if given, its digest users."""
    settings = config.digest
    digest = None
    if settings is not None:
        digest = DigestVerifier(
            settings.realm,
            settings.users,
            secret=settings.nonce_secret.encode() if settings.nonce_secret is not None else None,
            node_id=settings.node_id or default_node_id(),
        )
    return SignallingPolicy(SourcePolicy(config.allow), digest, config.limits)


def default_node_id() -> str:
    """This host's name, as far as a node id may carry it."""
    name = "".join(c for c in socket.gethostname().split(".")[0] if c in NODE_ID_CHARS)
    return name[:MAX_NODE_ID] or "voicegw"
