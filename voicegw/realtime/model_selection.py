"""Which model a session talks to: the one given, the run config's, or the endpoint that the
SDK's ``model_config`` names (``api_key``, ``url``, ``headers``, ``call_id``)."""

from __future__ import annotations

from voicegw.contracts.model import RealtimeModel
from voicegw.models.openai import OpenAIRealtimeModel
from voicegw.models.openai_sip import OpenAIRealtimeSIPModel
from voicegw.models.registry import create_model
from voicegw.realtime.model import RealtimeModelConfig, model_config_keys
from voicegw.realtime.openai_realtime import get_api_key

CONNECTION_KEYS = ("api_key", "url", "headers", "call_id")


def check_model_config(model_config: RealtimeModelConfig) -> None:
    """Raise `ValueError` naming any key `RealtimeModelConfig` does not have."""
    unknown = set(model_config) - model_config_keys()
    if unknown:
        raise ValueError(f"unknown model_config key(s): {', '.join(sorted(unknown))}")


async def resolve_model(
    model: RealtimeModel | str | None, model_config: RealtimeModelConfig
) -> RealtimeModel:
    """The session's model.

    A connection key in `model_config` selects the OpenAI protocol at that endpoint (the SIP model
    with ``call_id``), even with no key in the environment; it configures a given OpenAI model,
    and is refused with a `ValueError` for any other model (the embedded one has no endpoint).
    """
    check_model_config(model_config)
    given = [key for key in CONNECTION_KEYS if key in model_config]
    if not given:
        return model if isinstance(model, RealtimeModel) else create_model(model)
    if model is None or model == "openai":
        kind = OpenAIRealtimeSIPModel if "call_id" in model_config else OpenAIRealtimeModel
        # Headers set below; an endpoint with no key anywhere may need none (a local server).
        model = kind(headers={})
    if not isinstance(model, OpenAIRealtimeModel):
        name = model if isinstance(model, str) else type(model).__name__
        raise ValueError(
            f"model_config {', '.join(given)}: only an OpenAI-protocol model connects to an endpoint, "
            f"and this session's model is {name}"
        )
    model.use_endpoint(
        api_key=await get_api_key(model_config.get("api_key")),
        url=model_config.get("url"),
        headers=model_config.get("headers"),
        call_id=model_config.get("call_id"),
    )
    return model
