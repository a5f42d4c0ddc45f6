"""A front-desk agent, useful out of the box.

    voicegw serve --agent voicegw.server.default_agent:front_desk

It greets the caller, answers from a small bundled FAQ and directory (``data/front_desk.toml``,
or the file named by ``[agent] data``), tells the time, offers a keypad menu, transfers to the
operator (``[agent] operator = "sip:..."``; without one it says no operator is available), and
says goodbye and hangs up when the caller does.

Tools are written for the embedded model too: its small LLM is handed only the tools whose name
and description share words with what the caller said (`voicegw.models.local.dialog.route_tools`),
so each tool is described with the words a caller would use, and no two share those words.
"""

from __future__ import annotations

import datetime as dt
import tomllib
import zoneinfo
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from voicegw.contracts.transport import CallInfo, TransferResult
from voicegw.realtime import FunctionTool, RealtimeAgent, ToolContext, function_tool
from voicegw.realtime.call_tools import call_of, hang_up_tool

NO_OPERATOR = "I'm sorry, no operator is available right now."

INSTRUCTIONS = """You are the front desk of {name}, answering the phone.
Speak in one or two short, friendly sentences. Never guess facts: use your tools for our opening
hours, address, departments and the time. If the caller wants a person, call transfer.
When the caller says goodbye or has nothing more to ask, say goodbye and call hang_up."""


class FrontDeskDataError(ValueError):
    """The front desk's data file is wrong; the message names the file and the entry."""


@dataclass(frozen=True, slots=True)
class Department:
    name: str
    extension: str
    floor: str = ""


@dataclass(frozen=True, slots=True)
class FaqEntry:
    name: str
    description: str
    answer: str


@dataclass(frozen=True, slots=True)
class FrontDesk:
    """The front desk's facts, as read from its TOML file."""

    name: str
    greeting: str
    farewell: str
    timezone: str
    keypad: dict[str, str]
    faq: tuple[FaqEntry, ...]
    departments: tuple[Department, ...]

    @classmethod
    def load(cls, path: Path | None = None) -> FrontDesk:
        """Read `path`, or the bundled example; raises `FrontDeskDataError` naming what is wrong."""
        source: Path | Traversable = path or resources.files("voicegw.server") / "data" / "front_desk.toml"
        try:
            data = tomllib.loads(source.read_text(encoding="utf-8"))
            return cls(
                name=str(data["name"]),
                greeting=str(data["greeting"]),
                farewell=str(data["farewell"]),
                timezone=str(data.get("timezone", "")),
                keypad={str(key): str(text) for key, text in data.get("keypad", {}).items()},
                faq=tuple(FaqEntry(e["name"], e["description"], e["answer"]) for e in data.get("faq", [])),
                departments=tuple(Department(**d) for d in data.get("department", [])),
            )
        except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError) as exc:
            raise FrontDeskDataError(f"{source}: {type(exc).__name__}: {exc}") from None

    def now(self) -> dt.datetime:
        if not self.timezone:
            return dt.datetime.now().astimezone()
        return dt.datetime.now(zoneinfo.ZoneInfo(self.timezone))


def front_desk(
    info: CallInfo | None = None, *, operator: str | None = None, data: str | Path | None = None
) -> RealtimeAgent[Any]:
    """The front-desk agent for one call (`voicegw serve` calls it with the call's info and the
    ``[agent]`` options: `operator`, the SIP URI of a person to transfer to; `data`, a TOML file)."""
    desk = FrontDesk.load(Path(data) if data else None)
    tools = [
        current_time_tool(desk),
        *(faq_tool(entry) for entry in desk.faq),
        *([directory_tool(desk.departments)] if desk.departments else []),
        transfer_to_operator_tool(operator),
        hang_up_tool(farewell=desk.farewell),
    ]
    return RealtimeAgent(
        name="Front desk",
        instructions=INSTRUCTIONS.format(name=desk.name),
        tools=tools,
        greeting=desk.greeting,
        dtmf_menu=desk.keypad,
    )


def current_time_tool(desk: FrontDesk) -> FunctionTool:
    def current_time() -> dict[str, str]:
        """The current time and today's date: what time it is now, what day it is today."""
        now = desk.now()
        return {"time": now.strftime("%I:%M %p").lstrip("0"), "date": now.strftime("%A, %B %d")}

    return function_tool(current_time)


def faq_tool(entry: FaqEntry) -> FunctionTool:
    def answer() -> str:
        return entry.answer

    return function_tool(name_override=entry.name, description_override=entry.description)(answer)


def directory_tool(departments: tuple[Department, ...]) -> FunctionTool:
    by_name = {d.name.lower(): d for d in departments}
    names = ", ".join(by_name)

    def directory(department: str) -> dict[str, str]:
        found = by_name.get(department.strip().lower())
        if found is None:
            return {"error": f"there is no department {department!r}; ours are {names}"}
        return {"department": found.name, "extension": found.extension, "floor": found.floor}

    description = f"Phone directory: the extension number and floor of a department ({names})."
    return function_tool(description_override=description)(directory)


def transfer_to_operator_tool(operator: str | None) -> FunctionTool:
    """Our own ``transfer``: to the configured operator only (it replaces the built-in one, which
    would let the model dial any number a caller names)."""

    async def transfer(ctx: ToolContext[Any]) -> TransferResult | str:
        """Talk or speak to someone: transfer the call to a real person, a human at the front desk,
        the operator."""
        if not operator:
            return NO_OPERATOR
        return await call_of(ctx).transfer(operator)

    return function_tool(transfer)
