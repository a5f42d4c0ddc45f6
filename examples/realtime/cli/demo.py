"""A command-line voice assistant: talk to an agent through the sound device, or WAV files.

    python examples/realtime/cli/demo.py                                   # microphone and speaker
    python examples/realtime/cli/demo.py --input question.wav --output answer.wav

The model is OpenAI Realtime when ``OPENAI_API_KEY`` is set, else voicegw's embedded offline
model (``--model`` chooses; ``--base-url`` points the OpenAI model at a proxy or a local server).
The live event stream (what you said, what the agent said, its tool calls) is printed. Ctrl-C
ends the conversation cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

from voicegw.contracts.model import ModelUnavailable
from voicegw.contracts.transport import AudioTransport
from voicegw.models.registry import MODELS
from voicegw.realtime import (
    AssistantMessageItem,
    RealtimeAgentStartEvent,
    RealtimeAudioInterrupted,
    RealtimeCallState,
    RealtimeError,
    RealtimeHistoryAdded,
    RealtimeHistoryUpdated,
    RealtimeInputAudioTranscriptionCompleted,
    RealtimeResult,
    RealtimeRunner,
    RealtimeSession,
    RealtimeSessionEvent,
    RealtimeToolEnd,
    RealtimeToolStart,
)
from voicegw.transports.local_audio import AudioDeviceUnavailable, LocalAudioTransport
from voicegw.transports.wav_files import WavFilesTransport

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # examples/realtime: the shared assistant
from assistant import AGENT, configure_logging, make_model

DEFAULT_RATE = 24000


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Talk to a realtime voice agent from the command line.")
    parser.add_argument(
        "--input", type=Path, help="WAV file to use as your voice (instead of the microphone)"
    )
    parser.add_argument("--output", type=Path, help="WAV file for the agent's voice (default: answer.wav)")
    parser.add_argument(
        "--model", choices=sorted(MODELS), help="default: openai if OPENAI_API_KEY is set, else local"
    )
    parser.add_argument("--base-url", help="OpenAI Realtime endpoint (a proxy, Azure, a local test server)")
    parser.add_argument(
        "--rate", type=int, help="sample rate of the conversation (default: the WAV's, or 24000)"
    )
    parser.add_argument("--fast", action="store_true", help="read the input WAV as fast as possible")
    parser.add_argument("--greeting", help="a fixed greeting the agent says first")
    parser.add_argument("--verbose", action="store_true", help="show voicegw's log lines (on stderr)")
    args = parser.parse_args(argv)
    if args.output is not None and args.input is None:
        parser.error("--output needs --input")
    return args


def make_transport(args: argparse.Namespace) -> AudioTransport:
    if args.input is not None:
        output = args.output or Path("answer.wav")
        return WavFilesTransport(args.input, output, sample_rate=args.rate, realtime=not args.fast)
    try:
        return LocalAudioTransport(sample_rate=args.rate or DEFAULT_RATE)
    except AudioDeviceUnavailable as exc:
        raise SystemExit(f"{exc}\nNo sound device: use --input question.wav --output answer.wav") from None


class Printer:
    """The session's events as lines a person can follow."""

    def __init__(self) -> None:
        self._said: dict[str, str] = {}

    def show(self, event: RealtimeSessionEvent) -> None:
        match event:
            case RealtimeAgentStartEvent(agent=agent):
                print(f"[agent] {agent.name} is listening")
            case RealtimeInputAudioTranscriptionCompleted(transcript=transcript):
                print(f"you: {transcript}")
            case RealtimeToolStart(tool=tool, arguments=arguments):
                print(f"[tool] {tool.name}({arguments})")
            case RealtimeToolEnd(tool=tool, output=output):
                print(f"[tool] {tool.name} -> {output}")
            case RealtimeAudioInterrupted(played_ms=played_ms):
                print(f"[interrupted after {played_ms} ms]")
            case RealtimeHistoryAdded(item=item):
                self._agent_said(item)
            case RealtimeHistoryUpdated(history=history):
                for item in history:
                    self._agent_said(item)
            case RealtimeCallState(state=state, reason=reason):
                print(f"[call] {state} {reason}".rstrip())
            case RealtimeError(message=message):
                print(f"[error] {message}", file=sys.stderr)

    def _agent_said(self, item: object) -> None:
        if not isinstance(item, AssistantMessageItem) or item.status == "in_progress":
            return
        text = " ".join(part.transcript or "" for part in item.content if part.type == "audio").strip()
        text = text or " ".join(getattr(part, "text", "") for part in item.content).strip()
        if text and self._said.get(item.item_id) != text:
            self._said[item.item_id] = text
            print(f"agent: {text}")


async def converse(args: argparse.Namespace) -> int:
    agent = AGENT.clone(greeting=args.greeting) if args.greeting else AGENT
    session = RealtimeSession(make_transport(args), model=make_model(args.model, args.base_url))
    printer = Printer()

    async def show_events() -> None:
        async for event in session.all_events():
            printer.show(event)

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    events = asyncio.create_task(show_events())
    run: asyncio.Task[RealtimeResult] = asyncio.ensure_future(RealtimeRunner.run(agent, session=session))
    stopper = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({run, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if stop.is_set():
            print("\n[stopping]")
            await session.close()
        try:
            result = await run
        except (ModelUnavailable, ConnectionError, TimeoutError) as exc:
            print(f"[error] the model could not start: {exc}", file=sys.stderr)
            return 1
        await events
    finally:
        stopper.cancel()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        await session.close()
    usage = result.usage
    print(f"[done] {result.end_reason}; tokens in/out: {usage.input_tokens}/{usage.output_tokens}")
    if args.input is not None:
        print(f"[done] the agent's voice is in {args.output or Path('answer.wav')}")
    return 1 if result.end_reason == "error" else 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging(args.verbose)
    return asyncio.run(converse(args))


if __name__ == "__main__":
    sys.exit(main())
