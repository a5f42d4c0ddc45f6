"""`function_tool`: Python functions become tools the model can call.

The JSON schema comes from the signature (type hints) and the docstring (its first paragraph
describes the tool, its ``Args:`` section each parameter). Schemas are strict, as OpenAI's
strict function calling wants: every property is required and no other is allowed; a parameter
with a default accepts ``null``, which means "use the default". A first parameter typed
`RunContextWrapper` (or `ToolContext`) receives the run context and is not shown to the model.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import inspect
import json
import re
import types
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias, TypedDict, Union, get_args, get_origin, get_type_hints, overload

from typing_extensions import Unpack

from voicegw.contracts.model import ToolSpec
from voicegw.realtime.context import RunContextWrapper, ToolContext

ToolErrorFunction: TypeAlias = Callable[[RunContextWrapper[Any], Exception], str]
"""Turns an exception raised by a tool into the output the model gets."""

IsEnabled: TypeAlias = bool | Callable[[RunContextWrapper[Any], Any], bool | Awaitable[bool]]
"""Whether a tool (or handoff) is offered: a flag, or a function of the context and the agent."""


async def enabled(flag: IsEnabled, ctx: RunContextWrapper[Any], agent: Any) -> bool:
    """Evaluate an `IsEnabled` for `agent`."""
    if isinstance(flag, bool):
        return flag
    result = flag(ctx, agent)
    return bool(await result) if inspect.isawaitable(result) else bool(result)


ApprovalFunction: TypeAlias = Callable[[RunContextWrapper[Any], dict[str, Any], str], bool | Awaitable[bool]]
"""Decides whether one call of a tool needs approval, from its context, arguments and call id."""

_JSON_TYPES: dict[type, str] = {str: "string", int: "integer", float: "number", bool: "boolean"}
_SECTION = re.compile(r"^\s*([A-Z][a-z]+(?: [A-Z]?[a-z]+)?)\s*:\s*$")
_ARGS_SECTIONS = frozenset({"Args", "Arguments", "Parameters"})
_ARG_LINE = re.compile(r"^\s*\*{0,2}(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")


class ToolArgumentsError(ValueError):
    """The model sent arguments that do not fit the tool's schema (or are not JSON at all)."""


def default_tool_error_function(ctx: RunContextWrapper[Any], error: Exception) -> str:
    """The output the model gets when a tool fails: the error, so it can tell the caller."""
    if isinstance(error, ToolArgumentsError):
        return f"An error occurred while parsing tool arguments: {error}. Please try again."
    return f"An error occurred while running the tool. Please try again. Error: {error}"


@dataclass(frozen=True)
class FunctionTool:
    """A tool backed by a Python function (build it with `function_tool`)."""

    name: str
    description: str
    params_json_schema: dict[str, Any]
    on_invoke_tool: Callable[[ToolContext[Any], str], Awaitable[Any]]
    """Runs the tool with its context and its JSON arguments; returns the tool's result."""

    failure_error_function: ToolErrorFunction | None = default_tool_error_function
    """Turns an exception into the output for the model; None lets the exception propagate."""

    strict_json_schema: bool = True

    needs_approval: bool | ApprovalFunction = False
    """Wait for the application's approval before each call (``tool_approval_required``); or a
    function ``(ctx, params, call_id) -> bool`` (sync or async) that decides per call."""

    is_enabled: IsEnabled = True
    """Offer the tool to the model; or a function ``(ctx, agent) -> bool`` (sync or async)
    asked whenever the agent's tools are set (start, handoff)."""

    timeout_seconds: float | None = None
    """How long one call may run; then `timeout_behavior` applies."""

    timeout_behavior: Literal["error_as_result", "raise_exception"] = "error_as_result"
    """On a timeout: tell the model (`timeout_error_function`'s words or a default), or raise
    `TimeoutError` (the session reports it as an error and the model gets the failure text)."""

    timeout_error_function: ToolErrorFunction | None = None

    def spec(self) -> ToolSpec:
        """The tool as the model sees it."""
        return ToolSpec(self.name, self.description, self.params_json_schema)


