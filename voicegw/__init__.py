"""voicegw: a telephony-first voice agent server and library."""

__version__ = "0.1.0"
