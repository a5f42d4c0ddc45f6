"""The words a caller hears when the agent's model fails mid-call, from audio that needs no model.

The audio is ready before the first call: spoken at start-up by the embedded model's Piper voice
(the agent's own voice, when the agent runs on the embedded model), or else the recording shipped
in the package (``data/apology.wav``, made with espeak-ng: 8 kHz, a few seconds). It is converted
once per call sample rate.
"""

from __future__ import annotations

import wave
from importlib import resources

import structlog

from voicegw.audio.resample import Resampler
from voicegw.contracts.transport import TransportClosed
from voicegw.transports.sip_call import SipCallTransport

log = structlog.get_logger(__name__)

APOLOGY_TEXT = "Sorry, we have a technical problem. Please call again."
"""What the shipped recording says; the Piper voice says the same."""

ITEM_ID = "apology"
PLAYOUT_SLACK_S = 0.5
"""Beyond the apology's own length, how long its playout may take before the call is hung up."""


def shipped_apology() -> tuple[bytes, int]:
    """The recording in the package: (mono s16le PCM, sample rate)."""
    with (
        resources.files("voicegw.server").joinpath("data/apology.wav").open("rb") as file,
        wave.open(file) as wav,
    ):
        return wav.readframes(wav.getnframes()), wav.getframerate()


class Apology:
    """The apology's audio at every rate a call asks for; `play` says it on a call."""

    def __init__(self, pcm: bytes, sample_rate: int, source: str) -> None:
        self.source = source
        """``piper`` or ``shipped``: where the audio came from (logged at start)."""
        self._rate = sample_rate
        self._pcm = {sample_rate: pcm}

    @classmethod
    def shipped(cls) -> Apology:
        return cls(*shipped_apology(), "shipped")

    @classmethod
    async def spoken(cls, sample_rate: int = 24000) -> Apology:
        """In the embedded model's Piper voice; the shipped recording when Piper is not installed."""
        try:
            from voicegw.models.local.tts import TextToSpeech

            speech = await TextToSpeech().asynthesize(APOLOGY_TEXT, sample_rate)
        except (ImportError, OSError) as exc:
            log.info("apology_shipped", why=str(exc))
            return cls.shipped()
        return cls(speech.pcm, sample_rate, "piper")

    def pcm(self, sample_rate: int) -> bytes:
        """The apology at `sample_rate` (converted on first use; calls use a handful of rates)."""
        if sample_rate not in self._pcm:
            self._pcm[sample_rate] = Resampler(self._rate, sample_rate).process(self._pcm[self._rate])
        return self._pcm[sample_rate]

    def duration_s(self, sample_rate: int) -> float:
        return len(self.pcm(sample_rate)) / 2 / sample_rate

    async def play(self, transport: SipCallTransport) -> None:
        """Say the apology on the call and return once it has gone out (or the caller hung up)."""
        rate = transport.sample_rate
        transport.flush()  # whatever the failed model left queued must not come first
        try:
            await transport.play(self.pcm(rate), item_id=ITEM_ID)
        except TransportClosed:
            return
        await transport.wait_played(ITEM_ID, self.duration_s(rate) * 1000, slack_s=PLAYOUT_SLACK_S)
