"""Every error the API client raises, each with a one-paragraph message meant for a person.

Every error that leaves ``mistral_magic.api`` is a :class:`MistralError`. Messages say what
to do in terms of the client's own settings (environment variables, the ``Mistral``
settings); the faces (magics, chat panel, sidebar) add their own hints. Server text is only
ever quoted through :class:`~mistral_magic.api.scrub.Scrubber`, so no message carries the key.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .scrub import Scrubber
    from .types import Completion

RETIRED_2407_HINT = (
    "mistral-large-2407 was retired from La Plateforme on 2025-03-30. Use "
    "mistral-large-latest there, or serve the open weights "
    "(mistralai/Mistral-Large-Instruct-2407) with vLLM and set MISTRAL_BASE_URL to it."
)
# Request fields only the OpenAI-compatible dialect sends; a 422 naming one means the server
# speaks La Plateforme's dialect.
OPENAI_ONLY_FIELDS = frozenset(
    {"stream_options", "seed", "continue_final_message", "add_generation_prompt"}
)


class MistralError(Exception):
    """Base of every error raised by the client.

    ``partial`` holds what a stream delivered before it failed, so nothing is lost.
    """

    status: int | None
    code: str | None
    error_type: str | None
    request_id: str | None
    partial: Completion | None

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        error_type: str | None = None,
        request_id: str | None = None,
        partial: Completion | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.error_type = error_type
        self.request_id = request_id
        self.partial = partial

    def __str__(self) -> str:
        return self.message


class SettingsError(MistralError, ValueError):
    """A setting that cannot work (a base URL without a scheme, a port that is no number)."""


class MissingAPIKeyError(MistralError):
    """No API key configured."""


class AuthenticationError(MistralError):
    """401/403: the key was refused."""


class InvalidRequestError(MistralError):
    """400/404/422: the server refused the request as malformed or not allowed."""

    def __init__(self, message: str, *, details: list[dict[str, Any]] | None = None, **kw: Any):
        super().__init__(message, **kw)
        self.details = details or []


class ModelNotFoundError(InvalidRequestError):
    """400 ``invalid_model``: the model id is unknown to the server."""


class ContextLengthError(InvalidRequestError):
    """400: prompt plus ``max_tokens`` exceed the model's context window."""


class RateLimitError(MistralError):
    """429 after all retries; ``retry_after`` is the server's hint in seconds, if any."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any):
        super().__init__(message, **kw)
        self.retry_after = retry_after


class ServerError(MistralError):
    """5xx after all retries."""


class APIConnectionError(MistralError):
    """The server could not be reached, or the connection broke."""


class APITimeoutError(APIConnectionError):
    """The server did not answer in time."""


class StreamError(MistralError):
    """A stream broke off (the connection closed or failed before the server was done)."""


class ResponseFormatError(MistralError):
    """A 200 response that is not the protocol: not JSON, not a chat completion, an SSE event
    that is not JSON, HTML behind the right headers. Never retried: it may have been billed."""


class ServerReportedError(MistralError):
    """A 200 response (or a stream event) whose body is an error object from the server."""


class ReplyTooLongError(MistralError):
    """The reply passed the client's size bound; it was cut there and the stream closed."""


class BatchUnavailableError(InvalidRequestError):
    """The server has no Files/Batch API (a vLLM server, or a wrong base URL)."""


class BatchJobNotFoundError(InvalidRequestError):
    """No batch job with that id in this workspace."""


def _parse_body(body: str | bytes | None) -> Any:
    if body is None:
        return None
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    body = body.strip()
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return body


def _detail_lines(details: list[dict[str, Any]]) -> str:
    parts = []
    for d in details[:5]:
        loc = ".".join(str(p) for p in d.get("loc", []) if p != "body")
        msg = d.get("msg") or d.get("type") or "invalid"
        parts.append(f"{loc}: {msg}" if loc else str(msg))
    more = f" (and {len(details) - 5} more)" if len(details) > 5 else ""
    return "; ".join(parts) + more


