"""The audio formats an application may speak with a session that has no transport.

The Agents SDK lets an application send and receive ``pcm16`` (24 kHz), ``g711_ulaw`` or
``g711_alaw`` (8 kHz), named as strings or as GA format objects (``{"type": "audio/pcmu"}``).
Every voicegw model takes PCM at the session's rate, so the session converts at its edge:
`AppAudioFormat.to_pcm` on `send_audio`, `from_pcm` on each ``audio`` event; `session_audio`
says which formats and which rate a run config means. Sans-I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from voicegw.audio.codecs import PCMA, PCMU, Codec
from voicegw.realtime.config import DEFAULT_SAMPLE_RATE, RealtimeRunConfig, UnsupportedSetting, flat_settings

PCM16_RATE = 24000
G711_RATE = 8000

FormatName = Literal["pcm16", "g711_ulaw", "g711_alaw"]

_NAMES: dict[str, FormatName] = {
    "pcm16": "pcm16",
    "g711_ulaw": "g711_ulaw",
    "g711_alaw": "g711_alaw",
    "audio/pcm": "pcm16",
    "audio/pcmu": "g711_ulaw",
    "audio/pcma": "g711_alaw",
}


@dataclass(frozen=True)
class AppAudioFormat:
    """How the application's audio is encoded, and the PCM rate of the session that goes with it."""

    name: FormatName
    sample_rate: int
    _codec: Codec | None = field(default=None, compare=False, repr=False)

    def to_pcm(self, data: bytes) -> bytes:
        """The application's audio as mono s16le PCM at `sample_rate`."""
        return data if self._codec is None else self._codec.decode(data)

    def from_pcm(self, pcm: bytes) -> bytes:
        """Mono s16le PCM at `sample_rate` in the application's format."""
        return pcm if self._codec is None else self._codec.encode(pcm)

    def duration_ms(self, nbytes: int) -> float:
        """How long `nbytes` of audio in this format play."""
        bytes_per_sample = 2 if self._codec is None else 1
        return nbytes * 1000 / (bytes_per_sample * self.sample_rate)


def parse_audio_format(
    value: str | Mapping[str, Any] | None, *, pcm_rate: int = PCM16_RATE
) -> AppAudioFormat:
    """The format named by `value` (None: ``pcm16``); `pcm_rate` is the PCM rate when none is given.

    Raises `ValueError` naming the value when it is no format voicegw knows.
    """
    rate = pcm_rate
    if value is None:
        name: str = "pcm16"
    elif isinstance(value, str):
        name = value
    elif isinstance(value, Mapping) and isinstance(value.get("type"), str):
        name = value["type"]
        rate = int(value.get("rate", rate))
    else:
        raise ValueError(f"audio format {value!r}: expected a name or an object with a 'type'")
    if name not in _NAMES:
        raise ValueError(f"audio format {name!r}: voicegw knows {', '.join(sorted(_NAMES))}")
    match _NAMES[name]:
        case "g711_ulaw":
            return AppAudioFormat("g711_ulaw", G711_RATE, PCMU())
        case "g711_alaw":
            return AppAudioFormat("g711_alaw", G711_RATE, PCMA())
        case "pcm16":
            return AppAudioFormat("pcm16", rate)


@dataclass(frozen=True)
class SessionAudio:
    """The PCM rate of a session and the application's formats on its two sides."""

    sample_rate: int
    input: AppAudioFormat
    output: AppAudioFormat


def session_audio(config: RealtimeRunConfig, transport_rate: int | None) -> SessionAudio:
    """The audio of a session with this run config (and a transport of `transport_rate`, if any).

    Raises `UnsupportedSetting` when the formats need two rates: voicegw's session runs at one.
    """
    settings = flat_settings(config.get("model_settings", {}))
    pcm_rate = transport_rate or settings.get("sample_rate", DEFAULT_SAMPLE_RATE)
    try:
        input_format = parse_audio_format(settings.get("input_audio_format"), pcm_rate=pcm_rate)
        output_format = parse_audio_format(settings.get("output_audio_format"), pcm_rate=pcm_rate)
    except ValueError as exc:
        raise UnsupportedSetting(str(exc)) from None
    rates = {input_format.sample_rate, output_format.sample_rate} | (
        {transport_rate} if transport_rate else set()
    )
    if len(rates) > 1:
        raise UnsupportedSetting(
            f"input_audio_format {input_format.name} and output_audio_format {output_format.name}"
            + (f" with a {transport_rate} Hz transport" if transport_rate else "")
            + f" need {' and '.join(map(str, sorted(rates)))} Hz: a voicegw session runs at one rate"
        )
    return SessionAudio(input_format.sample_rate, input_format, output_format)
