"""Honest token counts and token-sized stream pieces.

Prompt tokens are counted as the real server counts them: with the model's own tokenizer when
``mistral-common`` bundles it (its model table: Large 2407 v3, Large 2411 v7, Nemo and Pixtral
12B Tekken; an alias counts as the model behind it), else with v3 (Mistral Large 2407's
SentencePiece tokenizer, loaded once per process when the first stub starts; the others on
first use). Stream pieces are v3's. Without mistral-common the counts fall back to a word-ish
regex split (one piece = one token) and a character estimate.
"""

from __future__ import annotations

import contextlib
import json
import re
import sys
import threading
from collections.abc import Iterator
from typing import Any

Piece = tuple[str, int]  # (text, tokens it costs)

# Mistral's fixed guardrail prompt that ``safe_prompt: true`` prepends (docs: guardrailing).
SAFE_PROMPT = (
    "Always assist with care, respect, and truth. Respond with utmost utility yet securely. "
    "Avoid harmful, unethical, prejudiced, or negative content. Ensure replies promote "
    "fairness and positivity."
)

_WORDISH = re.compile(r" ?[^\W\d_]+| ?\d{1,3}| ?[^\s\w]+|\s+(?!\S)|\s+")
_lock = threading.Lock()
_state: dict[str, Any] = {"loaded": False, "tokenizer": None}
_by_model: dict[str, Any] = {}  # dated model id -> its own tokenizer, or None for v3


def tokenizer() -> Any | None:
    """The v3 ``MistralTokenizer`` or None if mistral-common cannot provide it."""
    with _lock:
        if not _state["loaded"]:
            try:
                with _without_rfc3987_syntax():
                    from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

                _state["tokenizer"] = MistralTokenizer.v3()
            except Exception:
                _state["tokenizer"] = None
            _state["loaded"] = True
    return _state["tokenizer"]


def tokenizer_for(model: str) -> Any | None:
    """The tokenizer the server counts ``model``'s prompts with: the one mistral-common's
    model table names for the model behind the id (Tekken for Nemo, v7 for Large 2411), else
    v3; None without mistral-common."""
    from tests.stub.models import facts

    dated = facts(model)["ids"][0]
    with _lock:
        if dated not in _by_model:
            try:
                with _without_rfc3987_syntax():
                    from mistral_common.tokens.tokenizers.mistral import (
                        MODEL_NAME_TO_TOKENIZER_CLS,
                    )

                make = MODEL_NAME_TO_TOKENIZER_CLS.get(dated)
                _by_model[dated] = make() if make is not None else None
            except Exception:
                _by_model[dated] = None
    own = _by_model[dated]
    return own if own is not None else tokenizer()


@contextlib.contextmanager
def _without_rfc3987_syntax() -> Iterator[None]:
    """mistral-common imports jsonschema, whose optional ``rfc3987_syntax`` hook builds a
    lark grammar at import (2-5 s here). Hide it while jsonschema is first imported: only
    jsonschema's "iri" format check is lost; ``import rfc3987_syntax`` works again after."""
    if "jsonschema" in sys.modules or "rfc3987_syntax" in sys.modules:
        yield
        return
    sys.modules["rfc3987_syntax"] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        if sys.modules.get("rfc3987_syntax", 0) is None:
            del sys.modules["rfc3987_syntax"]


# ------------------------------------------------------------------------- prompt tokens


def count_prompt_tokens(body: dict[str, Any]) -> int:
    """Prompt tokens of a chat request: ``encode_chat_completion`` with the model's tokenizer
    (:func:`tokenizer_for`), else an estimate."""
    tok = tokenizer_for(str(body.get("model") or ""))
    if tok is not None:
        try:
            return _encode_chat(tok, body)
        except Exception:
            pass
    return _estimate(body)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(c.get("text", "") for c in content if isinstance(c, dict))
    return ""


