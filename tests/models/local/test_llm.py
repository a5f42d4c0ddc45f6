"""Step schemas, streamed text extraction, clause cutting, and spoken steps of the packaged LLM."""

from __future__ import annotations

import functools
import json
import time

import pytest

from voicegw.contracts.model import ToolSpec
from voicegw.models.local.llm import (
    PROMPT_CHUNK_TOKENS,
    ClauseSplitter,
    LlamaCppBackend,
    LlmError,
    TextField,
    continuation,
    json_text,
    parse_step,
    step_schema,
)
from voicegw.models.local.workers import StepProgress, waiting_turn

TIME = ToolSpec("get_time", "The current time.", {"type": "object", "properties": {}})
ORDER = ToolSpec(
    "lookup_order",
    "Status of an order.",
    {"type": "object", "properties": {"order_number": {"type": "string"}}, "required": ["order_number"]},
)


def test_step_schema_offers_say_and_each_tool_with_action_first() -> None:
    schema = step_schema((TIME, ORDER))
    options = schema["oneOf"]
    assert [o["properties"]["action"]["const"] for o in options] == ["say", "get_time", "lookup_order"]
    assert all(next(iter(o["properties"])) == "action" for o in options)
    assert options[2]["required"] == ["action", "order_number"]
    assert step_schema(())["properties"]["action"] == {"const": "say"}


def test_text_field_streams_the_text_token_by_token() -> None:
    step = json.dumps({"action": "say", "text": 'It is "ten" o\'clock.\nBye'})
    field = TextField()
    pieces = [field.feed(step[i : i + 3]) for i in range(0, len(step), 3)]
    assert "".join(pieces) == 'It is "ten" o\'clock.\nBye'
    assert sum(1 for p in pieces if p) > 3  # it really streamed


def test_clauses_cut_at_sentence_ends_not_inside_numbers() -> None:
    splitter = ClauseSplitter()
    out = []
    for token in ["It is 10", ".", "30 now", ". Your order", " ships today", "! Anything", " else"]:
        out += splitter.feed(token)
    assert out == ["It is 10.30 now.", "Your order ships today!"]
    assert splitter.flush() == ["Anything else"]


def test_first_clause_is_cut_early_later_ones_at_long_commas() -> None:
    splitter = ClauseSplitter()
    text = "Sure, I can help with that, and your order, number 42, is on its way to you now and arrives soon."
    out = [clause for word in text.split(" ") for clause in splitter.feed(word + " ")]
    assert out[:2] == ["Sure,", "I can help with that, and your order,"]
    assert "number 42, is on its way to you now and arrives soon." in out
    long_first = ClauseSplitter()
    words = "Your order is on its way to you now and arrives soon."
    out = [clause for word in words.split(" ") for clause in long_first.feed(word + " ")]
    assert out == ["Your order is on its way", "to you now and arrives soon."]


def test_parse_step() -> None:
    step = parse_step('{"action": "lookup_order", "order_number": "42"}', 1.0, 2.0)
    assert step.tool == "lookup_order" and step.arguments == {"order_number": "42"}
    assert parse_step('{"action": "say", "text": "Hi."}', 0, 0).text == "Hi."
    with pytest.raises(LlmError, match="no valid step"):
        parse_step('{"action": "say", "te', 0, 0)


def test_json_text_yields_the_text_of_a_streamed_step() -> None:
    step = json.dumps({"action": "say", "text": "It is ten o'clock."})
    assert "".join(json_text(iter(step[i : i + 4] for i in range(0, len(step), 4)))) == "It is ten o'clock."


def test_only_a_step_with_one_way_to_begin_has_a_fixed_opening() -> None:
    say = continuation(json.dumps(step_schema(())))
    assert say is not None and say[0] == '{"action": "say", "text": "'
    order = continuation(json.dumps(step_schema((ORDER,), allow_say=False)))
    assert order is not None and order[0] == '{"action": "lookup_order",'
    assert order[1].count('root ::= " " order-number-kv') == 1
    assert continuation(json.dumps(step_schema((TIME,), allow_say=False))) is None  # no arguments
    assert continuation(json.dumps(step_schema((TIME, ORDER)))) is None  # a choice


@pytest.mark.parametrize("tools", [(), (ORDER,)], ids=["say", "one tool"])
def test_an_opening_ends_on_a_token_boundary_of_the_whole_step(tools: tuple[ToolSpec, ...]) -> None:
    """The next step's prompt holds the whole step as text: its tokens must begin with the
    opening's, or llama.cpp's prompt cache stops matching there."""
    llm = LlamaCppBackend()
    llm.load()
    opening = continuation(json.dumps(step_schema(tools, allow_say=not tools)))
    assert opening is not None
    whole = json.dumps(
        {"action": "lookup_order", "order_number": "42"} if tools else {"action": "say", "text": "Hi."}
    )
    assert whole.startswith(opening[0])
    tokenize = functools.partial(llm._llama.tokenize, add_bos=False)
    begun = tokenize(opening[0].encode())
    assert tokenize(whole.encode())[: len(begun)] == begun


@pytest.mark.parametrize("tools", [(), (ORDER,)], ids=["say", "one tool"])
def test_the_packaged_model_continues_a_fixed_opening_into_a_valid_step(tools: tuple[ToolSpec, ...]) -> None:
    llm = LlamaCppBackend()
    messages = [
        {"role": "system", "content": 'Reply with JSON. To speak: {"action": "say", "text": "..."}.'},
        {"role": "user", "content": "Hello, where is my order number 42?"},
    ]
    schema = step_schema(tools, allow_say=not tools)
    pieces = list(llm.stream(messages, schema, max_tokens=96, temperature=0.0))
    opening = continuation(json.dumps(schema))
    assert opening is not None and pieces[0] == opening[0]  # given, not generated
    step = parse_step("".join(pieces), 0.0, 0.0)
    if tools:
        assert step.tool == "lookup_order" and step.arguments["order_number"], step
    else:
        assert step.tool is None and step.text.strip(), step


def test_a_long_prompt_is_read_in_pieces_each_progress_of_the_running_step() -> None:
    """A history evicted from the shared KV cache is read again: the stuck-step watch must see
    that read as alive, not as a step producing nothing (`StepProgress`)."""
    backend = LlamaCppBackend()
    backend.load()
    llama, lock = backend._llama, backend._lock
    assert lock is not None
    tokens = llama.tokenize(b"The caller asked about the order again. " * 60)
    assert len(tokens) > 3 * PROMPT_CHUNK_TOKENS
    progress = StepProgress()
    with progress.step("llm"), waiting_turn(lock):
        llama.reset()
        started = time.monotonic()
        llama.eval(tokens)
        now = time.monotonic()
        assert llama.n_tokens == len(tokens)  # the pieces read it all, in order
        # The last piece's progress is the end of the read, not its start.
        (gap,) = progress.gaps(now)
        assert gap.silent_s < (now - started) / 2
        llama.reset()
