"""Turning a ``Reply`` into a completion body or an SSE event list, shaped like the captures.

``plan()`` decides what each choice says (default text, JSON mode, forced tool calls,
``prefix`` echo, ``max_tokens`` cut, token counts); ``completion_body()`` and
``stream_events()`` render that plan in the chosen dialect.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from tests.stub.errors import dumps
from tests.stub.jsonexample import example
from tests.stub.schema import as_bool, as_int
from tests.stub.script import Reply, ToolCallSpec, new_tool_call_id
from tests.stub.tokens import Piece, count_tokens, split_tokens
from tests.stub.validate import max_tokens_of, text_of

DONE = "data: [DONE]\n\n"


@dataclass
class PlannedCall:
    id: str
    name: str
    arguments: list[Piece]

    @property
    def arguments_text(self) -> str:
        return "".join(p for p, _ in self.arguments)


@dataclass
class ChoicePlan:
    index: int
    prefix: str
    thinking: list[Piece]
    text: list[Piece]
    tool_calls: list[PlannedCall]
    finish_reason: str
    completion_tokens: int

    @property
    def full_text(self) -> str:
        return self.prefix + "".join(p for p, _ in self.text)

    @property
    def thinking_text(self) -> str:
        return "".join(p for p, _ in self.thinking)


@dataclass
class Plan:
    model: Any
    choices: list[ChoicePlan]
    usage: dict[str, Any]
    dialect: str
    id: str = ""
    created: int = field(default_factory=lambda: int(time.time()))

    def __post_init__(self) -> None:
        if not self.id:
            self.id = f"chatcmpl-{uuid.uuid4().hex}" if self.dialect == "vllm" else uuid.uuid4().hex


# ------------------------------------------------------------------------------ planning


def default_text(body: dict[str, Any], default: str) -> str:
    """The stub's default reply, valid JSON in JSON mode."""
    response_format = body.get("response_format") or {}
    kind = response_format.get("type")
    if kind == "json_schema" and response_format.get("json_schema"):
        return json.dumps(example(response_format["json_schema"].get("schema")))
    if kind in ("json_object", "json_schema"):
        try:
            json.loads(default)
        except ValueError:
            return json.dumps({"reply": default})
        return default
    return default


def default_reply(body: dict[str, Any], default: str) -> Reply:
    """What the model does when nothing is queued: a forced tool call, or the default text."""
    tools = body.get("tools") or []
    choice = body.get("tool_choice")
    forced: str | None = None
    if tools and choice in ("any", "required"):
        forced = tools[0]["function"]["name"]
    elif tools and isinstance(choice, dict):
        forced = choice["function"]["name"]
    if forced is None:
        return Reply(text=default_text(body, default))
    function = next((t["function"] for t in tools if t["function"]["name"] == forced), {})
    arguments = example(function.get("parameters") or {"type": "object"})
    return Reply(
        tool_calls=[ToolCallSpec(forced, arguments if isinstance(arguments, dict) else {})]
    )


def _take(pieces: list[Piece], budget: int | None) -> tuple[list[Piece], int, bool]:
    """Pieces that fit in ``budget`` tokens, the tokens used, and whether it cut."""
    taken: list[Piece] = []
    used = 0
    for text, cost in pieces:
        if budget is None or used + cost <= budget:
            taken.append((text, cost))
            used += cost
            continue
        finer = split_tokens(text)
        if len(finer) > 1:
            sub, sub_used, _ = _take(finer, budget - used)
            taken.extend(sub)
            used += sub_used
        return taken, used, True
    return taken, used, False


def _prefix(body: dict[str, Any], dialect: str) -> str:
    last = body["messages"][-1]
    if last.get("role") != "assistant" or not as_bool(last.get("prefix")):
        return ""
    return text_of(last.get("content"))