Tool: TypeAlias = FunctionTool


class FunctionToolOptions(TypedDict, total=False):
    """The options of `function_tool` (the Agents SDK's names and meanings)."""

    name_override: str | None
    """The tool's name (default: the function's)."""

    description_override: str | None
    """The tool's description (default: the docstring's first paragraph)."""

    failure_error_function: ToolErrorFunction | None
    """Turns an exception into the model's output; None lets it propagate. Default: a short message."""

    strict_mode: bool
    """Strict JSON schema (every property required, no other). Default True."""

    needs_approval: bool | ApprovalFunction
    """See `FunctionTool.needs_approval`."""

    docstring_style: Literal["google"] | None
    """voicegw reads Google-style docstrings; another style is refused."""

    use_docstring_info: bool
    """Take the description and the parameters' descriptions from the docstring. Default True."""

    is_enabled: IsEnabled
    """See `FunctionTool.is_enabled`."""

    timeout: float | None
    """See `FunctionTool.timeout_seconds`."""

    timeout_behavior: Literal["error_as_result", "raise_exception"]
    timeout_error_function: ToolErrorFunction | None
    tool_input_guardrails: list[Any] | None
    """Refused when not empty: voicegw has no tool guardrails."""

    tool_output_guardrails: list[Any] | None
    """Refused when not empty: voicegw has no tool guardrails."""


@overload
def function_tool(func: Callable[..., Any], /) -> FunctionTool: ...


@overload
def function_tool(**options: Unpack[FunctionToolOptions]) -> Callable[[Callable[..., Any]], FunctionTool]: ...


def function_tool(
    func: Callable[..., Any] | None = None, /, **options: Unpack[FunctionToolOptions]
) -> FunctionTool | Callable[[Callable[..., Any]], FunctionTool]:
    """Make a tool of a sync or async function; usable as ``@function_tool`` or ``@function_tool(...)``.

    A failing tool gives the model ``failure_error_function(ctx, error)`` as its output (by
    default a short error message) instead of ending the session. Options are the Agents SDK's
    (`FunctionToolOptions`); an unknown one, a docstring style other than Google's and tool
    guardrails (voicegw has none) are refused by name.
    """
    unknown = set(options) - set(FunctionToolOptions.__annotations__)
    if unknown:
        raise TypeError(f"function_tool got unknown option(s): {', '.join(sorted(unknown))}")
    if (style := options.get("docstring_style")) not in (None, "google"):
        raise ValueError(f"function_tool docstring_style={style!r}: voicegw reads Google-style docstrings")
    if options.get("tool_input_guardrails") or options.get("tool_output_guardrails"):
        raise ValueError(
            "function_tool tool_input_guardrails/tool_output_guardrails: voicegw has no tool guardrails"
        )
    strict_mode = options.get("strict_mode", True)

    def build(function: Callable[..., Any]) -> FunctionTool:
        use_docstring = options.get("use_docstring_info", True)
        description, param_docs = (
            parse_docstring(inspect.getdoc(function) or "") if use_docstring else ("", {})
        )
        params, takes_context = _parameters(function)
        schema = _object_schema(params, param_docs, strict_mode)

        async def invoke(ctx: ToolContext[Any], arguments: str) -> Any:
            kwargs = _bind_arguments(params, parse_arguments(arguments, schema))
            result = function(ctx, **kwargs) if takes_context else function(**kwargs)
            if inspect.isawaitable(result):
                result = await result
            return result

        return FunctionTool(
            name=options.get("name_override") or function.__name__,
            description=options.get("description_override") or description,
            params_json_schema=schema,
            on_invoke_tool=invoke,
            failure_error_function=options.get("failure_error_function", default_tool_error_function),
            strict_json_schema=strict_mode,
            needs_approval=options.get("needs_approval", False),
            is_enabled=options.get("is_enabled", True),
            timeout_seconds=options.get("timeout"),
            timeout_behavior=options.get("timeout_behavior", "error_as_result"),
            timeout_error_function=options.get("timeout_error_function"),
        )

    return build if func is None else build(func)


