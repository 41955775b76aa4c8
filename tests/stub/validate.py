"""Validation of ``POST /v1/chat/completions`` bodies, per dialect.

La Plateforme: strict pydantic schema (unknown fields -> 422 ``extra_forbidden``), then the
server-side checks of mistral-common's v3 validator and the model router (400 envelope).
vLLM: unknown fields ignored, the same conversation rules, OpenAI-style 400/404 errors.
"""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

from tests.stub import schema as s
from tests.stub.errors import ApiError, error_for, mistral_validation_error, vllm_error

CONTEXT_LENGTH = 131072
FUNCTION_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
TOOL_CALL_ID = re.compile(r"^[a-zA-Z0-9]{9}$")
TOOL_CHOICES = ("auto", "none", "any", "required")

ORDER = ("invalid_request_message_order", "3230")
FUNCTION = ("invalid_function_call", "3280")
ARGS = ("invalid_request_invalid_args", "3051")

_CHUNK_TYPES = ("text", "image_url", "document_url", "reference", "file", "input_audio", "thinking")
_CHUNK_KEYS = {"text": "text", "image_url": "image_url", "document_url": "document_url",
               "reference_ids": "reference", "file_id": "file", "input_audio": "input_audio",
               "thinking": "thinking"}  # fmt: skip


def _infer_chunk(value: dict[str, Any]) -> str | None:
    """Chunk ``type`` is optional in the schema; the present field names the chunk."""
    return next((tag for key, tag in _CHUNK_KEYS.items() if key in value), None)


def _infer_none(value: dict[str, Any]) -> str | None:
    return None


def _chunk_members(forbid: bool) -> dict[str, s.Checker]:
    def chunk(tag: str, **fields: s.Field) -> s.Checker:
        type_field = s.Field(s.literal([tag]))
        return s.model({"type": type_field, **fields}, forbid)

    image_url = s.model(
        {"url": s.Field(s.string(), True), "detail": s.Field(s.string(True))}, forbid
    )

    def image_url_value(value: Any, loc: s.Loc, errors: s.Errors) -> None:
        if not isinstance(value, str):
            image_url(value, loc, errors)

    return {
        "text": chunk("text", text=s.Field(s.string(), True)),
        "image_url": chunk("image_url", image_url=s.Field(image_url_value, True)),
        "document_url": chunk(
            "document_url",
            document_url=s.Field(s.string(), True),
            document_name=s.Field(s.string(True)),
        ),
        "reference": chunk("reference", reference_ids=s.Field(s.list_of(s.anything, False), True)),
        "file": chunk("file", file_id=s.Field(s.string(), True)),
        "input_audio": chunk("input_audio", input_audio=s.Field(s.anything, True)),
        "thinking": chunk(
            "thinking",
            thinking=s.Field(s.list_of(s.anything, False), True),
            signature=s.Field(s.string(True)),
            closed=s.Field(s.boolean()),
        ),
    }


def _content(forbid: bool, tags: tuple[str, ...], nullable: bool) -> s.Checker:
    members = {tag: checker for tag, checker in _chunk_members(forbid).items() if tag in tags}
    label = "list[tagged-union[" + ",".join(tags) + "]]"
    return s.str_or_list(s.tagged("type", members, _infer_chunk), label, nullable)


def _messages(forbid: bool) -> s.Checker:
    function_call = s.model(
        {"name": s.Field(s.string(), True), "arguments": s.Field(s.anything, True)}, forbid
    )
    tool_call = s.model(
        {
            "id": s.Field(s.string()),
            "type": s.Field(s.string(True)),
            "function": s.Field(function_call, True),
            "index": s.Field(s.integer()),
        },
        forbid,
    )
    role = s.Field(s.anything)
    members = {
        "system": s.model(
            {"role": role, "content": s.Field(_content(forbid, ("text", "thinking"), False), True)},
            forbid,
        ),
        "user": s.model(
            {"role": role, "content": s.Field(_content(forbid, _CHUNK_TYPES, True), True)}, forbid
        ),
        "assistant": s.model(
            {
                "role": role,
                "content": s.Field(_content(forbid, _CHUNK_TYPES, True)),
                "tool_calls": s.Field(s.list_of(tool_call)),
                "prefix": s.Field(s.boolean()),
            },
            forbid,
        ),
        "tool": s.model(
            {
                "role": role,
                "content": s.Field(_content(forbid, _CHUNK_TYPES, True), True),
                "tool_call_id": s.Field(s.string(True)),
                "name": s.Field(s.string(True)),
            },
            forbid,
        ),
    }
    return s.list_of(s.tagged("role", members, _infer_none), nullable=False)


