"""Call records on disk: the stereo recorder's file, the transcript's lines."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from voicegw.realtime.agent import RealtimeAgent
from voicegw.realtime.context import RunContextWrapper
from voicegw.realtime.events import RealtimeDtmf, RealtimeEventInfo, RealtimeHistoryAdded, RealtimeToolEnd
from voicegw.realtime.items import RealtimeToolCallItem, assistant_audio_item, user_audio_item
from voicegw.realtime.result import RealtimeResult
from voicegw.realtime.tools import function_tool
from voicegw.server.records import DiskWriter, StereoRecorder, Transcript, call_file_stem

INFO = RealtimeEventInfo(RunContextWrapper(None))
FRAME = 160  # 20 ms at 8 kHz


@function_tool
def lookup(city: str) -> str:
    """Look a city up."""
    return city


async def test_recorder_writes_caller_left_and_agent_right(tmp_path: Path) -> None:
    writer = DiskWriter()
    recorder = StereoRecorder(tmp_path / "deep" / "call.wav", 8000, writer)
    caller = np.arange(FRAME * 120, dtype="<i2")  # 2.4 s: more than one chunk for the writer thread
    agent = -caller
    for i in range(120):
        recorder.tick(
            caller[i * FRAME : (i + 1) * FRAME].tobytes(), agent[i * FRAME : (i + 1) * FRAME].tobytes()
        )
    await recorder.close()
    await writer.close()
    with wave.open(str(tmp_path / "deep" / "call.wav"), "rb") as wav:
        assert (wav.getnchannels(), wav.getframerate(), wav.getnframes()) == (2, 8000, FRAME * 120)
        data = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    assert np.array_equal(data[0::2], caller) and np.array_equal(data[1::2], agent)


async def test_recorder_that_cannot_write_logs_and_leaves_the_call_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "file").write_text("")
    writer = DiskWriter()
    recorder = StereoRecorder(tmp_path / "file" / "call.wav", 8000, writer)  # a file as the folder
    recorder.tick(bytes(2 * FRAME), bytes(2 * FRAME))
    await recorder.close()
    await writer.close()
    assert "recording_failed" in capsys.readouterr().out


def test_transcript_lines_in_time_order_with_tool_output_and_end(tmp_path: Path) -> None:
    transcript = Transcript(tmp_path / "t.jsonl", "call-1", started_at=0.0)
    user = user_audio_item("u1", "Weather in Paris?")
    tool = RealtimeToolCallItem(
        item_id="t1", call_id="c1", name="lookup", arguments='{"city": "Paris"}', output="sunny"
    )
    agent = assistant_audio_item("a1", "It is sun", "incomplete")
    transcript.add(RealtimeHistoryAdded(user, INFO))
    transcript.add(RealtimeDtmf("7", 100, INFO))
    transcript.add(RealtimeHistoryAdded(tool, INFO))
    transcript.add(RealtimeToolEnd(RealtimeAgent(name="A"), lookup, '{"city": "Paris"}', "sunny", "c1", INFO))
    transcript.add(RealtimeHistoryAdded(agent, INFO))
    result = RealtimeResult(
        final_agent=RealtimeAgent(name="A"),
        history=(user, tool, agent),
        tool_calls=(tool,),
        end_reason="caller_hung_up",
    )
    lines = transcript.lines(result, sip_reason="caller hung up")
    assert [line["type"] for line in lines] == ["user", "dtmf", "tool_call", "tool_output", "agent", "end"]
    assert lines[3]["output"] == "sunny" and lines[4]["status"] == "incomplete"
    assert lines[-1] | {"ts": "", "t": 0} == {
        "ts": "", "t": 0, "call_id": "call-1", "type": "end", "reason": "caller_hung_up",
        "sip_reason": "caller hung up", "error": None, "agent": "A",
    }  # fmt: skip
    transcript.write(lines)
    assert len((tmp_path / "t.jsonl").read_text().splitlines()) == 6


def test_file_stem_is_safe_and_sorts_by_time() -> None:
    assert call_file_stem("a/b c@host", 0.0) == "19700101T000000Z-a_b_c@host"