async def invoke_function_tool(tool: FunctionTool, ctx: ToolContext[Any], arguments: str) -> str:
    """Run `tool` and return the model's output text; failures become error text (see above)."""
    try:
        async with asyncio.timeout(tool.timeout_seconds):
            result = await tool.on_invoke_tool(ctx, arguments)
    except TimeoutError as exc:
        if tool.timeout_behavior == "raise_exception":
            raise
        if tool.timeout_error_function is not None:
            return tool.timeout_error_function(ctx, exc)
        return f"Tool '{tool.name}' timed out after {tool.timeout_seconds:g} seconds."
    except Exception as exc:
        if tool.failure_error_function is None:
            raise
        return tool.failure_error_function(ctx, exc)
    return tool_output_text(result)


def tool_output_text(result: Any) -> str:
    """A tool's return value as the text sent to the model (JSON unless it is already a string)."""
    if isinstance(result, str):
        return result
    if dataclasses.is_dataclass(result) and not isinstance(result, type):
        result = dataclasses.asdict(result)
    return json.dumps(result, default=str)


def parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """Split a Google-style docstring into its description and its ``Args:`` entries."""
    description: list[str] = []
    params: dict[str, str] = {}
    section: str | None = None
    current: str | None = None
    for line in doc.splitlines():
        if header := _SECTION.match(line):
            section, current = header.group(1), None
        elif section is None:
            description.append(line)
        elif section in _ARGS_SECTIONS and (match := _ARG_LINE.match(line)):
            current = match.group(1)
            params[current] = match.group(2).strip()
        elif section in _ARGS_SECTIONS and current and line.strip():
            params[current] = f"{params[current]} {line.strip()}"
    first_paragraph = "\n".join(description).strip().split("\n\n")[0]
    return " ".join(first_paragraph.split()), params


@dataclass(frozen=True)
class _Param:
    name: str
    annotation: Any
    default: Any


def _parameters(function: Callable[..., Any]) -> tuple[list[_Param], bool]:
    hints = get_type_hints(function)
    params = list(inspect.signature(function).parameters.values())
    takes_context = bool(params) and _is_context_type(hints.get(params[0].name))
    if takes_context:
        params = params[1:]
    result = []
    for param in params:
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise TypeError(f"function_tool {function.__name__!r}: *args/**kwargs are not supported")
        if param.name not in hints:
            raise TypeError(f"function_tool {function.__name__!r}: parameter {param.name!r} has no type hint")
        result.append(_Param(param.name, hints[param.name], param.default))
    return result, takes_context


def _is_context_type(annotation: Any) -> bool:
    origin = get_origin(annotation) or annotation
    return isinstance(origin, type) and issubclass(origin, RunContextWrapper)


def _object_schema(params: list[_Param], docs: dict[str, str], strict: bool) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    required: list[str] = []
    for param in params:
        has_default = param.default is not inspect.Parameter.empty
        prop = json_schema(param.annotation, strict)
        if has_default and strict:
            prop = _nullable(prop)
        if docs.get(param.name):
            prop = {**prop, "description": docs[param.name]}
        properties[param.name] = prop
        if strict or not has_default:
            required.append(param.name)
    schema: dict[str, Any] = {"type": "object", "properties": properties, "required": required}
    if strict:
        schema["additionalProperties"] = False
    return schema


def _nullable(prop: dict[str, Any]) -> dict[str, Any]:
    if "anyOf" in prop:
        if {"type": "null"} in prop["anyOf"]:
            return prop
        return {**prop, "anyOf": [*prop["anyOf"], {"type": "null"}]}
    return {"anyOf": [prop, {"type": "null"}]}