def _tool_choice(forbid: bool) -> s.Checker:
    named = s.model(
        {
            "type": s.Field(s.literal(["function"])),
            "function": s.Field(s.model({"name": s.Field(s.string(), True)}, forbid), True),
        },
        forbid,
    )
    enum = s.literal(TOOL_CHOICES, kind="enum")

    def check(value: Any, loc: s.Loc, errors: s.Errors) -> None:
        (named if isinstance(value, dict) else enum)(value, loc, errors)

    return check


def _stop(value: Any, loc: s.Loc, errors: s.Errors) -> None:
    if value is None or isinstance(value, str):
        return
    s.str_or_list(s.string(), "list[str]", True)(value, loc, errors)


def request_checker(forbid: bool) -> s.Checker:
    """The chat request schema; ``forbid=False`` is vLLM's ``extra="allow"``."""
    tool = s.model(
        {
            "type": s.Field(s.literal(["function"])),
            "function": s.Field(
                s.model(
                    {
                        "name": s.Field(s.string(), True),
                        "description": s.Field(s.string()),
                        "parameters": s.Field(s.mapping(False), True),
                        "strict": s.Field(s.boolean()),
                    },
                    forbid,
                ),
                True,
            ),
        },
        forbid,
    )
    json_schema = s.model(
        {
            "name": s.Field(s.string(), True),
            "description": s.Field(s.string(True)),
            "schema": s.Field(s.mapping(False), True),
            "strict": s.Field(s.boolean()),
        },
        forbid,
        nullable=True,
    )
    response_format = s.model(
        {
            "type": s.Field(s.literal(["text", "json_object", "json_schema"])),
            "json_schema": s.Field(json_schema),
        },
        forbid,
    )
    prediction = s.model(
        {"type": s.Field(s.literal(["content"])), "content": s.Field(s.string())}, forbid
    )
    fields = {
        "model": s.Field(s.string(), True),
        "messages": s.Field(_messages(forbid), True),
        "temperature": s.Field(s.number(0, 1.5)),
        "top_p": s.Field(s.number(0, 1)),
        "max_tokens": s.Field(s.integer(ge=0)),
        "stream": s.Field(s.boolean()),
        "stop": s.Field(_stop),
        "random_seed": s.Field(s.integer(ge=0)),
        "metadata": s.Field(s.mapping()),
        "response_format": s.Field(response_format),
        "tools": s.Field(s.list_of(tool)),
        "tool_choice": s.Field(_tool_choice(forbid)),
        "presence_penalty": s.Field(s.number(-2, 2)),
        "frequency_penalty": s.Field(s.number(-2, 2)),
        "min_tokens": s.Field(s.integer(ge=0)),
        "repetition_penalty": s.Field(s.number()),
        "top_k": s.Field(s.integer()),
        "logprobs": s.Field(s.boolean(True)),
        "top_logprobs": s.Field(s.integer()),
        "prompt_logprobs": s.Field(s.boolean(True)),
        "top_prompt_logprobs": s.Field(s.integer()),
        "n": s.Field(s.integer(ge=1)),
        "prediction": s.Field(prediction),
        "parallel_tool_calls": s.Field(s.boolean()),
        "reasoning_effort": s.Field(
            s.literal(["none", "minimal", "low", "medium", "high", "xhigh", "max"], True)
        ),
        "prompt_mode": s.Field(s.literal(["reasoning"], True)),
        "guardrails": s.Field(s.list_of(s.mapping(False))),
        "prompt_cache_key": s.Field(s.string(True)),
        "service_tier": s.Field(s.literal(["auto", "standard_only"], True)),
        "safe_prompt": s.Field(s.boolean()),
    }
    if not forbid:
        # vLLM is OpenAI-shaped: model optional, ranges checked later by SamplingParams.
        fields["model"] = s.Field(s.string(True))
        for name in ("temperature", "top_p", "max_tokens", "n"):
            fields[name] = s.Field(s.number() if name in ("temperature", "top_p") else s.integer())
    return s.model(fields, forbid)


