"""``POST /v1/fim/completions``: Codestral's fill-in-the-middle, as La Plateforme serves it.

The body (protocol notes §5, ``FIMCompletionRequest``): ``model`` and ``prompt`` required,
``suffix``, ``temperature``, ``top_p``, ``max_tokens``, ``min_tokens``, ``stream``, ``stop``,
``random_seed``, ``metadata``, ``prompt_cache_key``; anything else (a ``name``, ``messages``,
OpenAI's ``seed``) is a 422 ``extra_forbidden``. A model whose card does not say
``completion_fim`` gets the real refusal: 400 ``FIM is not enabled for this model``
(``invalid_request_invalid_args``, 3051; quoted in langchain-ai/langchainjs#9646). The answer
is in the chat-completion shapes, its content only the middle part. vLLM has no such route:
404 ``{"detail": "Not Found"}``.

Scripted like chat: the same queue (``stub.queue(Reply(...), Fault(...), Drop(...))``), the
same ``responder`` (it gets the FIM body), the same ``token_delay``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tests.stub import schema as s
from tests.stub.chat import _parse, fault_response, replay_response, served_names
from tests.stub.errors import ApiError, error_for, mistral_validation_error
from tests.stub.models import can, context_window
from tests.stub.replies import completion_body, first_text_pause, plan, stream_events
from tests.stub.script import CaptureReplay, Drop, Fault, Reply
from tests.stub.tokens import count_tokens
from tests.stub.transport import SSE_TYPE, RecordedRequest, Response

if TYPE_CHECKING:
    from tests.stub.server import StubServer

FIM_PATH = "/v1/fim/completions"


def _stop(value: Any, loc: s.Loc, errors: s.Errors) -> None:
    if value is None or isinstance(value, str):
        return
    s.str_or_list(s.string(), "list[str]", True)(value, loc, errors)


FIM_REQUEST = s.model(
    {
        "model": s.Field(s.string(), True),
        "prompt": s.Field(s.string(), True),
        "suffix": s.Field(s.string(True)),
        "temperature": s.Field(s.number(0, 1.5)),
        "top_p": s.Field(s.number(0, 1)),
        "max_tokens": s.Field(s.integer(ge=0)),
        "min_tokens": s.Field(s.integer(ge=0)),
        "stream": s.Field(s.boolean()),
        "stop": s.Field(_stop),
        "random_seed": s.Field(s.integer(ge=0)),
        "metadata": s.Field(s.mapping()),
        "prompt_cache_key": s.Field(s.string(True)),
    },
    forbid_extra=True,
)


def check_fim_schema(body: Any) -> None:
    """The 422 of La Plateforme for a malformed FIM body (unknown fields included)."""
    errors: s.Errors = []
    if not isinstance(body, dict):
        msg = "Input should be a valid dictionary or object to extract fields from"
        s.error(errors, "model_attributes_type", (), msg, body)
        errors[0]["loc"] = ["body"]
    else:
        FIM_REQUEST(body, (), errors)
    if errors:
        raise mistral_validation_error(errors)


def check_fim_model(body: dict[str, Any], stub: StubServer) -> None:
    model = body.get("model")
    # Any name of a listed model, as for chat (La Plateforme takes every alias of a card).
    if model not in served_names(stub.served_models, "mistral"):
        raise error_for("mistral", 400, f"Invalid model: {model}", "invalid_model", "1500")
    # The model's card is the one source: the stub serves FIM to the models whose card in
    # GET /models says completion_fim (tests/stub/models.py), as La Plateforme does.
    if not can(str(model), "completion_fim"):
        raise error_for(
            "mistral",
            400,
            "FIM is not enabled for this model",
            "invalid_request_invalid_args",
            "3051",
        )


def _cut_at_stop(reply: Reply | None, stop: Any) -> Reply | None:
    """The model stops before the first stop sequence (it is not part of the answer)."""
    if reply is None or reply.text is None or not stop:
        return reply
    sequences = [stop] if isinstance(stop, str) else [x for x in stop if isinstance(x, str)]
    cut = min((i for x in sequences if x and (i := reply.text.find(x)) >= 0), default=-1)
    if cut < 0:
        return reply
    return Reply(text=reply.text[:cut], finish_reason="stop", usage=reply.usage)


def fim_completions(stub: StubServer, request: RecordedRequest, params: dict[str, str]) -> Response:
    if stub.dialect == "vllm":  # vLLM serves no FIM route
        raise ApiError(404, {"detail": "Not Found"})
    early = stub._take_scripted(before_validation=True)
    if isinstance(early, Fault):
        return fault_response(early, "mistral")
    if isinstance(early, CaptureReplay):
        return replay_response(early)

    body = _parse(request.raw, "mistral")
    check_fim_schema(body)
    check_fim_model(body, stub)
    prompt_tokens = count_tokens(body["prompt"]) + count_tokens(body.get("suffix") or "") + 3
    max_tokens = s.as_int(body.get("max_tokens")) or 0
    window = context_window(str(body["model"]), stub.context_windows)
    if prompt_tokens + max_tokens > window:
        msg = (
            f"Prompt contains {prompt_tokens} tokens and 0 draft tokens, too large for model "
            f"with {window} maximum context length"
        )
        raise error_for("mistral", 400, msg, "invalid_request_invalid_args", "3051")

    item = stub._take_scripted(before_validation=False)
    if isinstance(item, CaptureReplay):
        return replay_response(item)
    reply = item.reply if isinstance(item, Drop) else item
    if reply is None and stub.responder is not None:
        reply = stub.responder(body)
    assert reply is None or isinstance(reply, Reply)
    reply = _cut_at_stop(reply, body.get("stop"))
    # Planned like a chat answer to one user message: the same token counting and cuts.
    as_chat = {
        "model": body["model"],
        "messages": [{"role": "user", "content": body["prompt"]}],
        "max_tokens": body.get("max_tokens"),
    }
    result = plan(reply, as_chat, "mistral", prompt_tokens, stub.default_reply)
    if not s.as_bool(body.get("stream")):
        if isinstance(item, Drop):
            return Response(abort=True)
        return Response(200, completion_body(result))
    events = stream_events(result)
    drop_after = None
    if isinstance(item, Drop):
        drop_after = max(0, min(item.after_chunks, len(events) - 1))
    return Response(
        200,
        None,
        {},
        SSE_TYPE,
        events=events,
        drop_after=drop_after,
        pauses=first_text_pause(reply),
    )
