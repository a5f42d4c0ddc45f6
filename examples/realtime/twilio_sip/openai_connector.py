"""The Agents SDK's twilio_sip flow on voicegw: OpenAI's SIP connector answers, we attach.

    export OPENAI_API_KEY=sk-... OPENAI_WEBHOOK_SECRET=whsec_...
    python examples/realtime/twilio_sip/openai_connector.py --port 8000

Here the call's SIP and audio go to OpenAI (a Twilio trunk pointed at
``sip:<project-id>@sip.api.openai.com;transport=tls``), not to voicegw. OpenAI posts a signed
``realtime.call.incoming`` webhook to ``/openai/webhook``; this server checks the signature,
accepts the call through the Calls API with the agent's instructions, then attaches a session
to the call by its ``call_id`` and logs the conversation. The agent's tools run here.

Prefer ``server.py`` next to this file (voicegw's own SIP server) unless your calls already go to
OpenAI: it keeps the audio in your hands, works with the embedded offline model, and needs no
public HTTPS webhook. README.md compares the two.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from typing import Any

import structlog

try:
    from aiohttp import web
except ModuleNotFoundError:  # the "app" extra, which scripts/setup.sh installs
    sys.exit("this example needs aiohttp: .venv/bin/pip install 'voicegw[app]'")

from voicegw.models.openai_sip import CallGone, accept_call
from voicegw.models.openai_webhooks import WebhookError, incoming_call_id, verify_webhook
from voicegw.realtime import RealtimeAgent, RealtimeRunner
from voicegw.realtime.items import AssistantMessageItem, UserMessageItem
from voicegw.realtime.model_inputs import RealtimeModelSendRawMessage
from voicegw.realtime.openai_realtime import OpenAIRealtimeSIPModel

log = structlog.get_logger()

WELCOME = "Welcome!"
MODEL = "gpt-realtime"

AGENT = RealtimeAgent(
    name="Phone Agent",
    instructions="You answer phone calls. Be concise: one or two short spoken sentences.",
)

CALLS: web.AppKey[dict[str, asyncio.Task[None]]] = web.AppKey("calls", dict)


def make_app(
    agent: RealtimeAgent[Any],
    *,
    api_key: str,
    webhook_secret: str,
    calls_url: str | None = None,
    realtime_url: str | None = None,
    welcome: str = WELCOME,
) -> web.Application:
    """The webhook server; `calls_url` and `realtime_url` point at another OpenAI-protocol host."""

    async def observe(call_id: str) -> None:
        model = OpenAIRealtimeSIPModel(base_url=realtime_url) if realtime_url else OpenAIRealtimeSIPModel()
        runner = RealtimeRunner(agent, model=model)
        async with await runner.run(model_config={"call_id": call_id, "api_key": api_key}) as session:
            greeting = {"response": {"instructions": f"Say exactly '{welcome}' now."}}
            await session.model.send_event(
                RealtimeModelSendRawMessage(message={"type": "response.create", "other_data": greeting})
            )
            async for event in session:
                if event.type == "history_added" and isinstance(event.item, UserMessageItem):
                    log.info("caller_said", call_id=call_id, text=event.item.text)
                elif event.type == "history_updated" and event.history:
                    last = event.history[-1]
                    if isinstance(last, AssistantMessageItem) and last.status == "completed":
                        log.info("agent_said", call_id=call_id, text=last.text)
                elif event.type == "error":
                    log.warning("session_error", call_id=call_id, error=str(event.error))

    async def webhook(request: web.Request) -> web.Response:
        body = await request.read()
        try:
            event = verify_webhook(webhook_secret, request.headers, body, now=time.time())
            call_id = incoming_call_id(event)
        except WebhookError as exc:
            log.warning("webhook_refused", reason=str(exc))
            return web.Response(status=400)
        calls = request.app[CALLS]
        if call_id is None or (call_id in calls and not calls[call_id].done()):
            return web.Response(status=200)  # another event, or a retried delivery
        try:
            instructions = agent.instructions if isinstance(agent.instructions, str) else ""
            await accept_call(
                call_id, {"model": MODEL, "instructions": instructions}, api_key=api_key, base_url=calls_url
            )
        except CallGone:
            log.info("call_gone", call_id=call_id)
            return web.Response(status=200)
        task = asyncio.create_task(observe(call_id), name=f"call-{call_id}")
        calls[call_id] = task
        task.add_done_callback(lambda _: calls.pop(call_id, None))
        return web.Response(status=200)

    async def stop_calls(app: web.Application) -> None:
        tasks = list(app[CALLS].values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    app = web.Application()
    app[CALLS] = {}
    app.router.add_post("/openai/webhook", webhook)
    app.on_cleanup.append(stop_calls)
    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Attach an agent to calls OpenAI's SIP connector answers.")
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    api_key, secret = os.environ.get("OPENAI_API_KEY"), os.environ.get("OPENAI_WEBHOOK_SECRET")
    if not api_key or not secret:
        print("set OPENAI_API_KEY and OPENAI_WEBHOOK_SECRET", file=sys.stderr)
        return 2
    web.run_app(make_app(AGENT, api_key=api_key, webhook_secret=secret), host=args.host, port=args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