_MISTRAL = request_checker(forbid=True)
_VLLM = request_checker(forbid=False)


def check_schema(body: Any, dialect: str) -> None:
    """Raise the dialect's schema error (422 envelope / vLLM 400) if ``body`` is malformed."""
    errors: s.Errors = []
    if dialect == "vllm":
        _VLLM(body, (), errors)
        if errors:
            raise vllm_error(json.dumps(errors))
        return
    if not isinstance(body, dict):
        msg = "Input should be a valid dictionary or object to extract fields from"
        s.error(errors, "model_attributes_type", (), msg, body)
        errors[0]["loc"] = ["body"]
    else:
        _MISTRAL(body, (), errors)
    if errors:
        raise mistral_validation_error(errors)


def json_decode_error(raw: bytes, dialect: str, exc: json.JSONDecodeError) -> ApiError:
    """FastAPI's answer to a body that is not JSON."""
    if dialect == "vllm":
        return vllm_error(f"JSON decode error: {exc.msg}")
    entry = {
        "type": "json_invalid",
        "loc": ["body", exc.pos],
        "msg": "JSON decode error",
        "input": {},
        "ctx": {"error": exc.msg},
    }
    return mistral_validation_error([entry])


# ---------------------------------------------------------------- semantic (400) checks


def text_of(content: Any) -> str:
    """The text of a message content (string, or the text chunks of a list)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(c.get("text", "") for c in content if isinstance(c, dict))
    return ""


def _fail(dialect: str, message: str, kind: tuple[str, str]) -> ApiError:
    return error_for(dialect, 400, message, kind[0], kind[1])


def check_model(body: dict[str, Any], dialect: str, known: list[str]) -> None:
    model = body.get("model")
    if dialect == "vllm":
        if model is not None and model not in known:
            raise vllm_error(f"The model `{model}` does not exist.", "NotFoundError", 404)
        return
    if model not in known:
        raise error_for(dialect, 400, f"Invalid model: {model}", "invalid_model", "1500")


def check_options(body: dict[str, Any], dialect: str) -> None:
    """Per-model and per-dialect option checks that are not schema errors."""
    if dialect == "vllm":
        _check_vllm_sampling(body)
        return
    if s.as_bool(body.get("logprobs")):
        raise _fail(dialect, "Logprobs are not enabled for this model", ARGS)


def _check_vllm_sampling(body: dict[str, Any]) -> None:
    choice = body.get("tool_choice")
    if isinstance(choice, str) and choice not in ("none", "auto", "required"):
        raise vllm_error('Only named tools, "none", "auto" or "required" are supported')
    temperature = s.as_float(body.get("temperature"))
    if temperature is not None and temperature < 0:
        raise vllm_error(f"temperature must be non-negative, got {temperature}.")
    top_p = s.as_float(body.get("top_p"))
    if top_p is not None and not 0 < top_p <= 1:
        raise vllm_error(f"top_p must be in (0, 1], got {top_p}.")
    n = s.as_int(body.get("n"))
    if n is not None and n < 1:
        raise vllm_error(f"n must be at least 1, got {n}.")
    max_tokens = s.as_int(body.get("max_completion_tokens", body.get("max_tokens")))
    if max_tokens is not None and max_tokens < 1:
        raise vllm_error(f"max_tokens must be at least 1, got {max_tokens}.")


def check_conversation(body: dict[str, Any], dialect: str) -> None:
    """mistral-common's v3 serving rules, in its order: structure, then content, then tools."""
    messages: list[dict[str, Any]] = body["messages"]
    _check_structure(messages, dialect, _continues_final(body, dialect))
    for index, message in enumerate(messages):
        _check_message(message, index == len(messages) - 1, dialect)
    for tool in body.get("tools") or []:
        name = tool["function"]["name"]
        if not FUNCTION_NAME.match(name):
            raise _fail(dialect, _bad_name(name), FUNCTION)


def _continues_final(body: dict[str, Any], dialect: str) -> bool:
    return dialect == "vllm" and bool(s.as_bool(body.get("continue_final_message")))


def _bad_name(name: str) -> str:
    return (
        f"Function name was {name} but must be a-z, A-Z, 0-9, or contain underscores and "
        "dashes, with a maximum length of 64."
    )