class _Fields:
    """The useful fields of any of the error body shapes seen on the wire."""

    def __init__(self, parsed: Any) -> None:
        self.message: str | None = None
        self.error_type: str | None = None
        self.code: str | None = None
        self.request_id: str | None = None
        self.details: list[dict[str, Any]] = []
        if isinstance(parsed, str):
            self.message = parsed  # clipped only after scrubbing, when quoted
        elif isinstance(parsed, Mapping):
            self._read(parsed)

    def _read(self, body: Mapping[str, Any]) -> None:
        # vLLM / OpenAI: {"error": {"message", "type", "code"}} or {"error": "Unauthorized"}
        inner = body.get("error")
        if isinstance(inner, Mapping):
            body = inner
        elif isinstance(inner, str) and "message" not in body:
            self.message = inner
        self.error_type = _str_or_none(body.get("type"))
        code = body.get("code")
        self.code = None if code is None else str(code)
        self.request_id = _str_or_none(body.get("request_id"))
        message = body.get("message")
        if isinstance(message, str):
            # Jan-2024 variant: the pydantic detail JSON as a string
            nested = _parse_body(message) if message.lstrip().startswith("{") else None
            if isinstance(nested, Mapping) and isinstance(nested.get("detail"), list):
                self.details = [d for d in nested["detail"] if isinstance(d, Mapping)]
            else:
                self.message = message
        elif isinstance(message, Mapping) and isinstance(message.get("detail"), list):
            self.details = [d for d in message["detail"] if isinstance(d, Mapping)]
        elif isinstance(message, list):
            self.details = [d for d in message if isinstance(d, Mapping)]
        detail = body.get("detail")
        if isinstance(detail, list) and not self.details:
            self.details = [d for d in detail if isinstance(d, Mapping)]
        elif isinstance(detail, str) and not self.message:
            self.message = detail
        if self.details and not self.message:
            self.message = _detail_lines(self.details)


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    import datetime as _dt

    now = _dt.datetime.now(when.tzinfo or _dt.timezone.utc)
    return max(0.0, (when - now).total_seconds())


def error_from_response(
    status: int,
    body: str | bytes | None,
    headers: Mapping[str, str] | None = None,
    *,
    model: str | None = None,
    base_url: str | None = None,
    scrubber: Scrubber | None = None,
    dialect: str | None = None,
) -> MistralError:
    """Turn an HTTP error response into the matching :class:`MistralError`.

    ``base_url`` is named in the message (without credentials); ``dialect`` is the one in use,
    so that a hint never recommends it; ``scrubber`` removes the key from quoted text."""
    from .scrub import Scrubber
    from .urls import display_url

    quote = (scrubber or Scrubber()).quote
    headers = headers or {}
    raw = body.decode("utf-8", "replace") if isinstance(body, bytes) else (body or "")
    fields = _Fields(_parse_body(raw[:65536]))
    server_text = quote(fields.message or "", 500)
    request_id = fields.request_id or headers.get("mistral-correlation-id")
    common: dict[str, Any] = {
        "status": status,
        "code": quote(fields.code, 40) or None,
        "error_type": quote(fields.error_type, 60) or None,
        "request_id": quote(request_id, 80) or None,
    }
    where = f" at {display_url(base_url)}" if base_url else ""

    if status in (401, 403):
        return AuthenticationError(
            f"The server{where} refused the API key (HTTP {status}"
            f"{': ' + server_text[:200] if server_text else ''}). Check MISTRAL_API_KEY: create "
            "or copy a key at https://console.mistral.ai/api-keys and set it in the "
            "environment of the process that sends the requests (for a self-hosted vLLM, the "
            "value of its --api-key).",
            **common,
        )
    if status == 429:
        retry_after = parse_retry_after(headers.get("retry-after"))
        hint = f" The server asked to wait {retry_after:g} s." if retry_after else ""
        return RateLimitError(
            f"Rate limit reached (HTTP 429: {server_text[:200] or 'too many requests'}), and "
            f"it persisted through the client's retries.{hint} Wait a little and try again, "
            "lower the request rate or the concurrency, or check your workspace's limits at "
            "https://console.mistral.ai.",
            retry_after=retry_after,
            **common,
        )
    if status >= 500:
        return ServerError(
            f"The model server{where} had an internal problem (HTTP {status}"
            f"{': ' + server_text[:300] if server_text else ''}) and kept failing through "
            "the client's retries. This is usually temporary: try again in a minute.",
            **common,
        )
    lowered = server_text.lower()
    if (
        fields.error_type == "invalid_model"
        or fields.code == "1500"
        or ("invalid model" in lowered or ("model" in lowered and "does not exist" in lowered))
    ):
        hint = ""
        if model and "2407" in model and dialect != "openai":
            hint = " " + RETIRED_2407_HINT
        elif dialect == "openai":
            hint = " A vLLM server answers to the name given by its --served-model-name."
        shown_model = quote(model, 100) if model else "?"
        return ModelNotFoundError(
            f"The server{where} does not know the model {shown_model!r} "
            f"({server_text[:200] or 'invalid model'}).{hint} The server's model list "
            "(GET /models) names the models it serves; choose one with MISTRAL_MODEL or the "
            "model setting.",
            details=fields.details,
            **common,
        )
    if status == 404:
        return InvalidRequestError(
            f"The server{where} has no such endpoint (HTTP 404"
            f"{': ' + server_text[:200] if server_text else ''}). MISTRAL_BASE_URL must be the "
            "API root including /v1, e.g. https://api.mistral.ai/v1 or http://host:8000/v1.",
            **common,
        )
    if (
        "context length" in lowered
        or "too large for model" in lowered
        or ("maximum context" in lowered)
    ):
        return ContextLengthError(
            f"The request is too long for the model ({server_text[:300]}). Send less "
            "context or earlier conversation, or lower max_tokens.",
            details=fields.details,
            **common,
        )
    if fields.details:
        return InvalidRequestError(
            f"The server{where} rejected the request as invalid (HTTP {status}): "
            f"{quote(_detail_lines(fields.details), 500)}.{_dialect_hint(fields, dialect)}",
            details=fields.details,
            **common,
        )
    return InvalidRequestError(
        f"The server{where} rejected the request (HTTP {status}"
        f"{': ' + server_text if server_text else ''}).{_dialect_hint(fields, dialect)}",
        **common,
    )


