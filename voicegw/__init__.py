"""voicegw: a telephony-first voice agent server and library."""

from voicegw import realtime
from voicegw.realtime import *  # noqa: F403  (the realtime agent API is voicegw's public API)

__version__ = "0.1.0"

__all__ = ["__version__"]
__all__ += realtime.__all__
