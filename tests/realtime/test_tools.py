"""function_tool: schema from signature and docstring, context injection, invocation, failures."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from typing import Literal

import pytest

from voicegw.realtime import RunContextWrapper, ToolArgumentsError, ToolContext, function_tool
from voicegw.realtime.tools import invoke_function_tool, parse_docstring


class Unit(enum.Enum):
    CELSIUS = "celsius"
    FAHRENHEIT = "fahrenheit"


@dataclass
class Address:
    street: str
    number: int


def ctx(context: object = None, arguments: str = "{}") -> ToolContext:
    return ToolContext(context, tool_name="t", tool_call_id="c1", tool_arguments=arguments)


@function_tool
def get_weather(city: str, unit: Unit = Unit.CELSIUS, days: int = 1) -> str:
    """Get the weather forecast for a city.

    Longer explanation that the model does not need.

    Args:
        city: The city name, e.g. "Paris".
        unit: The temperature unit.
        days: How many days
            to forecast.

    Returns:
        A sentence.
    """
    return f"{city}:{unit.value}:{days}"


def test_schema_from_signature_and_docstring_is_strict() -> None:
    assert get_weather.name == "get_weather"
    assert get_weather.description == "Get the weather forecast for a city."
    assert get_weather.params_json_schema == {
        "type": "object",
        "properties": {
            "city": {"type": "string", "description": 'The city name, e.g. "Paris".'},
            "unit": {
                "anyOf": [{"enum": ["celsius", "fahrenheit"]}, {"type": "null"}],
                "description": "The temperature unit.",
            },
            "days": {
                "anyOf": [{"type": "integer"}, {"type": "null"}],
                "description": "How many days to forecast.",
            },
        },
        "required": ["city", "unit", "days"],
        "additionalProperties": False,
    }
    spec = get_weather.spec()
    assert (spec.name, spec.parameters) == ("get_weather", get_weather.params_json_schema)


async def test_sync_tool_with_defaults_and_enum_conversion() -> None:
    assert (
        await invoke_function_tool(get_weather, ctx(), '{"city": "Oslo", "unit": null, "days": null}')
        == "Oslo:celsius:1"
    )
    assert await invoke_function_tool(
        get_weather, ctx(), '{"city": "Oslo", "unit": "fahrenheit", "days": 3}'
    ) == ("Oslo:fahrenheit:3")


async def test_context_is_injected_and_hidden_from_the_model() -> None:
    @function_tool(name_override="whoami", description_override="Who is calling.")
    async def caller_name(context: RunContextWrapper[dict], greeting: str) -> dict:
        return {"text": f"{greeting} {context.context['name']}"}

    assert caller_name.name == "whoami"
    assert caller_name.description == "Who is calling."
    assert list(caller_name.params_json_schema["properties"]) == ["greeting"]
    output = await invoke_function_tool(caller_name, ctx({"name": "Ada"}), '{"greeting": "hi"}')
    assert json.loads(output) == {"text": "hi Ada"}


async def test_tool_context_carries_the_call() -> None:
    @function_tool
    def echo_call(context: ToolContext[None]) -> str:
        """Say which call this is."""
        return f"{context.tool_name}/{context.tool_call_id}"

    assert echo_call.params_json_schema["properties"] == {}
    assert await invoke_function_tool(echo_call, ctx(), "{}") == "t/c1"


def test_nested_types() -> None:
    @function_tool(strict_mode=False)
    def ship(to: Address, tags: list[str], mode: Literal["air", "sea"], note: str | None = None) -> None:
        """Ship it."""

    schema = ship.params_json_schema
    assert schema["required"] == ["to", "tags", "mode"]
    assert "additionalProperties" not in schema
    assert schema["properties"]["to"]["properties"]["number"] == {"type": "integer"}
    assert schema["properties"]["tags"] == {"type": "array", "items": {"type": "string"}}
    assert schema["properties"]["mode"] == {"enum": ["air", "sea"]}
    assert schema["properties"]["note"] == {"anyOf": [{"type": "string"}, {"type": "null"}]}


async def test_dataclass_argument_is_built() -> None:
    @function_tool
    def deliver(to: Address) -> str:
        """Deliver."""
        return f"{to.number} {to.street}"

    assert (
        await invoke_function_tool(deliver, ctx(), '{"to": {"street": "Main St", "number": 5}}')
        == "5 Main St"
    )


async def test_failure_becomes_error_output_by_default() -> None:
    @function_tool
    def broken(x: int) -> int:
        """Breaks."""
        raise RuntimeError("disk full")

    output = await invoke_function_tool(broken, ctx(), '{"x": 1}')
    assert "disk full" in output and output.startswith("An error occurred while running the tool")

    @function_tool(failure_error_function=lambda c, e: f"custom: {e}")
    def broken2(x: int) -> int:
        """Breaks too."""
        raise RuntimeError("nope")

    assert await invoke_function_tool(broken2, ctx(), '{"x": 1}') == "custom: nope"

    @function_tool(failure_error_function=None)
    def broken3(x: int) -> int:
        """Breaks loudly."""
        raise RuntimeError("loud")

    with pytest.raises(RuntimeError, match="loud"):
        await invoke_function_tool(broken3, ctx(), '{"x": 1}')


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ("{nope", "not valid JSON"),
        ('{"city": ' + "[" * 100_000, "nested deeper than JSON parsing allows"),
        ("[1]", "must be a JSON object"),
        ('{"city": 5, "unit": null, "days": null}', "argument 'city' has the wrong type"),
        ('{"city": "x", "unit": null, "days": null, "extra": 1}', "unknown argument(s): extra"),
        ('{"city": "x", "unit": "kelvin", "days": null}', "argument 'unit' has the wrong type"),
    ],
)
async def test_bad_arguments_are_reported(arguments: str, message: str) -> None:
    with pytest.raises(ToolArgumentsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        await get_weather.on_invoke_tool(ctx(), arguments)
    assert message.split("(")[0] in await invoke_function_tool(get_weather, ctx(), arguments)


def test_unsupported_signatures_are_refused() -> None:
    with pytest.raises(TypeError, match="has no type hint"):

        @function_tool
        def untyped(x) -> None:
            """No hint."""

    with pytest.raises(TypeError, match=r"\*args"):

        @function_tool
        def star(*args: int) -> None:
            """Star."""


def test_docstring_parsing() -> None:
    description, params = parse_docstring(
        "Do it.\n\nArgs:\n    a (int): First.\n    b: Second\n        line.\n"
    )
    assert description == "Do it."
    assert params == {"a": "First.", "b": "Second line."}
