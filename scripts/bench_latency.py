"""Latency benchmark of the embedded model: spoken questions through 8 kHz μ-law, one call and
several concurrent calls, driven through the RealtimeModel interface in real time; then whole
calls on the wire.

Latency is measured from the acoustic end of the caller's speech (the last voiced 20 ms frame
sent), so it includes the end-of-turn wait. Prints per stage p50/p95, each model's real-time
factor, the tool-call success rate, the transcript word error rate, and how often the answer
after a tool was the LLM's own phrasing versus the template fallback.

On the wire (`--wire-calls`, 0 skips it): calls in a row from a raw SIP caller to a real
`voicegw serve` (the default agent on the embedded model), timed at the caller's sockets: call
set-up (INVITE sent to 200 OK received), the greeting's first voiced packet after the 200 OK,
and barge-in (the caller's first voiced packet sent to the agent's last voiced packet received).

    .venv/bin/python scripts/bench_latency.py [--concurrency 4] [--questions 24] [--wire-calls 5]
    .venv/bin/python scripts/bench_latency.py --markdown     # the README's Figures table
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
import wave
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from figures import print_markdown

from voicegw.audio.line import phone_line
from voicegw.contracts.model import (
    ModelAudio,
    ModelInputTranscript,
    ModelResponseDone,
    ModelResponseStarted,
    ModelToolCall,
    ModelTranscriptDelta,
    ModelUnavailable,
    RealtimeModelConfig,
    RealtimeModelEvent,
    SendAudio,
    SendToolOutput,
    ToolSpec,
    TurnDetection,
)
from voicegw.models.local import LocalRealtimeModel
from voicegw.models.local.speaking import FILLER_TEXT
from voicegw.models.local.stt import SpeechToText
from voicegw.models.local.tts import TextToSpeech
from voicegw.models.local.workers import STEP_IDLE_S, STEP_STALL_S
from voicegw.server.model_watch import STEP_POLL_S

RATE = 8000
FRAME_MS = 20
FRAME_BYTES = RATE * FRAME_MS // 1000 * 2
VOICED_RMS = 300
TAIL_SILENCE_MS = 1500
TURN_TIMEOUT_S = 30.0

TOOLS = (
    ToolSpec("get_time", "Tells the current time.", {"type": "object", "properties": {}}),
    ToolSpec(
        "lookup_order",
        "Finds where an order is, by its number.",
        {"type": "object", "properties": {"order_number": {"type": "string"}}, "required": ["order_number"]},
    ),
    ToolSpec(
        "lookup_hours",
        "Opening hours of a branch.",
        {"type": "object", "properties": {"branch": {"type": "string"}}, "required": ["branch"]},
    ),
)
VOCABULARY = (
    "order number",
    "opening hours",
    "branch",
    "Boston",
    "Springfield",
    "Denver",
    "Chicago",
    "Seattle",
    "Austin",
)
OUTPUTS = {
    "get_time": '{"time": "10:45"}',
    "lookup_order": '{"status": "out for delivery", "arrives": "Friday"}',
    "lookup_hours": '{"opens": "9:00", "closes": "17:30"}',
}


@dataclass(frozen=True)
class Question:
    text: str
    tool: str | None
    argument: str = ""
    """A word the tool's arguments must contain (lowercase)."""


QUESTIONS: tuple[Question, ...] = (
    Question("What time is it right now?", "get_time"),
    Question("Could you tell me the time please?", "get_time"),
    Question("What is the time?", "get_time"),
    Question("Do you know what time it is?", "get_time"),
    Question("Hi, what time is it there?", "get_time"),
    Question("Where is my order number forty two?", "lookup_order", "42"),
    Question("Can you check order number seven?", "lookup_order", "7"),
    Question("What is the status of my order twelve?", "lookup_order", "12"),
    Question("I want to track my order number three hundred.", "lookup_order", "300"),
    Question("Has order fifty shipped yet?", "lookup_order", "50"),
    Question("Where is order number nine?", "lookup_order", "9"),
    Question("When does the Boston branch open?", "lookup_hours", "boston"),
    Question("What are the opening hours in Springfield?", "lookup_hours", "springfield"),
    Question("Is the Denver branch open today?", "lookup_hours", "denver"),
    Question("What are your hours at the Chicago branch?", "lookup_hours", "chicago"),
    Question("When does the Seattle branch close?", "lookup_hours", "seattle"),
    Question("Tell me the opening hours of the Austin branch.", "lookup_hours", "austin"),
    Question("Hello there.", None),
    Question("Thank you very much.", None),
    Question("Good morning.", None),
    Question("Can you help me?", None),
    Question("Goodbye.", None),
    Question("Who am I speaking with?", None),
    Question("Thanks, that is all.", None),
)

