"""The LLM stage: every step is one JSON object, constrained by a grammar built from the tools.

A step is either ``{"action": "say", "text": "..."}`` or ``{"action": "<tool>", <arguments>}``.
Two interchangeable backends produce it: a GGUF file run by llama-cpp-python in-process
(default: the packaged SmolLM2-135M-Instruct), or any OpenAI-compatible chat-completions
endpoint (llama.cpp's server, Ollama, vLLM) given by ``base_url``.

When the grammar leaves only one way to begin (a step that can only speak, or only call one
tool with arguments), llama.cpp is handed that opening as the start of its reply instead of
generating it: the caller does not wait for the ten tokens of ``{"action": "say", "text": "``
to come one at a time.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

from voicegw.contracts.model import ModelUnavailable, ToolSpec
from voicegw.models.local.packaged import llm_model_file
from voicegw.models.local.workers import computing, progressed, shared, waiting_turn

SAY = "say"
N_CTX = 2048
N_THREADS = 2
MAX_TEXT_CHARS = 160
"""A spoken reply longer than this is a monologue on the phone; the grammar forbids it."""

SPOKEN_TEXT = f'^[^{{}}<>*#\\[\\]"\\\\\\n]{{1,{MAX_TEXT_CHARS}}}$'
"""No template placeholders ("{name}") or markup in spoken text."""
ARGUMENT_TEXT = "^[A-Za-z0-9][A-Za-z0-9 .,'-]{0,79}$"
"""Free-text arguments (a name, an order number) start with a letter or digit and stay plain:
a tiny model otherwise fills them with punctuation and timestamps."""

SAY_OPENING = f'{{"action": "{SAY}", "text": "'
"""How every spoken step begins."""
SAY_REST_GRAMMAR = f'root ::= [^{{}}<>*#\\[\\]"\\\\\\n]{{1,{MAX_TEXT_CHARS}}} "\\"}}"'
"""The rest of a spoken step after `SAY_OPENING`: the `SPOKEN_TEXT` characters, then ``"}``."""
ROOT_OPENING = 'root ::= "{" space '

PROMPT_CHUNK_TOKENS = 128
"""A prompt is read in pieces this long, each progress of the step: a call whose history another
call's step evicted from the shared KV cache reads it all again (seconds on busy cores), and a
stuck-step watch must see that as alive. Smaller pieces cost llama.cpp more; 128 is a few
hundred ms of reading under load."""

DEFAULT_MAX_TOKENS = 96
HTTP_TIMEOUT_S = 60.0
JSON_SCHEMA = "json_schema"
JSON_OBJECT = "json_object"
REJECTED_FORMAT_CODES = frozenset({400, 422, 500})
"""llama-cpp-python's server answers an unknown response_format with a 500."""

Message = dict[str, str]


class LlmError(RuntimeError):
    """The LLM backend failed (an endpoint error, invalid output)."""


def step_schema(tools: Sequence[ToolSpec], *, allow_say: bool = True) -> dict[str, Any]:
    """JSON schema of one step: say something (when `allow_say`), or call one of `tools`.

    ``action`` comes first so that the step's kind is known after a few tokens.
    """
    say = {
        "type": "object",
        "properties": {
            "action": {"const": SAY},
            "text": {"type": "string", "pattern": SPOKEN_TEXT},
        },
        "required": ["action", "text"],
        "additionalProperties": False,
    }
    options: list[dict[str, Any]] = [say] if allow_say or not tools else []
    for tool in tools:
        params = tool.parameters or {}
        properties = {"action": {"const": tool.name}}
        for name, prop in params.get("properties", {}).items():
            plain = prop.get("type") == "string" and not {"pattern", "enum", "const", "format"} & prop.keys()
            properties[name] = {**prop, "pattern": ARGUMENT_TEXT} if plain else prop
        options.append(
            {
                "type": "object",
                "properties": properties,
                "required": ["action", *params.get("required", [])],
                "additionalProperties": False,
            }
        )
    return options[0] if len(options) == 1 else {"oneOf": options}


