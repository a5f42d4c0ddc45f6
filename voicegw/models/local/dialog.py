"""The conversation as the small LLM sees it: prompts, history, tool results and their check.

Pure functions and one history object; no model, no I/O.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from voicegw.contracts.model import ToolSpec
from voicegw.models.local.llm import Message

CHARS_PER_TOKEN = 3
"""A cautious estimate, so the history is trimmed before llama.cpp's context overflows."""

STOPWORDS = frozenset(
    [
        "the",
        "and",
        "for",
        "are",
        "was",
        "were",
        "with",
        "that",
        "this",
        "from",
        "your",
        "you",
        "our",
        "has",
        "have",
        "had",
        "not",
        "but",
        "can",
        "will",
        "its",
        "into",
        "than",
        "then",
        "them",
        "they",
        "there",
        "their",
        "what",
        "when",
        "where",
        "which",
        "who",
        "how",
        "all",
        "any",
    ]
)
NUMBER = re.compile(r"\d+")
APOLOGY_WORDS = ("sorry", "apolog", "unfortunately", "couldn't", "could not", "unable")
WORD = re.compile(r"[a-z]{3,}")
ERROR_PREFIX = "error"


def system_prompt(instructions: str, tools: Sequence[ToolSpec]) -> str:
    """The system message: the agent's instructions plus how to answer in steps."""
    lines = [instructions.strip() or "You are a helpful voice assistant on a phone call."]
    lines.append("You speak on the phone: answer in one or two short sentences, no lists, no markup.")
    lines.append('Reply with JSON. To speak: {"action": "say", "text": "..."}.')
    if tools:
        lines.append("To get facts you do not know, call a tool with its arguments:")
        lines.extend(f'- {{"action": "{tool.name}", ...}}: {tool.description}' for tool in tools)
        lines.append("Never guess a fact a tool can give: call the tool.")
    return "\n".join(lines)


def tool_result_prompt(name: str, output: str) -> str:
    """The message carrying a tool's output back, asking for a spoken answer built on it.

    The output goes as plain facts, without the tool's name or JSON: given those, SmolLM2-135M
    mostly parrots "The get_time tool returned: " (measured on the benchmark's tools: 2 of 6
    answers carried the result that way, 4 of 6 with the facts)."""
    data = _json(output)
    facts = _spoken_value(data) if isinstance(data, dict | list) else output.strip()
    if is_error(output):
        return f"That failed: {facts}.\nSay sorry to the caller in one short sentence."
    return f"Facts: {facts}.\nAnswer my question with these facts in one short sentence."


def is_error(output: str) -> bool:
    """Whether a tool output reports a failure (the session sends ``Error: ...`` texts)."""
    text = output.strip().lower()
    if text.startswith(ERROR_PREFIX):
        return True
    data = _json(output)
    return isinstance(data, dict) and ERROR_PREFIX in data


def key_tokens(output: str) -> tuple[set[str], set[str]]:
    """Numbers and content words of a tool output: what a faithful answer must mention."""
    values = " ".join(_leaves(_json(output))) if _json(output) is not None else output
    text = values.lower()
    words = {word for word in WORD.findall(text) if word not in STOPWORDS}
    return set(NUMBER.findall(text)), words


def carries_result(answer: str, output: str, context: str = "") -> bool:
    """Whether `answer` carries the tool result: every number and name, two thirds of the other
    content words, and no number from nowhere (neither the output nor the caller's `context`)."""
    numbers, words = key_tokens(output)
    text = answer.lower()
    said_numbers = set(NUMBER.findall(text))
    if not numbers <= said_numbers or said_numbers - numbers - set(NUMBER.findall(context)):
        return False
    said = set(WORD.findall(text))
    if not _names(output) <= said:
        return False
    if not words:
        return bool(numbers) or bool(answer.strip())
    return len(words & said) * 3 >= len(words) * 2


SENTENCE_END = re.compile(r"[.!?](\s|$)")
REPEATED = re.compile(r"(.{4,40}?)\1{2,}$", re.S)
UNFINISHED_WORD = re.compile(r"\S+$")
PHRASE_MAX_WORDS = 20
"""Words an answer after a tool may take before it says the result (the benchmark's good ones
did within 16); past that the small model is rambling ("50 units of the product...")."""


