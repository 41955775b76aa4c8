"""Model cards for ``GET /v1/models`` in both dialects."""

from __future__ import annotations

import secrets
from typing import Any

from tests.stub.validate import CONTEXT_LENGTH

DEFAULT_MODELS: tuple[str, ...] = (
    "mistral-large-2407",
    "mistral-large-latest",
    "mistral-large-2411",
    "mistral-small-latest",
    "open-mistral-nemo",
)

# Known facts per id; anything else gets a generic current card.
_FACTS: dict[str, dict[str, Any]] = {
    "mistral-large-2407": {
        "created": 1721865600,
        "name": "mistral-large-2407",
        "deprecation": "2024-11-30T12:00:00Z",
        "deprecation_replacement_model": "mistral-large-latest",
        "default_model_temperature": 0.7,
    },
    "mistral-large-2411": {
        "created": 1731888000,
        "name": "mistral-large-2411",
        "aliases": ["mistral-large-latest"],
    },
    "mistral-large-latest": {
        "created": 1731888000,
        "name": "mistral-large-2411",
        "aliases": ["mistral-large-2411"],
    },
    "open-mistral-nemo": {
        "created": 1721347200,
        "name": "open-mistral-nemo-2407",
        "aliases": ["open-mistral-nemo-2407"],
    },
}

_CAPABILITY_KEYS = (
    "completion_chat",
    "completion_fim",
    "function_calling",
    "fine_tuning",
    "vision",
    "classification",
    "reasoning",
    "ocr",
    "moderation",
    "audio",
    "audio_speech",
    "audio_transcription",
    "audio_transcription_realtime",
    "unified_resources",
)


def mistral_card(model_id: str) -> dict[str, Any]:
    """A La Plateforme base-model card (field order of the SDK's ``BaseModelCard``)."""
    facts = _FACTS.get(model_id, {})
    name = facts.get("name", model_id)
    capabilities = dict.fromkeys(_CAPABILITY_KEYS, False)
    capabilities.update(completion_chat=True, function_calling=True, fine_tuning=True)
    return {
        "id": model_id,
        "object": "model",
        "created": facts.get("created", 1727740800),
        "owned_by": "mistralai",
        "capabilities": capabilities,
        "name": name,
        "description": f"Official {name} Mistral AI model",
        "max_context_length": CONTEXT_LENGTH,
        "aliases": facts.get("aliases", []),
        "deprecation": facts.get("deprecation"),
        "deprecation_replacement_model": facts.get("deprecation_replacement_model"),
        "default_model_temperature": facts.get("default_model_temperature", 0.3),
        "type": "base",
    }


def vllm_card(model_id: str, created: int) -> dict[str, Any]:
    """An OpenAI-style card as ``vllm serve --served-model-name`` lists it."""
    return {
        "id": model_id,
        "object": "model",
        "created": created,
        "owned_by": "vllm",
        "root": "mistralai/Mistral-Large-Instruct-2407",
        "parent": None,
        "max_model_len": CONTEXT_LENGTH,
        "permission": [
            {
                "id": f"modelperm-{secrets.token_hex(16)}",
                "object": "model_permission",
                "created": created,
                "allow_create_engine": False,
                "allow_sampling": True,
                "allow_logprobs": True,
                "allow_search_indices": False,
                "allow_view": True,
                "allow_fine_tuning": False,
                "organization": "*",
                "group": None,
                "is_blocking": False,
            }
        ],
    }


def model_list(models: list[str], dialect: str, created: int) -> dict[str, Any]:
    cards = [vllm_card(m, created) if dialect == "vllm" else mistral_card(m) for m in models]
    return {"object": "list", "data": cards}


def model_card(model_id: str, dialect: str, created: int) -> dict[str, Any]:
    return vllm_card(model_id, created) if dialect == "vllm" else mistral_card(model_id)
