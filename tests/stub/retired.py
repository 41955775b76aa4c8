"""Models La Plateforme no longer serves: ``mistral-large-2407`` answers ``400 invalid_model``
since 2025-03-30. The body is the recorded one
(``tests/captures/error-400-invalid-model-on-stream-request.json``), with the model id the
request named, and the retired ids are left out of ``GET /v1/models``."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from tests.stub.captures import resolve_capture
from tests.stub.errors import ApiError

RETIRED_2407 = ("mistral-large-2407",)
CAPTURE = "error-400-invalid-model-on-stream-request.json"


@cache
def _recorded() -> tuple[int, dict[str, str], dict[str, Any]]:
    record = json.loads(resolve_capture(CAPTURE).read_text(encoding="utf-8"))
    response = record["response"]
    return response["status"], dict(response["headers"]), json.loads(response["body"])


def retired_model_error(model: str) -> ApiError:
    """The recorded 400 for ``model`` (same keys, same order, same content type)."""
    status, headers, body = _recorded()
    body = {**body, "message": f"Invalid model: {model}"}
    content_type = headers.get("content-type", "application/json")
    return ApiError(status, json.dumps(body, separators=(",", ":")), content_type=content_type)
