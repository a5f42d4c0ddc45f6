"""Headless Chromium driven over the Chrome DevTools Protocol (a WebSocket), for browser tests.

Only what the tests need: start Chromium with a DevTools port, open a page, evaluate JavaScript,
take a screenshot. Commands are JSON messages with an id; the answer carries the same id.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, BinaryIO

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

COMMAND_TIMEOUT_S = 15.0
STARTUP_TIMEOUT_S = 20.0
HEADLESS_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    # Host candidates as IP addresses, not mDNS names that aiortc cannot resolve.
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    # Chromium skips the loopback interface for ICE unless told; in a loopback-only namespace
    # it is the only one.
    "--allow-loopback-in-peer-connection",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
)


class CdpError(RuntimeError):
    """Chromium answered a command with an error, or the page's JavaScript threw."""


class Cdp:
    """One DevTools WebSocket (the browser's or a page's)."""

    def __init__(self, ws: ClientConnection) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def connect(cls, url: str) -> Cdp:
        return cls(await connect(url, max_size=64 * 1024 * 1024))

    async def _read(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for raw in self._ws:
                message = json.loads(raw)
                future = self._waiting.pop(message.get("id", 0), None)
                if future is not None and not future.done():
                    future.set_result(message)
        for future in self._waiting.values():
            future.cancel()

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        """Run one command; its result."""
        command_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[command_id] = future
        await self._ws.send(json.dumps({"id": command_id, "method": method, "params": params}))
        message = await asyncio.wait_for(future, COMMAND_TIMEOUT_S)
        if "error" in message:
            raise CdpError(f"{method}: {message['error']}")
        result: dict[str, Any] = message.get("result", {})
        return result

    async def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises awaited; as if a user acted)."""
        result = await self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True, userGesture=True
        )
        if "exceptionDetails" in result:
            raise CdpError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def screenshot(self, path: Path) -> None:
        data = await self.send("Page.captureScreenshot", format="png")
        await asyncio.to_thread(path.write_bytes, base64.b64decode(data["data"]))

    async def close(self) -> None:
        await self._ws.close()
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)


def chromium_path() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.fail("chromium is missing (scripts/setup.sh installs it)")
    return path


@contextlib.asynccontextmanager
async def chromium(profile: Path, *extra_flags: str) -> AsyncIterator[Chromium]:
    """A headless Chromium for the duration of the block, its profile in `profile`."""
    log = await asyncio.to_thread(_fresh_profile, profile)
    process = await asyncio.create_subprocess_exec(
        chromium_path(),
        *HEADLESS_FLAGS,
        f"--user-data-dir={profile}",
        *extra_flags,
        "about:blank",
        stdout=log,
        stderr=log,
    )
    browser: Cdp | None = None
    try:
        browser = await Cdp.connect(await _devtools_url(profile, process))
        yield Chromium(browser, profile)
    finally:
        if browser is not None:
            with contextlib.suppress(Exception):
                await browser.close()
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()
        log.close()


def _fresh_profile(profile: Path) -> BinaryIO:
    """Make the profile directory (without a previous run's DevTools port); open Chromium's log."""
    profile.mkdir(parents=True, exist_ok=True)
    (profile / "DevToolsActivePort").unlink(missing_ok=True)
    return (profile / "chromium.log").open("wb")


async def _devtools_url(profile: Path, process: asyncio.subprocess.Process) -> str:
    """The browser's WebSocket URL, from the DevToolsActivePort file Chromium writes at start."""
    active = profile / "DevToolsActivePort"
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STARTUP_TIMEOUT_S
    while loop.time() < deadline:
        if process.returncode is not None:
            raise CdpError(f"chromium exited with {process.returncode}: {_tail(profile / 'chromium.log')}")
        lines = active.read_text().split("\n") if active.exists() else []
        if len(lines) >= 2 and lines[1]:
            return f"ws://127.0.0.1:{lines[0]}{lines[1]}"
        await asyncio.sleep(0.1)
    raise CdpError(f"chromium did not start in {STARTUP_TIMEOUT_S} s: {_tail(profile / 'chromium.log')}")


def _tail(path: Path, size: int = 2000) -> str:
    return path.read_text(errors="replace")[-size:] if path.exists() else ""


class Chromium:
    """A running browser: open pages in it."""

    def __init__(self, browser: Cdp, profile: Path) -> None:
        self.browser = browser
        self.profile = profile

    async def open(self, url: str) -> Cdp:
        """A new page showing `url`, once its document has loaded."""
        target = await self.browser.send("Target.createTarget", url="about:blank")
        port = (self.profile / "DevToolsActivePort").read_text().split("\n")[0]
        page = await Cdp.connect(f"ws://127.0.0.1:{port}/devtools/page/{target['targetId']}")
        await page.send("Page.enable")
        await page.send("Runtime.enable")
        await page.send("Page.navigate", url=url)
        await wait_until(page, "document.readyState === 'complete' && location.href !== 'about:blank'")
        return page

    def log(self) -> str:
        return _tail(self.profile / "chromium.log")


async def wait_until(page: Cdp, expression: str, within: float = 20.0) -> Any:
    """Poll a JavaScript expression until it is truthy; its value. `TimeoutError` after `within` s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        value = await page.evaluate(expression)
        if value:
            return value
        if loop.time() > deadline:
            raise TimeoutError(f"{expression!r} still false after {within} s")
        await asyncio.sleep(0.2)
