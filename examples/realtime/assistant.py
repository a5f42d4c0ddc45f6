"""The assistant both realtime examples talk to (cli/demo.py, app/server.py): an agent, two tools,
and the model chosen as the library chooses it (OpenAI Realtime with a key, else the embedded one).
"""

from __future__ import annotations

import datetime
import logging
import sys
from typing import Any

import structlog

from voicegw.contracts.model import ModelUnavailable, RealtimeModel
from voicegw.models.registry import create_model, default_model_name
from voicegw.realtime import RealtimeAgent, function_tool

WEATHER = {"paris": "sunny, 21 °C", "london": "light rain, 14 °C", "new york": "cloudy, 17 °C"}


@function_tool
def get_time() -> str:
    """The current local time."""
    return datetime.datetime.now().strftime("%H:%M")


@function_tool
async def get_weather(city: str) -> str:
    """Today's weather in a city.

    Args:
        city: The city name, for example Paris.
    """
    return WEATHER.get(city.strip().lower(), f"no forecast for {city}")


AGENT = RealtimeAgent(
    name="Voice Assistant",
    instructions=(
        "You are a helpful voice assistant. Answer in one or two short spoken sentences. "
        "Use get_time for the time and get_weather for the weather."
    ),
    tools=[get_time, get_weather],
)


def make_model(name: str | None = None, base_url: str | None = None) -> RealtimeModel:
    """The model `name` (default: openai with OPENAI_API_KEY, else local); `SystemExit` when unusable."""
    name = name or default_model_name()
    settings: dict[str, Any] = {}
    if base_url:
        if name != "openai":
            raise SystemExit("--base-url is for the openai model")
        settings["base_url"] = base_url
    try:
        return create_model(name, **settings)
    except ModelUnavailable as exc:
        raise SystemExit(str(exc)) from None


def configure_logging(verbose: bool) -> None:
    """The conversation goes to stdout; the library logs to stderr (warnings only unless verbose)."""
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO if verbose else logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )
