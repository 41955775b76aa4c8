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
from tests.stub.models import can, context_window, facts
from tests.stub.replies import completion_body, first_text_pause, plan, stream_events
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
    validate.check_model(body, dialect, served_names(stub.served_models, dialect))
    validate.check_options(body, dialect)
    check_abilities(body, dialect)
    validate.check_conversation(body, dialect)
    prompt_tokens = count_prompt_tokens(body)
    window = context_window(str(body.get("model") or ""), stub.context_windows)
    validate.check_context(prompt_tokens, body, dialect, window)

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
    return Response(
        200,
        None,
        headers,
        SSE_TYPE,
        events=events,
        drop_after=drop_after,
        pauses=first_text_pause(reply),
    )


def served_names(models: list[str], dialect: str) -> list[str]:
    """The names a request may use: La Plateforme also takes every alias of a listed model
    (``codestral-latest`` for ``codestral-2508``); vLLM only its served names."""
    if dialect == "vllm":
        return models
    names = list(models)
    for model in models:
        names.extend(n for n in facts(model)["ids"] if n not in names)
    return names


def check_abilities(body: dict[str, Any], dialect: str) -> None:
    """What the model cannot do is refused, as the real servers do: images for a model
    without vision (vLLM: "<model> is not a multimodal model", from issue reports; La
    Plateforme: no capture, the message is ours), tools for a model without function calling
    (vLLM: its message when started without a tool parser), and ``reasoning_effort`` for a
    model that does not reason (La Plateforme; vLLM ignores request fields it does not use)."""
    model = str(body.get("model") or "")
    if _has_images(body) and not can(model, "vision"):
        if dialect == "vllm":
            raise vllm_error(f"{model} is not a multimodal model")
        raise error_for(
            dialect,
            400,
            f"Model {model} does not support image input",
            *validate.ARGS,
        )
    if body.get("tools") and not can(model, "function_calling"):
        choice = body.get("tool_choice")
        if dialect == "vllm" and choice in (None, "auto"):  # vLLM without a tool parser
            raise vllm_error(
                '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser '
                "to be set"
            )
        if dialect == "mistral":
            raise error_for(
                dialect, 400, "Function calling is not enabled for this model", *validate.ARGS
            )
    reasoning_effort = body.get("reasoning_effort") is not None
    if dialect == "mistral" and reasoning_effort and not can(model, "reasoning"):
        raise error_for(
            dialect, 400, "Reasoning effort is not enabled for this model", *validate.ARGS
        )


def _has_images(body: dict[str, Any]) -> bool:
    for message in body.get("messages") or []:
        content = message.get("content")
        if isinstance(content, list) and any(
            isinstance(chunk, dict) and (chunk.get("type") == "image_url" or "image_url" in chunk)
            for chunk in content
        ):
            return True
    return False


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