class LlmBackend(Protocol):
    """Produces the tokens of one grammar-constrained step; blocking (run it in a worker)."""

    name: str

    def load(self) -> None: ...

    def warm(self, messages: list[Message]) -> None:
        """Read `messages` ahead of the first step, where the backend keeps what it has read."""
        ...

    def stream(
        self, messages: list[Message], schema: dict[str, Any], *, max_tokens: int, temperature: float
    ) -> Iterator[str]: ...


@lru_cache(maxsize=32)
def _grammar(schema_json: str) -> Any:
    from llama_cpp import LlamaGrammar

    return LlamaGrammar.from_json_schema(schema_json, verbose=False)


@lru_cache(maxsize=32)
def _gbnf(text: str) -> Any:
    from llama_cpp import LlamaGrammar

    return LlamaGrammar.from_string(text, verbose=False)


@lru_cache(maxsize=32)
def continuation(schema_json: str) -> tuple[str, str] | None:
    """``(opening, GBNF of the rest)`` of a step schema that admits only one opening: speaking,
    or one tool with required arguments. None for a choice (or a tool without arguments)."""
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    schema = json.loads(schema_json)
    properties = schema.get("properties", {})
    action = properties.get("action", {}).get("const")
    if action is None:
        return None
    if action == SAY:
        return SAY_OPENING, SAY_REST_GRAMMAR
    required = [name for name in schema.get("required", []) if name != "action"]
    if not required:
        return None
    arguments = {
        **schema,
        "properties": {name: prop for name, prop in properties.items() if name != "action"},
        "required": required,
    }
    # The arguments object's grammar without its "{": it goes on after `"action": ...,`. The
    # space is the model's to write: as the opening's last token it would differ from the token
    # (` "`) the next step's prompt has there, and llama.cpp would read the whole step again.
    grammar = json_schema_to_gbnf(json.dumps(arguments))
    if ROOT_OPENING not in grammar:
        return None
    return f'{{"action": "{action}",', grammar.replace(ROOT_OPENING, 'root ::= " " ', 1)


def json_text(deltas: Iterator[str]) -> Iterator[str]:
    """The ``text`` field of a streamed spoken step, as it grows."""
    field = TextField()
    for delta in deltas:
        if text := field.feed(delta):
            yield text


def _load_llama(path: str) -> tuple[Any, threading.Lock]:
    from llama_cpp import Llama

    class ProgressingLlama(Llama):
        """Reads prompts in `PROMPT_CHUNK_TOKENS` pieces, each progress of the running step."""

        def eval(self, tokens: Sequence[int]) -> None:
            for start in range(0, len(tokens), PROMPT_CHUNK_TOKENS):
                super().eval(tokens[start : start + PROMPT_CHUNK_TOKENS])
                progressed()

    llama = ProgressingLlama(model_path=path, n_ctx=N_CTX, n_threads=N_THREADS, verbose=False)
    # One llama context decodes one sequence at a time: calls sharing it take turns.
    return llama, threading.Lock()


class LlamaCppBackend:
    """A GGUF chat model run in-process by llama-cpp-python, shared by every call."""

    def __init__(self, model_path: Path | str | None = None) -> None:
        self.model_path = str(model_path or llm_model_file())
        self.name = Path(self.model_path).name
        self._llama: Any = None
        self._lock: threading.Lock | None = None
        self._chat_format: Any = None

    def load(self) -> None:
        try:
            import llama_cpp  # noqa: F401
        except ImportError as exc:
            raise ModelUnavailable(
                "the local model needs llama-cpp-python: pip install 'voicegw[local]'"
            ) from exc
        self._llama, self._lock = shared(("llama", self.model_path), lambda: _load_llama(self.model_path))

    def warm(self, messages: list[Message]) -> None:
        """Evaluate the call's fixed prompt now: llama.cpp keeps it (the KV cache of the last
        prompt) and the first answer only reads what follows it."""
        if self._llama is None or self._lock is None:
            self.load()
        assert self._lock is not None
        with waiting_turn(self._lock):
            self._llama.create_chat_completion(messages=messages, max_tokens=1)

    def stream(
        self, messages: list[Message], schema: dict[str, Any], *, max_tokens: int, temperature: float
    ) -> Iterator[str]:
        if self._llama is None or self._lock is None:
            self.load()
        assert self._lock is not None
        schema_json = json.dumps(schema, sort_keys=False)
        fixed = continuation(schema_json)
        with waiting_turn(self._lock):
            computing()  # llama.cpp's calling thread is one of its compute threads
            if fixed is None:
                chunks = self._llama.create_chat_completion(
                    messages=messages,
                    grammar=_grammar(schema_json),
                    stream=True,
                    max_tokens=max_tokens,
                    temperature=temperature,
                )
                for chunk in chunks:
                    if delta := chunk["choices"][0]["delta"].get("content"):
                        yield delta
                return
            opening, rest = fixed
            yield opening
            # The chat template's prompt, as create_chat_completion builds it (so the KV cache of
            # the previous step still matches), and the reply already begun.
            prompt = self._formatter()(messages=messages).prompt + opening
            chunks = self._llama.create_completion(
                prompt, grammar=_gbnf(rest), stream=True, max_tokens=max_tokens, temperature=temperature
            )
            for chunk in chunks:
                if text := chunk["choices"][0]["text"]:
                    yield text

    def _formatter(self) -> Any:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        if self._chat_format is None:
            llama = self._llama
            self._chat_format = Jinja2ChatFormatter(
                template=llama.metadata["tokenizer.chat_template"],
                eos_token=llama.detokenize([llama.token_eos()]).decode(),
                bos_token=llama.detokenize([llama.token_bos()]).decode(),
            )
        return self._chat_format


