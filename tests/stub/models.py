"""Model cards for ``GET /v1/models`` in both dialects, and what each model can do.

The line-up: a retired Large 2 (``mistral-large-2407``, deprecated 2024-11-30), Large 2.1
(2411), the current large model (``mistral-large-latest`` = ``mistral-large-2512``: 256k,
vision), a vision model (``pixtral-12b-2409``), reasoning models (``mistral-small-latest`` =
Small 4 ``mistral-small-2603``, ``magistral-medium-latest``), Codestral (FIM) and Nemo. La
Plateforme's cards follow the 2026 capture (``tests/captures/models-list-2026-capabilities.json``:
field order, every alias with a card of its own that lists the others); vLLM's are what
``vllm serve --served-model-name`` lists: no capabilities, ``max_model_len`` and ``root``.
"""

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
    "mistral-large-2512",
    "mistral-small-2603",
    "magistral-medium-latest",
    "pixtral-12b-2409",
    "codestral-latest",
    "codestral-2508",
    "mistral-code-latest",
    "mistral-code-fim-latest",
    "open-mistral-7b",
)

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

_TEXT = ("completion_chat", "function_calling")
#: Every name of the line-up's Codestral (``without=CODESTRAL_NAMES``: a server without FIM).
CODESTRAL_NAMES = (
    "codestral-2508",
    "codestral-latest",
    "mistral-code-latest",
    "mistral-code-fim-latest",
)
# One entry per model behind the ids (its own id first, then its aliases); facts from the
# protocol notes §6 and §11 and the 2026 capture.
_MODELS: tuple[dict[str, Any], ...] = (
    {
        "ids": ("mistral-large-2407",),
        "created": 1721865600,
        "context": 131072,
        "abilities": (*_TEXT, "fine_tuning"),
        "deprecation": "2024-11-30T12:00:00Z",
        "replacement": "mistral-large-latest",
        "temperature": 0.7,
        "root": "mistralai/Mistral-Large-Instruct-2407",
    },
    {
        "ids": ("mistral-large-2411",),
        "created": 1731888000,
        "context": 131072,
        "abilities": (*_TEXT, "fine_tuning"),
        "root": "mistralai/Mistral-Large-Instruct-2411",
    },
    {
        "ids": ("mistral-large-2512", "mistral-large-latest"),
        "created": 1764547200,
        "context": 262144,
        "abilities": (*_TEXT, "fine_tuning", "vision"),
        "root": "mistralai/Mistral-Large-3-675B-Instruct-2512",
    },
    {
        "ids": ("mistral-small-2603", "mistral-small-latest", "magistral-small-latest"),
        "created": 1772323200,
        "context": 262144,
        "abilities": (*_TEXT, "vision", "reasoning"),
        "root": "mistralai/Mistral-Small-4-119B-2603",
    },
    {
        "ids": ("magistral-medium-2509", "magistral-medium-latest"),
        "created": 1758153600,
        "context": 131072,
        "abilities": (*_TEXT, "vision", "reasoning"),
        "root": "mistralai/Magistral-Medium-2509",
    },
    {
        "ids": ("pixtral-12b-2409", "pixtral-12b", "pixtral-12b-latest"),
        "created": 1726012800,
        "context": 131072,
        "abilities": (*_TEXT, "vision"),
        "root": "mistralai/Pixtral-12B-2409",
    },
    {
        # the 2026 capture's cards: four names, each with a card listing the other three
        "ids": CODESTRAL_NAMES,
        "created": 1753920000,
        "context": 256000,
        "abilities": (*_TEXT, "completion_fim"),
        "description": "Our cutting-edge language model for coding released August 2025.",
        "root": "mistralai/Codestral-25.08",
    },
    {
        # chat only: no function calling (a 2024 card), deprecated with 2407
        "ids": ("open-mistral-7b",),
        "created": 1695859200,
        "context": 32768,
        "abilities": ("completion_chat",),
        "deprecation": "2024-11-30T12:00:00Z",
        "replacement": "ministral-8b-latest",
        "temperature": 0.7,
        "root": "mistralai/Mistral-7B-Instruct-v0.3",
    },
    {
        "ids": ("open-mistral-nemo-2407", "open-mistral-nemo"),
        "created": 1721347200,
        "context": 131072,
        "abilities": (*_TEXT, "fine_tuning"),
        "root": "mistralai/Mistral-Nemo-Instruct-2407",
    },
)
_BY_ID = {model_id: entry for entry in _MODELS for model_id in entry["ids"]}
# A model the stub does not know (a fine-tune, a test's extra id): a plain current text model.
_UNKNOWN: dict[str, Any] = {
    "created": 1727740800,
    "context": CONTEXT_LENGTH,
    "abilities": (*_TEXT, "fine_tuning"),
    "root": "mistralai/Mistral-Large-Instruct-2407",
}


def facts(model_id: str) -> dict[str, Any]:
    """What the stub knows of ``model_id`` (its own entry, or a generic text model)."""
    entry = _BY_ID.get(model_id)
    if entry is None:
        return {**_UNKNOWN, "ids": (model_id,)}
    return entry


def can(model_id: str, ability: str) -> bool:
    """Whether ``model_id`` has capability ``ability`` (``vision``, ``reasoning``, …)."""
    return ability in facts(model_id)["abilities"]


Windows = dict[str, int] | None  # per-stub overrides (``stub.context_windows``)


def context_window(model_id: str, windows: Windows = None) -> int:
    """The model's window: the stub's override (a vLLM started with ``--max-model-len``),
    else the model's own."""
    if windows and model_id in windows:
        return int(windows[model_id])
    return int(facts(model_id)["context"])


def mistral_card(model_id: str, windows: Windows = None) -> dict[str, Any]:
    """A La Plateforme base-model card (field order of the SDK's ``BaseModelCard``); every
    alias has a card of its own listing the other names, as in the 2026 capture."""
    entry = facts(model_id)
    names = entry["ids"]
    capabilities = dict.fromkeys(_CAPABILITY_KEYS, False)
    capabilities.update(dict.fromkeys(entry["abilities"], True))
    return {
        "id": model_id,
        "object": "model",
        "created": entry["created"],
        "owned_by": "mistralai",
        "capabilities": capabilities,
        "name": names[0],
        "description": entry.get("description", f"Official {names[0]} Mistral AI model"),
        "max_context_length": context_window(model_id, windows),
        "aliases": [name for name in names if name != model_id],
        "deprecation": entry.get("deprecation"),
        "deprecation_replacement_model": entry.get("replacement"),
        "default_model_temperature": entry.get("temperature", 0.3),
        "type": "base",
    }


def vllm_card(model_id: str, created: int, windows: Windows = None) -> dict[str, Any]:
    """An OpenAI-style card as ``vllm serve --served-model-name`` lists it."""
    entry = facts(model_id)
    return {
        "id": model_id,
        "object": "model",
        "created": created,
        "owned_by": "vllm",
        "root": entry["root"],
        "parent": None,
        "max_model_len": context_window(model_id, windows),
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


def model_list(
    models: list[str], dialect: str, created: int, windows: Windows = None
) -> dict[str, Any]:
    cards = [model_card(m, dialect, created, windows) for m in models]
    return {"object": "list", "data": cards}


def model_card(
    model_id: str, dialect: str, created: int, windows: Windows = None
) -> dict[str, Any]:
    if dialect == "vllm":
        return vllm_card(model_id, created, windows)
    return mistral_card(model_id, windows)