def _plan_choice(
    index: int, reply: Reply, body: dict[str, Any], dialect: str, default: str
) -> ChoicePlan:
    budget = max_tokens_of(body, dialect)
    used = 0
    cut = False

    def remaining() -> int | None:
        return None if budget is None else max(budget - used, 0)

    thinking: list[Piece] = []
    if reply.thinking:
        thinking, spent, cut = _take(split_tokens(reply.thinking), remaining())
        used += spent
    text_value = reply.text if reply.text is not None else ("" if reply.tool_calls else default)
    if reply.chunks is not None:
        pieces = [(c, count_tokens(c)) for c in reply.chunks]
    else:
        pieces = split_tokens(text_value)
    text: list[Piece] = []
    if not cut:
        text, spent, cut = _take(pieces, remaining())
        used += spent
    calls: list[PlannedCall] = []
    for spec in reply.tool_calls:
        if cut:
            break
        overhead = 1 + count_tokens(spec.name)
        left = remaining()
        arguments, spent, cut = _take(
            split_tokens(spec.arguments_json), None if left is None else max(left - overhead, 0)
        )
        cut = cut or (left is not None and overhead > left)
        used += spent + (overhead if left is None else min(overhead, left))
        call_id = spec.id if index == 0 and spec.id else new_tool_call_id()
        calls.append(PlannedCall(call_id, spec.name, arguments))
    if reply.finish_reason is not None:
        finish = reply.finish_reason
    else:
        finish = "length" if cut else ("tool_calls" if calls else "stop")
    return ChoicePlan(
        index=index,
        prefix=_prefix(body, dialect),
        thinking=thinking,
        text=text,
        tool_calls=calls,
        finish_reason=finish,
        completion_tokens=used + (0 if cut else 1),  # the EOS token of a natural stop
    )


def plan(
    reply: Reply | None, body: dict[str, Any], dialect: str, prompt_tokens: int, default: str
) -> Plan:
    """Everything the response will say, for ``n`` choices."""
    reply = reply if reply is not None else default_reply(body, default)
    text = default_text(body, default)
    n = max(as_int(body.get("n")) or 1, 1)
    choices = [_plan_choice(i, reply, body, dialect, text) for i in range(n)]
    completion = sum(c.completion_tokens for c in choices)
    if reply.usage is not None:
        usage = dict(reply.usage)
    else:
        usage = {
            "prompt_tokens": prompt_tokens,
            "total_tokens": prompt_tokens + completion,
            "completion_tokens": completion,
        }
        if dialect == "vllm":
            usage["prompt_tokens_details"] = None
    return Plan(model=body.get("model"), choices=choices, usage=usage, dialect=dialect)


# ----------------------------------------------------------------------------- rendering


def _mistral_calls(choice: ChoicePlan) -> list[dict[str, Any]]:
    return [
        {
            "id": call.id,
            "type": "function",
            "function": {"name": call.name, "arguments": call.arguments_text},
            "index": k,
        }
        for k, call in enumerate(choice.tool_calls)
    ]


def _mistral_content(choice: ChoicePlan) -> Any:
    if not choice.thinking:
        return choice.full_text
    return [
        {
            "type": "thinking",
            "thinking": [{"type": "text", "text": choice.thinking_text}],
            "closed": True,
        },
        {"type": "text", "text": choice.full_text},
    ]


def completion_body(p: Plan) -> dict[str, Any]:
    """The non-stream JSON body (key order as on the wire)."""
    if p.dialect == "vllm":
        return _vllm_body(p)
    choices = [
        {
            "index": c.index,
            "message": {
                "role": "assistant",
                "content": _mistral_content(c),
                "tool_calls": _mistral_calls(c) or None,
            },
            "finish_reason": c.finish_reason,
        }
        for c in p.choices
    ]
    return {
        "id": p.id,
        "object": "chat.completion",
        "created": p.created,
        "model": p.model,
        "choices": choices,
        "usage": p.usage,
    }