def _arguments(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _plain_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if body.get("safe_prompt") is True:
        out.append({"role": "system", "content": SAFE_PROMPT})
    for message in body.get("messages") or []:
        role = message.get("role")
        plain: dict[str, Any] = {"role": role, "content": _text(message.get("content"))}
        if role == "assistant":
            calls = message.get("tool_calls") or []
            if calls:
                plain["content"] = None
                plain["tool_calls"] = [
                    {
                        "id": call.get("id", "null"),
                        "function": {
                            "name": call["function"]["name"],
                            "arguments": _arguments(call["function"].get("arguments", "")),
                        },
                    }
                    for call in calls
                ]
            plain["prefix"] = bool(message.get("prefix"))
        elif role == "tool":
            plain["tool_call_id"] = message.get("tool_call_id")
            if message.get("name"):
                plain["name"] = message["name"]
        out.append(plain)
    return out


def _encode_chat(tok: Any, body: dict[str, Any]) -> int:
    from mistral_common.protocol.instruct.request import ChatCompletionRequest

    tools = [
        {
            "type": "function",
            "function": {
                "name": t["function"]["name"],
                "description": t["function"].get("description") or "",
                "parameters": t["function"].get("parameters") or {},
            },
        }
        for t in body.get("tools") or []
    ]
    request: dict[str, Any] = {"messages": _plain_messages(body)}
    if tools:
        request["tools"] = tools
    encoded = tok.encode_chat_completion(ChatCompletionRequest.model_validate(request))
    return len(encoded.tokens)


def _estimate(body: dict[str, Any]) -> int:
    total = 1
    for message in _plain_messages(body):
        total += 4 + len(message.get("content") or "") // 4
        for call in message.get("tool_calls") or []:
            total += 8 + len(call["function"]["arguments"]) // 4
    total += len(json.dumps(body.get("tools") or [])) // 4
    return total


# ------------------------------------------------------------------- completion pieces


def split_tokens(text: str) -> list[Piece]:
    """``text`` as stream pieces of about one token each (real token boundaries if possible).

    Multi-byte characters spelled with byte tokens stay whole, costing several tokens,
    as on the wire. The pieces always join back to ``text``.
    """
    if not text:
        return []
    tok = tokenizer()
    if tok is not None:
        try:
            pieces = _sentencepiece_pieces(tok, text)
            if "".join(p for p, _ in pieces) == text:
                return pieces
        except Exception:
            pass
    return [(p, 1) for p in _WORDISH.findall(text)]


def count_tokens(text: str) -> int:
    return sum(n for _, n in split_tokens(text))


def _sentencepiece_pieces(tok: Any, text: str) -> list[Piece]:
    sp = tok.instruct_tokenizer.tokenizer
    model = sp._model  # the sentencepiece.SentencePieceProcessor
    pieces: list[Piece] = []
    pending = bytearray()
    pending_count = 0
    for token_id in sp.encode(text, bos=False, eos=False):
        if model.is_byte(token_id):
            pending.append(int(model.id_to_piece(token_id)[3:5], 16))
            pending_count += 1
            try:
                decoded = pending.decode("utf-8")
            except UnicodeDecodeError:
                continue
            pieces.append((decoded, pending_count))
            pending.clear()
            pending_count = 0
            continue
        if pending:
            pieces.append((pending.decode("utf-8", "replace"), pending_count))
            pending.clear()
            pending_count = 0
        pieces.append((model.id_to_piece(token_id).replace("\u2581", " "), 1))
    if pending:
        pieces.append((pending.decode("utf-8", "replace"), pending_count))
    if pieces and not text.startswith(" ") and pieces[0][0].startswith(" "):
        first, count = pieces[0]
        pieces[0] = (first[1:], count)  # SentencePiece's dummy-prefix space
        if not pieces[0][0]:
            pieces.pop(0)
            if pieces:
                pieces[0] = (pieces[0][0], pieces[0][1] + count)
    return pieces