def _check_structure(messages: list[dict[str, Any]], dialect: str, continues: bool) -> None:
    if not messages:
        raise _fail(dialect, "Conversation must have at least one message", ORDER)
    roles = [m["role"] for m in messages]
    if len(roles) == 1 and roles[0] not in ("user", "system"):
        msg = "Conversation must start with a user message or system message"
        raise _fail(dialect, msg, ORDER)
    last = messages[-1]
    prefixed = last["role"] == "assistant" and (bool(s.as_bool(last.get("prefix"))) or continues)
    if len(roles) > 1 and last["role"] not in ("user", "tool") and not prefixed:
        msg = (
            "Expected last role User or Tool (or Assistant with prefix True) for serving but "
            f"got {last['role']}"
        )
        raise _fail(dialect, msg, ORDER)
    allowed = {
        "system": {"user", "assistant", "system"},
        "user": {"assistant", "system", "user"},
        "assistant": {"assistant", "user", "tool"},
        # La Plateforme rejected user right after tool until 2026 (mistral-common cdd334b).
        "tool": {"assistant", "tool"},
    }
    for previous, current in itertools.pairwise(roles):
        if current not in allowed[previous]:
            raise _fail(dialect, f"Unexpected role '{current}' after role '{previous}'", ORDER)
    expected = 0
    for message in messages[1:]:
        if message["role"] == "tool":
            expected -= 1
        elif message["role"] == "assistant":
            if expected != 0:
                raise _fail(dialect, "Not the same number of function calls and responses", ORDER)
            expected = len(message.get("tool_calls") or [])
    if expected != 0:
        raise _fail(dialect, "Not the same number of function calls and responses", ORDER)


def _check_message(message: dict[str, Any], is_last: bool, dialect: str) -> None:
    role = message["role"]
    if role == "system" and message.get("content") is None:
        raise _fail(dialect, "System prompt must have content", ORDER)
    if role == "assistant":
        has_text = bool(message.get("content"))
        calls = message.get("tool_calls") or []
        if has_text == bool(calls):
            msg = "Assistant message must have either content or tool_calls, but not both."
            raise _fail(dialect, msg, ORDER)
        for call in calls:
            call_id = call.get("id", "null")
            if not TOOL_CALL_ID.match(str(call_id)):
                raise _fail(dialect, _bad_id(call_id), FUNCTION)
            name = call["function"]["name"]
            if not FUNCTION_NAME.match(name):
                raise _fail(dialect, _bad_name(name), FUNCTION)
        if s.as_bool(message.get("prefix")) and not is_last:
            msg = "Assistant message with prefix True must be last message"
            raise _fail(dialect, msg, ORDER)
    if role == "tool":
        name = message.get("name")
        if name is not None and not FUNCTION_NAME.match(name):
            raise _fail(dialect, _bad_name(name), FUNCTION)
        call_id = message.get("tool_call_id")
        if call_id is None:
            raise _fail(dialect, "Tool call id has to be defined.", FUNCTION)
        if not TOOL_CALL_ID.match(call_id):
            raise _fail(dialect, _bad_id(call_id), FUNCTION)


def _bad_id(call_id: Any) -> str:
    return f"Tool call id was {call_id} but must be a-z, A-Z, 0-9, with a length of 9."


def max_tokens_of(body: dict[str, Any], dialect: str) -> int | None:
    value = body.get("max_tokens")
    if dialect == "vllm" and body.get("max_completion_tokens") is not None:
        value = body.get("max_completion_tokens")
    return s.as_int(value)


def check_context(prompt_tokens: int, body: dict[str, Any], dialect: str, limit: int) -> None:
    """400 when prompt + max_tokens does not fit the context window."""
    max_tokens = max_tokens_of(body, dialect) or 0
    if prompt_tokens + max_tokens <= limit:
        return
    if dialect == "vllm":
        raise vllm_error(
            f"This model's maximum context length is {limit} tokens. However, you requested "
            f"{prompt_tokens + max_tokens} tokens ({prompt_tokens} in the messages, "
            f"{max_tokens} in the completion). Please reduce the length of the messages or "
            "completion."
        )
    msg = (
        f"Prompt contains {prompt_tokens} tokens and 0 draft tokens, too large for model with "
        f"{limit} maximum context length"
    )
    raise _fail(dialect, msg, ARGS)