def json_schema(annotation: Any, strict: bool = True) -> dict[str, Any]:
    """The JSON schema of a Python type: scalars, lists, dicts, Literal, Enum, unions, dataclasses."""
    origin, args = get_origin(annotation), get_args(annotation)
    if annotation in _JSON_TYPES:
        return {"type": _JSON_TYPES[annotation]}
    if annotation is type(None):
        return {"type": "null"}
    if annotation is Any:
        return {}
    if origin is Literal:
        return {"enum": list(args)}
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return {"enum": [member.value for member in annotation]}
    if origin in (Union, types.UnionType):
        return {"anyOf": [json_schema(arg, strict) for arg in args]}
    if origin in (list, tuple, set, frozenset) or annotation in (list, tuple):
        item = args[0] if args else Any
        return {"type": "array", "items": json_schema(item, strict)}
    if origin is dict or annotation is dict:
        value = args[1] if len(args) == 2 else Any
        return {"type": "object", "additionalProperties": json_schema(value, strict)}
    if dataclasses.is_dataclass(annotation) and isinstance(annotation, type):
        hints = get_type_hints(annotation)
        fields = [
            _Param(f.name, hints[f.name], inspect.Parameter.empty) for f in dataclasses.fields(annotation)
        ]
        return _object_schema(fields, {}, strict)
    raise TypeError(f"function_tool: cannot build a JSON schema for type {annotation!r}")


def parse_arguments(arguments: str, schema: dict[str, Any]) -> dict[str, Any]:
    """Decode the model's JSON arguments and check them against `schema`'s top level."""
    try:
        value = json.loads(arguments or "{}")
    except json.JSONDecodeError as exc:
        raise ToolArgumentsError(f"arguments are not valid JSON ({exc.msg} at position {exc.pos})") from exc
    except RecursionError:
        raise ToolArgumentsError("arguments are nested deeper than JSON parsing allows") from None
    if not isinstance(value, dict):
        raise ToolArgumentsError(f"arguments must be a JSON object, got {type(value).__name__}")
    properties: dict[str, Any] = schema.get("properties", {})
    missing = [name for name in schema.get("required", []) if name not in value]
    if missing:
        raise ToolArgumentsError(f"missing required argument(s): {', '.join(missing)}")
    unknown = [name for name in value if name not in properties]
    if unknown and schema.get("additionalProperties") is False:
        raise ToolArgumentsError(f"unknown argument(s): {', '.join(unknown)}")
    for name, arg in value.items():
        if name in properties and not _matches(arg, properties[name]):
            raise ToolArgumentsError(f"argument {name!r} has the wrong type: {arg!r}")
    return value


def _matches(value: Any, schema: dict[str, Any]) -> bool:
    if "anyOf" in schema:
        return any(_matches(value, option) for option in schema["anyOf"])
    if "enum" in schema:
        return value in schema["enum"]
    match schema.get("type"):
        case "string":
            return isinstance(value, str)
        case "integer":
            return isinstance(value, int) and not isinstance(value, bool)
        case "number":
            return isinstance(value, int | float) and not isinstance(value, bool)
        case "boolean":
            return isinstance(value, bool)
        case "null":
            return value is None
        case "array":
            return isinstance(value, list) and all(_matches(v, schema.get("items", {})) for v in value)
        case "object":
            return isinstance(value, dict)
        case _:
            return True


def _bind_arguments(params: list[_Param], values: dict[str, Any]) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    for param in params:
        value = values.get(param.name)
        if value is None and param.default is not inspect.Parameter.empty:
            continue  # null (or absent) means: use the default
        kwargs[param.name] = _convert(value, param.annotation)
    return kwargs


def _convert(value: Any, annotation: Any) -> Any:
    """JSON values into the annotated Python types where they differ (Enum, dataclass, tuple)."""
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return annotation(value)
    if dataclasses.is_dataclass(annotation) and isinstance(annotation, type) and isinstance(value, dict):
        hints = get_type_hints(annotation)
        return annotation(**{k: _convert(v, hints.get(k, Any)) for k, v in value.items()})
    origin = get_origin(annotation)
    if origin in (tuple, set, frozenset) and isinstance(value, list):
        return origin(value)
    return value
