"""Choosing a model by name: ``local`` (the embedded offline cascade) or ``openai``."""

from __future__ import annotations

import importlib
import os
from typing import Any

from voicegw.contracts.model import ModelUnavailable, RealtimeModel

MODELS: dict[str, tuple[str, str, str]] = {
    # name: (module, class, extra that installs what it needs)
    "local": ("voicegw.models.local", "LocalRealtimeModel", "local"),
    "openai": ("voicegw.models.openai", "OpenAIRealtimeModel", "openai"),
}


def default_model_name() -> str:
    """``openai`` when an OpenAI key is in the environment, else the embedded ``local`` model."""
    return "openai" if os.environ.get("OPENAI_API_KEY") else "local"


def create_model(name: str | None = None, **settings: Any) -> RealtimeModel:
    """Build the model called `name` (default: `default_model_name()`) with its settings.

    Raises `ValueError` for an unknown name and `ModelUnavailable`, naming the extra to install,
    when the model's packages are missing.
    """
    name = name or default_model_name()
    try:
        module_name, class_name, extra = MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(sorted(MODELS))}") from None
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ModelUnavailable(
            f"the {name!r} model needs packages that are not installed ({exc.name}): "
            f"pip install 'voicegw[{extra}]'"
        ) from exc
    model_class: type[RealtimeModel] = getattr(module, class_name)
    return model_class(**settings)