class Verdict(enum.Enum):
    """What a phrasing of a tool result, as far as it is written, is worth."""

    CARRIED = "carried"
    """It says the result (or, for a failed tool, apologizes): speak it, no need to read on."""
    PENDING = "pending"
    FAILED = "failed"
    """It went wrong (the tool's name, a number from nowhere, a whole sentence without the
    result, a loop): stop the LLM, the template speaks."""


def judge_phrasing(text: str, name: str, output: str, context: str = "") -> Verdict:
    """Judge the phrasing of tool `name`'s `output` while it is streamed (`context`: what the
    caller said), so a good answer is spoken at once and a bad one costs no more tokens.

    `text` is what would be spoken: whole clauses."""
    if went_wrong(text, name, output, context):
        return Verdict.FAILED
    if is_error(output):
        lowered = text.lower()
        return Verdict.CARRIED if any(word in lowered for word in APOLOGY_WORDS) else _unless_done(text)
    return Verdict.CARRIED if carries_result(text, output, context) else _unless_done(text)


def went_wrong(text: str, name: str, output: str, context: str = "") -> bool:
    """Whether a phrasing is past saving, from its whole words written so far (`text` may end
    inside a clause): the tool's name, a loop, a number from nowhere, or `PHRASE_MAX_WORDS`
    words that have not carried the result."""
    lowered = text.lower()
    if name.lower() in lowered or name.replace("_", " ").lower() in lowered or REPEATED.search(text):
        return True
    if len(lowered.split()) > PHRASE_MAX_WORDS:
        return True
    said = set(NUMBER.findall(lowered))
    return bool(said - set(NUMBER.findall(output.lower())) - set(NUMBER.findall(context)))


def whole_words(text: str) -> str:
    """`text` without its last word when that may be unfinished (a streamed "1" may be "12")."""
    return UNFINISHED_WORD.sub("", text)


def _unless_done(text: str) -> Verdict:
    return Verdict.FAILED if SENTENCE_END.search(text.strip()) else Verdict.PENDING


def _names(output: str) -> set[str]:
    """Capitalized words of the output's values (a city, a person): an answer must say them."""
    data = _json(output)
    values = " ".join(_leaves(data)) if data is not None else output
    return {word.lower() for word in re.findall(r"\b[A-Z][a-z]{2,}", values)} - STOPWORDS


def template_answer(name: str, output: str) -> str:
    """A plain spoken form of a tool result, used when the LLM's phrasing dropped it."""
    if is_error(output):
        reason = output.strip()
        reason = reason[len(ERROR_PREFIX) :].lstrip(":- ") if reason.lower().startswith(ERROR_PREFIX) else ""
        data = _json(output)
        if isinstance(data, dict):
            reason = str(data.get(ERROR_PREFIX, ""))
        return "I'm sorry, I couldn't do that right now." + (f" {reason.rstrip('.')}." if reason else "")
    data = _json(output)
    if isinstance(data, dict):
        parts = [f"{_spoken_key(key)} {_spoken_value(value)}" for key, value in data.items()]
        return "Here is what I found: " + ", ".join(parts) + "."
    return f"Here is what I found: {_spoken_value(data) if data is not None else output.strip()}."


def _spoken_key(key: str) -> str:
    return key.replace("_", " ") + " is"