def _dialect_hint(fields: _Fields, dialect: str | None) -> str:
    """A hint about the wire dialect, only when the error points at the other one."""
    extra = {
        str(d.get("loc", ["?"])[-1])
        for d in fields.details
        if d.get("type") == "extra_forbidden" and isinstance(d.get("loc"), list) and d["loc"]
    }
    text = (fields.message or "").lower()
    if dialect == "openai" and extra & OPENAI_ONLY_FIELDS:
        return (
            " This server refuses the OpenAI-compatible fields "
            f"({', '.join(sorted(extra & OPENAI_ONLY_FIELDS))}): it speaks La Plateforme's "
            "dialect. Set MISTRAL_DIALECT=mistral."
        )
    if dialect == "mistral" and ('"required" are supported' in text or "random_seed" in text):
        return (
            " This looks like an OpenAI-compatible server such as vLLM. Set MISTRAL_DIALECT=openai."
        )
    if extra and dialect != "openai":
        return " La Plateforme accepts only the fields of its own API."
    return ""


def error_in_body(
    parsed: Mapping[str, Any],
    *,
    model: str | None,
    base_url: str | None,
    scrubber: Scrubber | None,
    dialect: str | None,
) -> MistralError:
    """The error a 200 response (or a stream event) carries as its body, with the server's
    own message. A status inside the body (``raw_status_code``, a numeric ``code``) maps it
    like the HTTP error it stands for."""
    from .scrub import Scrubber

    inner = parsed.get("error")
    fields = inner if isinstance(inner, Mapping) else parsed
    status = fields.get("raw_status_code", parsed.get("raw_status_code"))
    if not (isinstance(status, int) and 400 <= status <= 599):
        code = fields.get("code")
        status = code if isinstance(code, int) and 400 <= code <= 599 else None
    if status is not None:
        return error_from_response(
            status,
            json.dumps(parsed),
            model=model,
            base_url=base_url,
            scrubber=scrubber,
            dialect=dialect,
        )
    message = _Fields(parsed).message or json.dumps(inner if inner is not None else parsed)
    quoted = (scrubber or Scrubber()).quote(message, 300)
    return ServerReportedError(f"The server reported an error instead of a reply: {quoted}")


def fim_unavailable(status: int, shown_url: str, dialect: str | None) -> InvalidRequestError:
    """``POST /fim/completions`` answered 404/405: the server serves no fill-in-the-middle."""
    which = " (vLLM has none)" if dialect == "openai" else ""
    return InvalidRequestError(
        f"The server at {shown_url} serves no fill-in-the-middle endpoint (POST "
        f"/fim/completions answered HTTP {status}){which}. Codestral's FIM is on La Plateforme "
        "(https://api.mistral.ai/v1) and at https://codestral.mistral.ai/v1: set "
        "MISTRAL_CODESTRAL_BASE_URL (and MISTRAL_CODESTRAL_API_KEY for a Codestral key), or "
        "leave both unset to complete with the chat model.",
        status=status,
    )
