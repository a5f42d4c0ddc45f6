"""Prompts, the tool-result check, the template fallback, history trimming and truncation."""

from __future__ import annotations

import pytest

from voicegw.models.local.dialog import (
    History,
    SpokenClause,
    Verdict,
    carries_result,
    is_error,
    judge_phrasing,
    spoken_prefix,
    template_answer,
    went_wrong,
    whole_words,
)

HOURS = '{"branch": "Springfield", "opens": "9:00", "closes": "17:30"}'


def test_carries_result_needs_the_numbers_and_most_words() -> None:
    assert carries_result("The Springfield branch opens at 9:00 and closes at 17:30.", HOURS)
    assert not carries_result("The branch opens at nine.", HOURS)
    assert not carries_result("I can help you with that.", '{"time": "10:45"}')
    assert carries_result("It is 10:45 now.", '{"time": "10:45"}')
    assert not carries_result("It was delivered.", '{"status": "delivered", "city": "Boston"}')
    assert carries_result("It was delivered in Boston.", '{"status": "delivered", "city": "Boston"}')
    # A number from nowhere is an invention; one the caller said is not.
    assert not carries_result("Order 42 arrives Friday, 12/2022.", '{"arrives": "Friday"}', "order 42")
    assert carries_result("Order 42 arrives Friday.", '{"arrives": "Friday"}', "where is order 42")


def test_template_speaks_every_value_and_apologises_for_errors() -> None:
    text = template_answer("lookup_hours", HOURS)
    assert carries_result(text, HOURS)
    assert is_error("Error: the order service is down")
    assert is_error('{"error": "not found"}')
    assert not is_error(HOURS)
    apology = template_answer("lookup_order", "Error: the order service is down")
    assert apology.startswith("I'm sorry") and "order service is down" in apology


def test_history_trims_the_oldest_and_replaces_by_item() -> None:
    history = History(max_tokens=20)  # about 60 characters
    history.add("user", "a" * 30)
    history.add("assistant", "b" * 20, item_id="item_1")
    history.add("user", "c" * 20)
    assert [m["content"][0] for m in history.messages] == ["b", "c"]
    assert history.replace("item_1", "bb")
    assert history.text_of("item_1") == "bb"
    history.add("user", "d" * 50)
    assert history.text_of("item_1") is None and not history.replace("item_1", "x")
    roomy = History(max_tokens=200)
    roomy.add("user", "what time is it")
    roomy.add_tool_result("get_time", "10:45")
    assert roomy.last_user_text() == "what time is it"
    roomy.add("user", "and where is order 42")
    roomy.add("assistant", '{"action": "lookup_order"}')
    roomy.add_tool_result("lookup_order", "shipped")
    recent = roomy.prompt("sys", current_turn_only=True)
    assert [m["content"][:6] for m in recent] == ["sys", "and wh", '{"acti', "Facts:"]


def test_spoken_prefix_cuts_at_the_audio_played() -> None:
    clauses = [
        SpokenClause("It is ten thirty.", 0, 1000),
        SpokenClause("Anything else I can do?", 1000, 2000),
    ]
    assert spoken_prefix(clauses, 2500) == "It is ten thirty. Anything else I can do?"
    assert spoken_prefix(clauses, 1000) == "It is ten thirty."
    # Half of the second clause's speech: the words within half of its characters.
    assert spoken_prefix(clauses, 1500) == "It is ten thirty. Anything"
    assert spoken_prefix(clauses, 1600) == "It is ten thirty. Anything else"
    assert spoken_prefix(clauses, 0) == ""


@pytest.mark.parametrize(
    ("text", "verdict"),
    [
        ("The Springfield branch opens at 9:00 and closes at 17:30,", Verdict.CARRIED),
        ("The Springfield branch opens at 9:00", Verdict.PENDING),  # the closing time may follow
        ("Sure, let me see", Verdict.PENDING),
        ("Sure. The branch is open.", Verdict.FAILED),  # a whole sentence went by without it
        ("The lookup hours tool returned", Verdict.FAILED),  # the tool's own name: no answer
        ("The Springfield branch opens at 8:00", Verdict.FAILED),  # a number from nowhere
        ("It opens at It opens at It opens at ", Verdict.FAILED),  # a loop
    ],
)
def test_phrasing_is_judged_while_it_streams(text: str, verdict: Verdict) -> None:
    assert judge_phrasing(text, "lookup_hours", HOURS, "When does Springfield open?") is verdict


def test_a_failed_tool_is_carried_by_an_apology() -> None:
    error = '{"error": "order 7 not found"}'
    assert judge_phrasing("I'm sorry,", "lookup_order", error, "order 7") is Verdict.CARRIED
    assert judge_phrasing("Your order", "lookup_order", error, "order 7") is Verdict.PENDING


ORDER = '{"status": "out for delivery", "arrives": "Friday"}'


@pytest.mark.parametrize(
    ("text", "wrong"),
    [
        ("Your order is out for delivery and", False),
        ("Delivery confirmed, arriving on Friday at 300 units of 1", False),  # "1" may be "12"
        ("Delivery confirmed, arriving on Friday at 300 units of 100 ", True),  # 100: from nowhere
        ("The lookup order says", True),
        ("It is on its way to you and it should be with you very soon now, I think, so do not worry ", True),
    ],
)
def test_a_rambling_phrasing_fails_before_its_clause_ends(text: str, wrong: bool) -> None:
    assert went_wrong(whole_words(text), "lookup_order", ORDER, "Where is my order number 300?") is wrong