class OpenAICompatibleBackend:
    """Any OpenAI-compatible ``/chat/completions`` endpoint, streamed (server-sent events).

    The step schema goes as ``response_format`` ``json_schema`` (OpenAI, vLLM, Ollama, llama.cpp's
    server), or ``json_object`` with a ``schema`` once the endpoint rejected that
    (llama-cpp-python's server); either way the endpoint turns it into a grammar.
    """

    def __init__(self, base_url: str, *, model: str = "local", api_key: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.name = f"{model}@{self.base_url}"
        self._api_key = api_key
        self._format = JSON_SCHEMA

    def load(self) -> None:
        """Nothing to load: the endpoint holds the model."""

    def warm(self, messages: list[Message]) -> None:
        """Nothing to do: the endpoint keeps its own cache."""

    def stream(
        self, messages: list[Message], schema: dict[str, Any], *, max_tokens: int, temperature: float
    ) -> Iterator[str]:
        body = {
            "model": self.model,
            "messages": messages,
            "stream": True,
            "max_tokens": max_tokens,
            "temperature": temperature,
            "response_format": self._response_format(schema),
        }
        try:
            response = self._post(body)
        except urllib.error.HTTPError as exc:
            if exc.code not in REJECTED_FORMAT_CODES or self._format == JSON_OBJECT:
                raise LlmError(f"chat-completions endpoint {self.base_url} answered {exc.code}") from exc
            # llama-cpp-python's server knows only "json_object" with a schema: switch once.
            self._format = JSON_OBJECT
            body["response_format"] = self._response_format(schema)
            response = self._post(body)
        with response:
            try:
                yield from _sse_deltas(response)
            except OSError as exc:
                raise LlmError(f"chat-completions endpoint {self.base_url} failed: {exc}") from exc

    def _response_format(self, schema: dict[str, Any]) -> dict[str, Any]:
        if self._format == JSON_OBJECT:
            return {"type": JSON_OBJECT, "schema": schema}
        return {"type": JSON_SCHEMA, "json_schema": {"name": "step", "schema": schema}}

    def _post(self, body: dict[str, Any]) -> Any:
        headers = {"Content-Type": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        request = urllib.request.Request(
            self.base_url + "/chat/completions", data=json.dumps(body).encode(), headers=headers
        )
        try:
            return urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S)
        except urllib.error.HTTPError:
            raise
        except OSError as exc:
            raise LlmError(f"chat-completions endpoint {self.base_url} failed: {exc}") from exc


def _sse_deltas(response: Any) -> Iterator[str]:
    """The content deltas of a streamed chat completion (server-sent events)."""
    for raw in response:
        line = raw.decode().strip()
        if not line.startswith("data:"):
            continue
        data = line[len("data:") :].strip()
        if data == "[DONE]":
            return
        choices = json.loads(data).get("choices") or [{}]
        delta = (choices[0].get("delta") or {}).get("content")
        if delta:
            yield delta


class TextField:
    """Pulls the ``"text"`` string out of a step's JSON while it is still being generated."""

    MARKER = '"text"'

    def __init__(self) -> None:
        self.raw = ""
        self._emitted = 0

    def feed(self, token: str) -> str:
        """Add a token of the step; return text newly completed inside the ``text`` field."""
        self.raw += token
        start = self.raw.find(self.MARKER)
        if start < 0:
            return ""
        rest = self.raw[start + len(self.MARKER) :].lstrip()
        if not rest.startswith(":"):
            return ""
        rest = rest[1:].lstrip()
        if not rest.startswith('"'):
            return ""
        text = _decode(_string_prefix(rest[1:]))
        new = text[self._emitted :]
        self._emitted = len(text)
        return new


def _string_prefix(rest: str) -> str:
    """The raw body of a JSON string up to its closing quote (or all of it, minus a dangling escape)."""
    escaped = False
    for index, char in enumerate(rest):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            return rest[:index]
    return rest[:-1] if escaped else rest


def _decode(body: str) -> str:
    try:
        return str(json.loads(f'"{body}"'))
    except json.JSONDecodeError:  # a half-written \u escape: wait for the rest
        return str(json.loads(f'"{body[: body.rfind(chr(92))]}"')) if "\\" in body else body


CLAUSE_ENDS = ".!?;:"
MIN_CLAUSE_CHARS = 24
"""A comma cuts a clause only after this much text: tiny clauses sound choppy."""

FIRST_CLAUSE_WORDS = 6
"""The first clause is cut at any comma, or after this many words: the caller hears the answer
begin while the LLM is still writing it (later clauses are synthesized during playback)."""


class ClauseSplitter:
    """Cuts streamed text into clauses to synthesize one at a time."""

    def __init__(self) -> None:
        self._buffer = ""
        self._first = True

    def feed(self, text: str) -> list[str]:
        self._buffer += text
        clauses: list[str] = []
        start = 0
        for index, char in enumerate(self._buffer):
            at_end = index + 1 == len(self._buffer)
            # Wait for the next character: "10.30" or "e.g." must not be cut.
            if at_end or not self._buffer[index + 1].isspace():
                continue
            if self._boundary(char, self._buffer[start : index + 1]):
                clause = self._buffer[start : index + 1].strip()
                if clause:
                    clauses.append(clause)
                    self._first = False
                start = index + 1
        self._buffer = self._buffer[start:]
        return clauses

    def _boundary(self, char: str, clause: str) -> bool:
        if char in CLAUSE_ENDS:
            return True
        if self._first:
            return char == "," or (not char.isspace() and len(clause.split()) >= FIRST_CLAUSE_WORDS)
        return char == "," and len(clause.strip()) > MIN_CLAUSE_CHARS

    def flush(self) -> list[str]:
        clause, self._buffer = self._buffer.strip(), ""
        return [clause] if clause else []


@dataclass(frozen=True, slots=True)
class Step:
    """A parsed step: `tool` is None for a spoken reply."""

    tool: str | None
    arguments: dict[str, Any]
    text: str
    raw: str
    first_token_ms: float
    elapsed_ms: float


def parse_step(raw: str, first_token_ms: float, elapsed_ms: float) -> Step:
    """Parse a generated step; raises `LlmError` when it is not a step (a truncated generation)."""
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise LlmError(f"the LLM produced no valid step: {raw[:120]!r}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("action"), str):
        raise LlmError(f"the LLM step has no action: {raw[:120]!r}")
    action = data.pop("action")
    if action == SAY:
        return Step(None, {}, str(data.get("text", "")), raw, first_token_ms, elapsed_ms)
    return Step(action, data, "", raw, first_token_ms, elapsed_ms)


def timed(tokens: Iterator[str], started: float) -> Iterator[tuple[str, float]]:
    """Each token with the ms since `started`."""
    for token in tokens:
        yield token, (time.perf_counter() - started) * 1000
