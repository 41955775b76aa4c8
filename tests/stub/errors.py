"""Error bodies in the shapes each dialect really sends, and the exception that carries them."""

from __future__ import annotations

import json
from typing import Any

JSON_TYPE = "application/json"
GATEWAY_JSON_TYPE = "application/json; charset=utf-8"


class ApiError(Exception):
    """An HTTP error response: raised by validation or route handlers, sent by the server."""

    def __init__(
        self,
        status: int,
        body: dict[str, Any] | str,
        headers: dict[str, str] | None = None,
        content_type: str = JSON_TYPE,
    ) -> None:
        super().__init__(f"{status}: {body}")
        self.status = status
        self.body = body
        self.headers = headers or {}
        self.content_type = content_type

    @property
    def body_bytes(self) -> bytes:
        text = self.body if isinstance(self.body, str) else dumps(self.body)
        return text.encode("utf-8")


def dumps(obj: Any) -> str:
    """JSON as the API writes it: compact separators, UTF-8 left unescaped."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def mistral_error(message: Any, type_: str, code: str | None, status: int = 400) -> ApiError:
    """La Plateforme's inference envelope (2025+ form, with ``raw_status_code``)."""
    body: dict[str, Any] = {
        "object": "error",
        "message": message,
        "type": type_,
        "param": None,
        "code": code,
        "raw_status_code": status,
    }
    return ApiError(status, body)


def mistral_validation_error(detail: list[dict[str, Any]]) -> ApiError:
    """The 422 envelope as recorded: pydantic ``detail`` list wrapped in ``message``."""
    body = {
        "object": "error",
        "message": {"detail": detail},
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }
    return ApiError(422, body)


def vllm_error(message: str, type_: str = "BadRequestError", status: int = 400) -> ApiError:
    """vLLM's OpenAI-style error (2025+): ``{"error": {message, type, param, code}}``."""
    body = {"error": {"message": message, "type": type_, "param": None, "code": status}}
    return ApiError(status, body)


def error_for(
    dialect: str, status: int, message: str, mistral_type: str, code: str | None
) -> ApiError:
    """One call for both dialects (vLLM's ``type`` is derived from the status)."""
    if dialect == "vllm":
        vllm_types = {400: "BadRequestError", 404: "NotFoundError", 401: "Unauthorized"}
        return vllm_error(message, vllm_types.get(status, "InternalServerError"), status)
    return mistral_error(message, mistral_type, code, status)