NUMBER_WORDS = (
    *("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"),
    *("eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"),
)
TENS = ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]


def _number_words(token: str) -> list[str]:
    value = int(token)
    if value < 20:
        return [NUMBER_WORDS[value]]
    if value < 100:
        return [TENS[value // 10 - 2]] + ([NUMBER_WORDS[value % 10]] if value % 10 else [])
    if value < 1000 and value % 100 == 0:
        return [NUMBER_WORDS[value // 100], "hundred"]
    return [token]


def normalize(text: str) -> list[str]:
    words: list[str] = []
    for token in re.findall(r"[a-z']+|\d+", text.lower()):
        words.extend(_number_words(token) if token.isdigit() else [token])
    return words


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    ref, hyp = normalize(reference), normalize(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1], len(ref)


def last_voiced_frame(pcm: bytes) -> int:
    frames = [pcm[i : i + FRAME_BYTES] for i in range(0, len(pcm), FRAME_BYTES)]
    loud = [
        i
        for i, frame in enumerate(frames)
        if np.sqrt(np.mean(np.frombuffer(frame, "<i2").astype(np.float32) ** 2)) >= VOICED_RMS
    ]
    return loud[-1] if loud else len(frames) - 1


@dataclass
class Turn:
    question: Question
    end_of_speech: float = 0.0
    final_at: float | None = None
    transcript: str = ""
    llm_first_token_at: float | None = None
    first_audio_at: float | None = None
    first_answer_at: float | None = None
    """The first clause of the answer itself (not the "one moment" filler of a busy model)."""
    tool_ok: bool | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)


class Caller:
    """One call: a model, a listener that plays the tool runner, and its turns."""

    def __init__(self, model: LocalRealtimeModel) -> None:
        self.model = model
        self.turn: Turn | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        self.response_started = 0.0
        self.called_tool = False
        self.verbose = False

    async def on_event(self, event: RealtimeModelEvent) -> None:
        turn, now = self.turn, time.perf_counter()
        if turn is None:
            return
        match event:
            case ModelInputTranscript(is_final=True, transcript=text):
                turn.final_at, turn.transcript = now, text
            case ModelResponseStarted():
                self.response_started, self.called_tool = now, False
            case ModelToolCall(call_id=call_id, name=name, arguments=arguments):
                self.called_tool = True
                expected = turn.question
                turn.tool_ok = name == expected.tool and expected.argument in _arguments_text(arguments)
                task = asyncio.create_task(self.model.send_event(SendToolOutput(call_id, OUTPUTS[name])))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
            case ModelAudio() if turn.first_audio_at is None:
                turn.first_audio_at = now
            case ModelTranscriptDelta(delta=text) if text.strip() != FILLER_TEXT:
                turn.first_answer_at = turn.first_answer_at or now
            case ModelResponseDone(timings_ms=timings):
                if self.verbose:
                    print(f"    response {'tool call' if self.called_tool else 'answer'}: {timings}")
                if turn.llm_first_token_at is None and "llm_first_token" in timings:
                    turn.llm_first_token_at = self.response_started + timings["llm_first_token"] / 1000
                if not self.called_tool:  # the spoken answer is complete
                    turn.done.set()

    async def ask(self, question: Question, pcm: bytes) -> Turn:
        turn = Turn(question)
        self.turn = turn
        audio = b"\0" * (RATE * 300 // 1000 * 2) + pcm + b"\0" * (RATE * TAIL_SILENCE_MS // 1000 * 2)
        last = last_voiced_frame(audio)
        start = time.perf_counter()
        for index in range(0, len(audio) // FRAME_BYTES):
            # Absolute schedule: a late frame does not delay the following ones.
            delay = start + index * FRAME_MS / 1000 - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await self.model.send_event(SendAudio(audio[index * FRAME_BYTES : (index + 1) * FRAME_BYTES]))
            if index == last:
                turn.end_of_speech = time.perf_counter()
        try:
            await asyncio.wait_for(turn.done.wait(), TURN_TIMEOUT_S)
        except TimeoutError:
            print(f"  timeout: {question.text!r}", file=sys.stderr)
        if question.tool is None and turn.tool_ok is None:
            turn.tool_ok = True  # no tool expected, none called
        if self.verbose:
            final = _ms(turn.final_at, turn.end_of_speech)
            spoke = _ms(turn.first_audio_at, turn.end_of_speech)
            print(f"  {question.text!r}: heard {turn.transcript!r}, tool ok {turn.tool_ok}, {final}, {spoke}")
        return turn


def _ms(at: float | None, since: float) -> str:
    return "-" if at is None else f"{(at - since) * 1000:.0f} ms"


def _arguments_text(arguments: str) -> str:
    try:
        values = json.loads(arguments).values()
    except (json.JSONDecodeError, AttributeError):
        return arguments.lower()
    text = " ".join(str(v) for v in values).lower()
    return text + " " + " ".join(" ".join(_number_words(n)) for n in re.findall(r"\d+", text))


async def run_call(
    questions: list[tuple[Question, bytes]],
    vocabulary: tuple[str, ...],
    live: list[LocalRealtimeModel],
    verbose: bool = False,
) -> tuple[list[Turn], LocalRealtimeModel]:
    model = LocalRealtimeModel()
    live.append(model)
    caller = Caller(model)
    caller.verbose = verbose
    model.add_listener(caller)
    await model.connect(
        RealtimeModelConfig(
            sample_rate=RATE,
            instructions="You are the phone assistant of Acme Parcels.",
            tools=TOOLS,
            turn_detection=TurnDetection(),
            vocabulary=vocabulary,
        )
    )
    turns = [await caller.ask(question, pcm) for question, pcm in questions]
    await model.close()
    return turns, model


async def loop_lag(stop: asyncio.Event, samples: list[float]) -> None:
    """How late a 20 ms timer fires: what the media clock would suffer."""
    while not stop.is_set():
        start = time.perf_counter()
        await asyncio.sleep(0.02)
        samples.append((time.perf_counter() - start - 0.02) * 1000)


async def watch_steps(
    stop: asyncio.Event, models: list[LocalRealtimeModel], most: dict[tuple[str, str], float]
) -> None:
    """Per stage, the longest a running step went without progress and blocked-looking (its thread
    using no processor time), looked at as the server's stall watch does: what the bounds of
    `StepGap.stuck` must stay above."""
    while not stop.is_set():
        await asyncio.sleep(STEP_POLL_S)
        now = time.monotonic()
        for model in models:
            for gap in model.step_gaps(now):
                silent, idle = (gap.stage, "silent"), (gap.stage, "idle")
                most[silent] = max(most.get(silent, 0.0), gap.silent_s)
                if gap.idle_s is not None:
                    most[idle] = max(most.get(idle, 0.0), gap.idle_s)


def gap_line(most: dict[tuple[str, str], float]) -> str:
    """The longest gaps of `watch_steps`, per stage, against the bounds."""
    parts = [
        f"{stage} {most.get((stage, 'silent'), 0.0):.2f} s without progress (bound {STEP_STALL_S[stage]} s)"
        + (f", {most[(stage, 'idle')]:.2f} s blocked-looking" if (stage, "idle") in most else "")
        for stage in STEP_STALL_S
    ]
    return f"  longest step gaps (blocked at {STEP_IDLE_S} s): " + "; ".join(parts)


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def _after_speech(turns: list[Turn], at: str, tool: bool | None = None) -> list[float]:
    """ms from the end of speech to the event `at`, over the turns (with or without a tool)."""
    return [
        (getattr(t, at) - t.end_of_speech) * 1000
        for t in turns
        if getattr(t, at) is not None and t.end_of_speech and (tool is None or bool(t.question.tool) == tool)
    ]


def _line(label: str, values: list[float]) -> str:
    return f"  {label:40s} p50 {pct(values, 50):6.0f} ms  p95 {pct(values, 95):6.0f} ms  (n={len(values)})"


def report(title: str, turns: list[Turn], models: list[LocalRealtimeModel], lag: list[float]) -> None:
    print(f"\n== {title}: {len(turns)} questions")
    print(_line("end of speech -> final transcript", _after_speech(turns, "final_at")))
    print(_line("end of speech -> first LLM token", _after_speech(turns, "llm_first_token_at")))
    print(_line("end of speech -> first TTS audio", _after_speech(turns, "first_audio_at")))
    print(_line("  (direct answers)", _after_speech(turns, "first_audio_at", tool=False)))
    print(_line("  (answers after a tool call)", _after_speech(turns, "first_audio_at", tool=True)))
    print(_line("end of speech -> first answer clause", _after_speech(turns, "first_answer_at")))
    print('    (first TTS audio counts a busy model\'s "One moment."; this line does not)')
    tool_turns = [t for t in turns if t.question.tool]
    no_tool = [t for t in turns if not t.question.tool]
    print(
        f"  tool calls correct (name + argument): {sum(1 for t in tool_turns if t.tool_ok)}/{len(tool_turns)}"
    )
    quiet = sum(1 for t in no_tool if t.tool_ok)
    print(f"  questions needing no tool answered without one: {quiet}/{len(no_tool)}")
    errors = [word_errors(t.question.text, t.transcript) for t in turns]
    print(f"  WER {sum(e for e, _ in errors) / max(1, sum(n for _, n in errors)):.1%}")
    phrased = sum(m.stats.llm_phrasing for m in models)
    template = sum(m.stats.template_fallback for m in models)
    print(f"  answers after a tool: LLM phrasing {phrased}, template fallback {template}")
    print(f"  event-loop lag of a 20 ms timer: p50 {pct(lag, 50):.1f} ms, p99 {pct(lag, 99):.1f} ms")


def model_rtf(clips: list[bytes]) -> None:
    stt, tts = SpeechToText(), TextToSpeech()
    stt_ms = audio_ms = 0.0
    for pcm in clips:
        result = stt.transcribe(pcm, RATE)
        stt_ms, audio_ms = stt_ms + result.elapsed_ms, audio_ms + result.audio_ms
    tts_ms = spoken_ms = 0.0
    for text in (
        "It is ten forty five.",
        "Your order is out for delivery and arrives on Friday.",
        "We open at nine.",
    ):
        speech = tts.synthesize(text, RATE)
        tts_ms, spoken_ms = tts_ms + speech.elapsed_ms, spoken_ms + len(speech.pcm) * 1000 / (2 * RATE)
    print(f"\n== real-time factors: STT (whisper tiny.en int8) {stt_ms / audio_ms:.3f}; "
          f"TTS (piper joe medium) {tts_ms / spoken_ms:.3f}")  # fmt: skip


def split(items: list, parts: int) -> list[list]:
    return [items[i::parts] for i in range(parts)]


def spoken(text: str, folder: Path) -> bytes:
    """`text` spoken by espeak-ng, through a phone line, at `RATE`."""
    path = folder / f"speech_{abs(hash(text))}.wav"
    subprocess.run(["espeak-ng", "-s", "150", "-w", str(path), text], check=True, capture_output=True)
    with wave.open(str(path)) as wav:
        return phone_line(wav.readframes(wav.getnframes()), wav.getframerate(), RATE)


@dataclass
class WireFigures:
    setup_ms: list[float] = field(default_factory=list)
    """INVITE sent -> 200 OK received."""
    greeting_ms: list[float] = field(default_factory=list)
    """200 OK received -> the greeting's first voiced packet received."""
    barge_in_ms: list[float] = field(default_factory=list)
    """The caller's first voiced packet sent -> the agent's last voiced packet received."""


def wire_calls(count: int, workdir: Path) -> WireFigures:
    """`count` calls in a row to a real `voicegw serve` (the default agent, embedded model)."""
    # The e2e harness: a server process, a raw SIP dialog, a phone's RTP (needs no pytest).
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from voicegw.testing.harness import EchoServer

    question = np.frombuffer(spoken("What is your address?", workdir), dtype="<i2")
    server = EchoServer("voicegw", workdir, agent="", config='[model]\nname = "local"\n')
    figures = WireFigures()
    try:
        server.wait_ready(120)
        for number in range(1, count + 1):
            try:
                one_call(server.port, question, figures)
            except (TimeoutError, AssertionError, OSError) as exc:
                print(f"  call {number} failed: {exc!r}", file=sys.stderr)
    finally:
        if not server.stop():
            print(f"the server did not stop cleanly; its log:\n{server.output()[-3000:]}", file=sys.stderr)
    return figures


def one_call(port: int, question: np.ndarray, figures: WireFigures) -> None:
    """One call: INVITE, the greeting, the question over it, BYE; its times added to `figures`."""
    from voicegw.testing.barge_in import GREETING_HEARD_S, agent_stopped_at, phone_call

    with phone_call(port) as (caller, invited, answered):
        greeting = caller.wait_for_agent_speech(GREETING_HEARD_S)
        caller.question = question
        time.sleep(len(question) / RATE + 1.0)
    figures.setup_ms.append((answered - invited) * 1000)
    figures.greeting_ms.append((greeting - answered) * 1000)
    if caller.onset is not None:
        figures.barge_in_ms.append((agent_stopped_at(caller, greeting) - caller.onset) * 1000)


def _row(label: str, values: list[float]) -> tuple[str, str, str, str]:
    return label, f"{pct(values, 50):.0f} ms", f"{pct(values, 95):.0f} ms", str(len(values))


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--questions", type=int, default=len(QUESTIONS))
    parser.add_argument("--verbose", action="store_true", help="print every turn")
    parser.add_argument("--skip-concurrent", action="store_true")
    parser.add_argument("--voice", choices=("espeak", "piper"), default="espeak", help="who asks")
    parser.add_argument("--vocabulary", action="store_true", help="bias the STT with the branch names")
    parser.add_argument("--wire-calls", type=int, default=5, help="whole calls on the wire (0: none)")
    parser.add_argument("--markdown", action="store_true", help="also print the figures as a Markdown table")
    args = parser.parse_args()
    if (args.voice == "espeak" or args.wire_calls) and shutil.which("espeak-ng") is None:
        parser.error("the caller's speech needs espeak-ng: apt-get install espeak-ng (scripts/setup.sh does)")
    questions = list(QUESTIONS[: args.questions])
    try:
        if args.voice == "piper":
            tts = TextToSpeech()
            clips = [(q, phone_line(tts.synthesize(q.text, 22050).pcm, 22050, RATE)) for q in questions]
        else:
            with tempfile.TemporaryDirectory() as tmp:
                clips = [(q, spoken(q.text, Path(tmp))) for q in questions]
        model_rtf([pcm for _, pcm in clips])
    except ModelUnavailable as exc:
        parser.exit(1, f"bench_latency: {exc}\n")

    rows = []
    runs = [("one call", [clips])]
    if not args.skip_concurrent:
        runs.append((f"{args.concurrency} concurrent calls", split(clips, args.concurrency)))
    for title, groups in runs:
        stop, lag, live = asyncio.Event(), list[float](), list[LocalRealtimeModel]()
        most: dict[tuple[str, str], float] = {}
        watchers = [
            asyncio.create_task(loop_lag(stop, lag)),
            asyncio.create_task(watch_steps(stop, live, most)),
        ]
        started = time.perf_counter()
        vocabulary = VOCABULARY if args.vocabulary else ()
        results = await asyncio.gather(*(run_call(group, vocabulary, live, args.verbose) for group in groups))
        stop.set()
        await asyncio.gather(*watchers)
        turns = [t for turns, _ in results for t in turns]
        report(f"{title} ({time.perf_counter() - started:.0f} s)", turns, [m for _, m in results], lag)
        print(gap_line(most))
        rows.append(
            _row(f"end of speech → first agent audio, {title}", _after_speech(turns, "first_audio_at"))
        )
        rows.append(
            _row(f"end of speech → first answer clause, {title}", _after_speech(turns, "first_answer_at"))
        )

    if args.wire_calls:
        with tempfile.TemporaryDirectory() as tmp:
            wire = await asyncio.to_thread(wire_calls, args.wire_calls, Path(tmp))
        print(f"\n== on the wire: {args.wire_calls} calls in a row (voicegw serve, the default agent)")
        for label, values in (
            ("call set-up: INVITE -> 200 OK", wire.setup_ms),
            ("200 OK -> greeting, first call of the server", wire.greeting_ms[:1]),
            ("200 OK -> greeting, later calls", wire.greeting_ms[1:]),
            ("barge-in: caller speech -> agent silent", wire.barge_in_ms),
        ):
            print(_line(label, values))
        rows += [
            _row("call set-up on the wire: INVITE sent → 200 OK received", wire.setup_ms),
            _row("200 OK → the greeting's first audio, the server's first call", wire.greeting_ms[:1]),
            _row("200 OK → the greeting's first audio, later calls", wire.greeting_ms[1:]),
            _row("barge-in on the wire: caller's first voiced packet → agent's last", wire.barge_in_ms),
        ]
    if args.markdown:
        print_markdown(
            "Latency: the embedded model and whole calls",
            ["figure", "p50", "p95", "n"],
            rows,
            [
                f"{len(questions)} spoken questions ({args.voice}, through 8 kHz μ-law) in real time at the "
                "model's interface; the end of speech is the last voiced 20 ms frame sent, so the figures "
                "include the end-of-turn wait. On the wire: a raw SIP caller and its RTP on 127.0.0.1.",
            ],
        )


if __name__ == "__main__":
    asyncio.run(main())
