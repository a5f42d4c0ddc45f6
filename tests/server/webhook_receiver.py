"""A webhook receiver on a real local HTTP server (aiohttp): checks every signature with `verify`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from voicegw.server.webhooks import WebhookVerificationError, verify, webhook_headers
from voicegw.testing.harness import free_tcp_port

SECRET = "whsec_test"


@dataclass
class Receiver:
    """Answers `statuses` in turn (then 200); with `hang`, never answers a genuine delivery."""

    statuses: list[int] = field(default_factory=list)
    hang: bool = False
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    verified: list[bool] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.received.append((dict(request.headers), body))
        try:
            verify(SECRET, body, *webhook_headers(request.headers))
            self.verified.append(True)
        except WebhookVerificationError:
            self.verified.append(False)
            return web.Response(status=401)
        if self.hang:
            await asyncio.sleep(3600)
        return web.Response(status=self.statuses.pop(0) if self.statuses else 200)

    def documents(self) -> list[dict[str, Any]]:
        """Every body received, decoded."""
        return [json.loads(body) for _, body in self.received]

    def config(self, **settings: object) -> str:
        """The ``[server.webhooks]`` table sending here."""
        extra = "".join(f"{key} = {value!r}\n" for key, value in settings.items())
        return f'[server.webhooks]\nurls = ["{self.url}"]\nsecret = "{SECRET}"\n{extra}'


@asynccontextmanager
async def webhook_receiver(**options: Any) -> AsyncIterator[Receiver]:
    hook = Receiver(**options)
    app = web.Application()
    app.router.add_post("/hooks", hook.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    port = free_tcp_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    hook.url = f"http://127.0.0.1:{port}/hooks"
    try:
        yield hook
    finally:
        await runner.cleanup()