def _spoken_value(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(_spoken_value(item) for item in value)
    if isinstance(value, dict):
        return ", ".join(f"{_spoken_key(k)} {_spoken_value(v)}" for k, v in value.items())
    return str(value)


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except (json.JSONDecodeError, TypeError, RecursionError):
        return None


def _leaves(data: Any) -> list[str]:
    if isinstance(data, dict):
        return [leaf for value in data.values() for leaf in _leaves(value)]
    if isinstance(data, list):
        return [leaf for value in data for leaf in _leaves(value)]
    return [str(data)]


@dataclass
class History:
    """The messages of one call, trimmed to fit the context window (oldest turns go first).

    Assistant messages remember their item id so that a truncate can cut them to what was heard.
    """

    max_tokens: int
    messages: list[Message] = field(default_factory=list)
    _items: dict[str, int] = field(default_factory=dict)
    _tool_results: list[Message] = field(default_factory=list)

    def add(self, role: str, content: str, item_id: str | None = None) -> None:
        self.messages.append({"role": role, "content": content})
        if item_id:
            self._items[item_id] = len(self.messages) - 1
        self._trim()

    def add_tool_result(self, name: str, output: str) -> None:
        """A tool's output, as a user message asking for an answer built on it."""
        self.add("user", tool_result_prompt(name, output))
        self._tool_results = [m for m in self._tool_results if m in self.messages] + [self.messages[-1]]

    def replace(self, item_id: str, content: str) -> bool:
        """Set the content of the message for `item_id`; False when it is gone (trimmed)."""
        index = self._items.get(item_id)
        if index is None:
            return False
        self.messages[index] = {**self.messages[index], "content": content}
        return True

    def text_of(self, item_id: str) -> str | None:
        index = self._items.get(item_id)
        return None if index is None else self.messages[index]["content"]

    def last_user_text(self) -> str:
        """What the caller said last (tool results travel as user messages too: skipped)."""
        return next(
            (
                m["content"]
                for m in reversed(self.messages)
                if m["role"] == "user" and not any(m is t for t in self._tool_results)
            ),
            "",
        )

    def prompt(
        self, system: str, extra: str | None = None, *, current_turn_only: bool = False
    ) -> list[Message]:
        """The messages for one LLM step: the system prompt, the history, an optional instruction.

        `current_turn_only` keeps only what followed the caller's last words: a tiny model copies
        earlier turns (the previous tool's arguments) rather than using them.
        """
        history = self.messages
        if current_turn_only:
            last = self.last_user_text()
            starts = [i for i, m in enumerate(history) if m["role"] == "user" and m["content"] == last]
            history = history[starts[-1] :] if starts else history
        messages = [{"role": "system", "content": system}, *history]
        if extra:
            messages.append({"role": "system", "content": extra})
        return messages

    def _trim(self) -> None:
        budget = self.max_tokens * CHARS_PER_TOKEN
        while len(self.messages) > 1 and sum(len(m["content"]) for m in self.messages) > budget:
            del self.messages[0]
            self._items = {item: index - 1 for item, index in self._items.items() if index > 0}


@dataclass(frozen=True, slots=True)
class SpokenClause:
    """A clause of an assistant item and where its speech lies in the item's audio (the voice's
    leading and trailing silence excluded, so that a cut maps onto words)."""

    text: str
    start_ms: int
    end_ms: int


def spoken_prefix(clauses: Sequence[SpokenClause], audio_end_ms: int) -> str:
    """The text heard when playback stopped at `audio_end_ms`: whole clauses, then the words of
    the clause under way whose end falls within the share of its speech played, by characters
    (a long word takes longer to say than a short one)."""
    words: list[str] = []
    for clause in clauses:
        if audio_end_ms >= clause.end_ms:
            words.extend(clause.text.split())
            continue
        if audio_end_ms > clause.start_ms:
            share = (audio_end_ms - clause.start_ms) / max(1, clause.end_ms - clause.start_ms)
            budget, said = share * len(clause.text), 0
            for word in clause.text.split():
                said += len(word) + (1 if said else 0)
                if said > budget:
                    break
                words.append(word)
        break
    return " ".join(words)


def _stems(text: str) -> set[str]:
    """Crude stems of the content words: enough to match "opening" with "open", "orders" with "order"."""
    words = WORD.findall(text.lower().replace("_", " "))
    return {word[:4] for word in words if word not in STOPWORDS}


def route_tools(utterance: str, tools: Sequence[ToolSpec]) -> tuple[ToolSpec, ...]:
    """The tools sharing the most word stems with `utterance` (name, description, parameters).

    A 135M-parameter model mostly calls the first tool it is offered, whatever was asked: this
    cheap lexical router picks the candidates, the model still decides between speaking and
    calling, and fills the arguments. No overlap at all: no tool is offered.
    """
    said = _stems(utterance)

    def score(tool: ToolSpec) -> int:
        properties = " ".join((tool.parameters or {}).get("properties", {}))
        return len(said & _stems(f"{tool.name} {tool.description} {properties}"))

    scores = [score(tool) for tool in tools]
    best = max(scores, default=0)
    return tuple(tool for tool, value in zip(tools, scores, strict=True) if value == best and best > 0)