def _vllm_body(p: Plan) -> dict[str, Any]:
    choices = []
    for c in p.choices:
        calls = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments_text},
            }
            for call in c.tool_calls
        ]
        message = {
            "role": "assistant",
            "content": c.full_text if (c.full_text or not calls) else None,
            "refusal": None,
            "annotations": None,
            "audio": None,
            "function_call": None,
            "tool_calls": calls,
            "reasoning_content": c.thinking_text or None,
        }
        choices.append(
            {
                "index": c.index,
                "message": message,
                "logprobs": None,
                "finish_reason": c.finish_reason,
                "stop_reason": None,
            }
        )
    return {
        "id": p.id,
        "object": "chat.completion",
        "created": p.created,
        "model": p.model,
        "choices": choices,
        "service_tier": None,
        "system_fingerprint": None,
        "usage": p.usage,
        "prompt_logprobs": None,
        "kv_transfer_params": None,
    }


def _mistral_deltas(c: ChoicePlan) -> list[dict[str, Any]]:
    deltas: list[dict[str, Any]] = []
    if c.thinking:
        # As magistral streams it: an empty string, thinking fragments, an empty closer.
        deltas.append({"content": ""})
        for piece, _ in c.thinking:
            item = {"type": "thinking", "thinking": [{"type": "text", "text": piece}]}
            deltas.append({"content": [item]})
        deltas.append({"content": [{"type": "thinking", "thinking": []}]})
    if c.prefix:
        deltas.append({"content": c.prefix})
    deltas.extend({"content": piece} for piece, _ in c.text)
    if c.tool_calls:
        deltas.append({"tool_calls": _mistral_calls(c)})  # whole calls, one delta
    if not (c.prefix or c.text or c.tool_calls):
        deltas.append({"content": ""})
    return deltas


def _vllm_deltas(c: ChoicePlan) -> list[dict[str, Any]]:
    deltas: list[dict[str, Any]] = [{"reasoning_content": piece} for piece, _ in c.thinking]
    if c.prefix:
        deltas.append({"content": c.prefix})
    deltas.extend({"content": piece} for piece, _ in c.text)
    for k, call in enumerate(c.tool_calls):
        head = {"index": k, "id": call.id, "type": "function"}
        deltas.append({"tool_calls": [{**head, "function": {"name": call.name, "arguments": ""}}]})
        for piece, _ in call.arguments:
            deltas.append({"tool_calls": [{"index": k, "function": {"arguments": piece}}]})
    if not (c.prefix or c.text or c.tool_calls):
        deltas.append({"content": ""})
    return deltas


def stream_events(p: Plan, include_usage: bool = False) -> list[str]:
    """Every SSE event of the stream, ``[DONE]`` included, each ``data: ...\\n\\n``."""
    vllm = p.dialect == "vllm"

    def chunk(choice: dict[str, Any], usage: dict[str, Any] | None = None) -> dict[str, Any]:
        body = {
            "id": p.id,
            "object": "chat.completion.chunk",
            "created": p.created,
            "model": p.model,
            "choices": [choice],
        }
        if usage is not None:
            body["usage"] = usage
        return body

    def choice(index: int, delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
        if not vllm:
            return {"index": index, "delta": delta, "finish_reason": finish}
        entry = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
        if finish is not None:
            entry["stop_reason"] = None
        return entry

    chunks = [chunk(choice(c.index, {"role": "assistant", "content": ""}, None)) for c in p.choices]
    queues = [(_vllm_deltas(c) if vllm else _mistral_deltas(c), c) for c in p.choices]
    longest = max(len(q) for q, _ in queues)
    for step in range(longest):
        for deltas, c in queues:
            if step < len(deltas):
                finish = c.finish_reason if step == len(deltas) - 1 else None
                chunks.append(chunk(choice(c.index, deltas[step], finish)))
    if vllm:
        if include_usage:
            usage_chunk = chunk(choice(0, {}, None), p.usage)
            usage_chunk["choices"] = []
            chunks.append(usage_chunk)
    else:
        chunks[-1]["usage"] = p.usage
    return [f"data: {dumps(c)}\n\n" for c in chunks] + [DONE]


def first_text_pause(reply: Reply | None) -> dict[int, float]:
    """``Response.pauses`` for ``reply.pause_after_first``: the stream's event 0 is the role
    chunk, event 1 the first text; the wait comes before event 2."""
    if reply is None or not reply.pause_after_first:
        return {}
    return {2: reply.pause_after_first}
