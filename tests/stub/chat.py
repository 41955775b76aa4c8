"""``POST /v1/chat/completions``: faults, validation, then the scripted or default reply."""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from tests.stub import validate
from tests.stub.errors import (
    GATEWAY_JSON_TYPE,
    JSON_TYPE,
    error_for,
    mistral_validation_error,
    vllm_error,
)
from tests.stub.replies import completion_body, plan, stream_events
from tests.stub.retired import retired_model_error
from tests.stub.schema import as_bool
from tests.stub.script import CaptureReplay, Drop, Fault, Reply, kong_body
from tests.stub.tokens import count_prompt_tokens
from tests.stub.transport import SSE_TYPE, RecordedRequest, Response

if TYPE_CHECKING:
    from tests.stub.server import StubServer


def chat_completions(
    stub: StubServer, request: RecordedRequest, params: dict[str, str]
) -> Response:
    dialect = stub.dialect
    early = stub._take_scripted(before_validation=True)
    if isinstance(early, Fault):
        return fault_response(early, dialect)
    if isinstance(early, CaptureReplay):
        return replay_response(early)

    body = _parse(request.raw, dialect)
    validate.check_schema(body, dialect)
    if dialect == "mistral" and body.get("model") in stub.retired:
        raise retired_model_error(str(body["model"]))
    validate.check_model(body, dialect, stub.models)
    validate.check_options(body, dialect)
    validate.check_conversation(body, dialect)
    prompt_tokens = count_prompt_tokens(body)
    validate.check_context(prompt_tokens, body, dialect, validate.CONTEXT_LENGTH)

    item = stub._take_scripted(before_validation=False)
    if isinstance(item, CaptureReplay):
        return replay_response(item)
    stream = bool(as_bool(body.get("stream")))
    reply = item.reply if isinstance(item, Drop) else item
    if reply is None and stub.responder is not None:
        reply = stub.responder(body)
    assert reply is None or isinstance(reply, Reply)
    result = plan(reply, body, dialect, prompt_tokens, stub.default_reply)
    headers = _rate_limit_headers(result.usage) if dialect == "mistral" else {}
    if not stream:
        if isinstance(item, Drop):
            return Response(abort=True)
        return Response(200, completion_body(result), headers)
    options = body.get("stream_options") if dialect == "vllm" else None
    include_usage = isinstance(options, dict) and bool(as_bool(options.get("include_usage")))
    events = stream_events(result, include_usage)
    drop_after = None
    if isinstance(item, Drop):
        drop_after = max(0, min(item.after_chunks, len(events) - 1))  # never the [DONE]
    return Response(200, None, headers, SSE_TYPE, events=events, drop_after=drop_after)


def _parse(raw: bytes, dialect: str) -> Any:
    if not raw.strip():
        if dialect == "vllm":
            raise vllm_error("Field required: body")
        entry = {"type": "missing", "loc": ["body"], "msg": "Field required", "input": None}
        raise mistral_validation_error([entry])
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise validate.json_decode_error(raw, dialect, exc) from exc


def _rate_limit_headers(usage: dict[str, Any]) -> dict[str, str]:
    """The 2024 ``ratelimitbysize-*`` family, as on the recorded 2407-era responses."""
    cost = int(usage.get("total_tokens") or 0)
    limit = 2_000_000
    return {
        "ratelimitbysize-limit": str(limit),
        "ratelimitbysize-remaining": str(limit - cost),
        "ratelimitbysize-reset": "60",
        "ratelimitbysize-query-cost": str(cost),
        "x-ratelimitbysize-limit-minute": str(limit),
        "x-ratelimitbysize-remaining-minute": str(limit - cost),
    }


_STATUSES = {status.value for status in HTTPStatus}


def fault_response(fault: Fault, dialect: str) -> Response:
    headers = dict(fault.headers or {})
    if fault.body is not None:
        return Response(fault.status, fault.body, headers)
    if dialect == "vllm":
        if fault.status == 401:  # vLLM's --api-key middleware
            return Response(401, {"error": "Unauthorized"}, headers)
        message = HTTPStatus(fault.status).phrase if fault.status in _STATUSES else "Error"
        error = error_for("vllm", fault.status, message, "", None)
        return Response(fault.status, error.body, headers)
    text = kong_body(fault.status)
    if text is not None:
        return Response(fault.status, text, headers, GATEWAY_JSON_TYPE)
    error = error_for(dialect, fault.status, "Request failed", "invalid_request_error", None)
    return Response(fault.status, error.body, headers, JSON_TYPE)


def replay_response(replay: CaptureReplay) -> Response:
    text = replay.body_text
    headers = replay.headers
    if not replay.is_event_stream:
        return Response(replay.status, text.encode("utf-8"), headers)
    events = [part + "\n\n" for part in text.split("\n\n")[:-1]]
    tail = text[sum(len(e) for e in events) :]
    if tail:
        events.append(tail)
    return Response(replay.status, None, headers, SSE_TYPE, events=events)
