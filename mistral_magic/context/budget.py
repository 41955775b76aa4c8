"""Token counts of requests and packing context to a token budget.

Counting
--------
Which tokenizer counts a model, exact or estimated, is :mod:`tokenizers`' business. A whole
request is counted by mistral-common's own encoder for the bundled tokenizers it loads (v1, v2,
v7, Tekken); for v3 (Mistral Large 2407), whose SentencePiece file is loaded without importing
mistral-common, this module reimplements the chat layout of ``InstructTokenizerV3`` +
``InstructRequestNormalizer`` (mistral-common 1.13):

* ``<s>``, then per message, after merging consecutive messages of the same role
  (contents joined with a blank line; system messages are removed from the list but still
  split runs) and inserting an empty user message first if the conversation does not start
  with one:
* user: ``[INST] text [/INST]``; the last user message gets all system prompts
  (joined with a blank line) prepended as ``system\\n\\nuser``, and, if tools are given,
  ``[AVAILABLE_TOOLS] json [/AVAILABLE_TOOLS]`` right before its ``[INST]``;
* assistant: ``text.rstrip(" ") </s>``, or ``[TOOL_CALLS] json </s>`` where the JSON is a list
  of ``{"name", "arguments" (parsed JSON), "id"}``; no ``</s>`` when ``prefix`` is true;
* tool: ``[TOOL_RESULTS] {"content": parsed JSON or text, "call_id": …} [/TOOL_RESULTS]``.

JSON is ``json.dumps(..., ensure_ascii=False)`` with default separators; every segment is
encoded separately (so each gets SentencePiece's leading-space piece) and every control token
counts 1. Tests compare against ``MistralTokenizer.v3().encode_chat_completion`` token counts.

Models without a bundled tokenizer (``mistral-large-latest`` among them) get estimates: other
Mistral ids are counted with v3 in its layout, names that are not Mistral models (or when
the tokenizer cannot be loaded) by characters (``ceil(chars / 3.2)`` per text, plus 4 tokens per
message and 1 for the start of the request; tools from their JSON); either is multiplied by the
model's calibration factor (:func:`tokenizers.record_prompt_tokens`).

Packing
-------
:func:`pack` walks items by priority and includes each that fits; a big item that does not
fit is cut to the remaining budget (at a line boundary, ending with ``[… truncated]``) if at
least :data:`MIN_TRUNCATED_TOKENS` remain and its kind is worth a partial view (named, error,
dataframe, cell); otherwise it is omitted, and smaller later items may still fit. Item costs are
the token counts of exactly what :func:`render_context` emits for the item.

Bounds without a tokenizer
--------------------------
Loading a tokenizer costs ~25 ms of CPU (the first question after ``%load_ext`` would pay it,
issue #12), and most questions fit their budget by far. No token of the bundled vocabularies
covers less than one UTF-8 byte (SentencePiece falls back to bytes, Tekken is byte-level BPE),
and SentencePiece adds at most one more (its leading-space piece): a text has at most its
UTF-8 length + 1 tokens (:func:`tokens_at_most`; estimates the same times the model's
calibration factor). When that bound fits, :func:`pack` includes everything without counting
(what it would have done after counting), and :attr:`Packed.tokens` is counted when read.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

from mistral_magic.context import tokenizers
from mistral_magic.context.items import (
    KIND_CELL,
    KIND_DATAFRAME,
    KIND_ERROR,
    KIND_NAMED,
    ORIGIN_NOTEBOOK,
    ContextItem,
)
from mistral_magic.context.tokenizers import (  # noqa: F401  (the counting API, from here too)
    ESTIMATE_CHARS_PER_TOKEN,
    format_token_count,
    is_exact,
    is_mistral_model,
    record_prompt_tokens,
    warm_up,
)

CONTEXT_WINDOW = 131072

ESTIMATE_TOKENS_PER_MESSAGE = 4

#: A cut item must have at least this many tokens of room, or it is left out instead.
MIN_TRUNCATED_TOKENS = 100
TRUNCATION_MARKER = "[… truncated]"
TRUNCATABLE_KINDS = frozenset({KIND_NAMED, KIND_ERROR, KIND_DATAFRAME, KIND_CELL})

#: The context block's first line says where its items come from (their ``origin``): the live
#: kernel (the magics, the chat panel), the notebook document as open in the editor (the
#: sidebar's cells), or both (the sidebar with the kernel's variables).
CONTEXT_HEADER = (
    "Notebook context (from the user's live Jupyter kernel; most relevant first; "
    "secrets are shown as [REDACTED]):"
)
NOTEBOOK_CONTEXT_HEADER = (
    "Notebook context (from the notebook document open in the editor, outputs as last shown; "
    "most relevant first; secrets are shown as [REDACTED]):"
)
MIXED_CONTEXT_HEADER = (
    "Notebook context (from the notebook document open in the editor, outputs as last shown; "
    "variables from the user's live Jupyter kernel; most relevant first; secrets are shown "
    "as [REDACTED]):"
)

_CACHEABLE_TEXT_CHARS = 32_000


# --------------------------------------------------------------------------------------------
# Texts


def tokenizer_available() -> bool:
    """Whether exact v3 counting is possible (sentencepiece and the model file are present)."""
    return tokenizers.available(tokenizers.V3)


def _counter(model: str) -> tuple[tokenizers.Tokenizer | None, bool]:
    """The tokenizer that counts ``model`` and whether its counts are exact."""
    exact = tokenizers.exact_tokenizer(model)
    if exact is not None:
        return exact, True
    return tokenizers.estimate_tokenizer(model), False


def _estimate(text: str) -> int:
    return math.ceil(len(text) / ESTIMATE_CHARS_PER_TOKEN) if text else 0


@lru_cache(maxsize=8192)
def _cached_count(file: str, text: str) -> int:
    tokenizer = tokenizers.load(file)
    assert tokenizer is not None
    return tokenizer.count(text)


def _raw_count(tokenizer: tokenizers.Tokenizer, text: str) -> int:
    if len(text) <= _CACHEABLE_TEXT_CHARS:
        return _cached_count(tokenizer.file, text)
    return tokenizer.count(text)


def count_tokens(text: str, model: str) -> int:
    """Tokens of ``text`` on its own (no special tokens): exact for the models of
    :data:`tokenizers.MODEL_TOKENIZERS`, a calibrated estimate for others."""
    tokenizer, exact = _counter(model)
    base = _raw_count(tokenizer, text) if tokenizer is not None else _estimate(text)
    return base if exact else tokenizers.calibrated(base, model)


def tokens_at_most(text: str, model: str) -> int:
    """An upper bound on :func:`count_tokens` that loads no tokenizer (module docstring:
    *Bounds without a tokenizer*; the tests check it against every bundled tokenizer). Text
    is measured as it is counted: lone surrogates as their ``\\udcNN`` escapes."""
    return tokenizers.calibrated(len(text.encode("utf-8", "backslashreplace")) + 1, model)


#: A message's special tokens ([INST] … [/INST], [SYSTEM_PROMPT] …, </s>), what joins its
#: parts ("\n\n" before the question in v3) and the leading-space piece of each part fit in
#: this many tokens beyond the UTF-8 length of its text (checked by the tests).
_BOUND_TOKENS_PER_MESSAGE = 8


def request_tokens_at_most(messages: Sequence[dict[str, Any]], model: str) -> int | None:
    """An upper bound on :func:`count_request_tokens` for plain text messages without tools,
    loading no tokenizer; None for anything else (images, tool calls)."""
    total = 1  # <s>
    for message in messages:
        content = message.get("content")
        if not isinstance(content, str) or set(message) - {"role", "content"}:
            return None
        total += _BOUND_TOKENS_PER_MESSAGE + len(content.encode("utf-8", "backslashreplace"))
    return tokenizers.calibrated(total, model)


def _min_tokens(text: str, model: str) -> int:
    """A cheap lower bound on count_tokens(text, model), without tokenizing."""
    tokenizer, exact = _counter(model)
    if tokenizer is None:
        return count_tokens(text, model)  # the estimate is cheap already
    if not tokenizer.max_chars_per_token:
        return 0
    bound = math.ceil(len(text) / tokenizer.max_chars_per_token)
    return bound if exact else math.floor(bound * tokenizers.calibration_factor(model))


# --------------------------------------------------------------------------------------------
# Whole requests in the v3 chat layout.


def _content_texts(content: Any) -> list[str]:
    """Non-empty text pieces of a message content (a string or a list of chunks)."""
    if isinstance(content, str):
        return [content] if content else []
    texts: list[str] = []
    if isinstance(content, list):
        for chunk in content:
            if isinstance(chunk, dict) and chunk.get("type", "text") == "text":
                text = chunk.get("text")
                if isinstance(text, str) and text:
                    texts.append(text)
            elif isinstance(chunk, str) and chunk:
                texts.append(chunk)
    return texts


def _joined(contents: Sequence[Any]) -> str:
    return "\n\n".join(text for content in contents for text in _content_texts(content))


def _parsed_json_or_text(text: str) -> Any:
    if not text:
        return {}
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return text


def _tool_call_payload(tool_call: dict[str, Any]) -> dict[str, Any]:
    function = tool_call.get("function") or {}
    arguments = function.get("arguments")
    if isinstance(arguments, dict):
        arguments = json.dumps(arguments)
    elif arguments is None:
        arguments = "{}"
    payload: dict[str, Any] = {
        "name": function.get("name", ""),
        "arguments": _parsed_json_or_text(str(arguments)),
    }
    call_id = tool_call.get("id")
    if call_id and call_id != "null":
        payload["id"] = call_id
    return payload


def _tools_payload(tools: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    payload = []
    for tool in tools:
        function = tool.get("function") or {}
        payload.append(
            {
                "type": tool.get("type", "function"),
                "function": {
                    "name": function.get("name", ""),
                    "description": function.get("description") or "",
                    "parameters": function.get("parameters") or {},
                },
            }
        )
    return payload


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


@dataclass
class _Turn:
    role: str
    contents: list[Any] = field(default_factory=list)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    prefix: bool = False
    tool_call_id: str | None = None


def _merge_turns(messages: Sequence[dict[str, Any]]) -> tuple[list[_Turn], str | None]:
    """Normalize like mistral-common: system prompts out, same-role runs merged."""
    system_parts: list[str] = []
    turns: list[_Turn] = []
    previous_role: str | None = None
    for message in messages:
        role = message.get("role", "user")
        content = message.get("content")
        if role == "system":
            if content:
                system_parts.append(_joined([content]))
        elif role == "tool":
            turns.append(_Turn("tool", [content], tool_call_id=message.get("tool_call_id")))
        elif role in ("user", "assistant"):
            if previous_role != role:
                turns.append(_Turn(role))
            turn = turns[-1]
            turn.contents.append(content)
            turn.tool_calls.extend(message.get("tool_calls") or [])
            turn.prefix = turn.prefix or bool(message.get("prefix"))
        previous_role = role
    if not turns or turns[0].role != "user":
        turns.insert(0, _Turn("user"))
    system_prompt = "\n\n".join(system_parts) if system_parts else None
    return turns, system_prompt


def _v3_request_tokens(
    tokenizer: tokenizers.Tokenizer,
    messages: Sequence[dict[str, Any]],
    tools: Sequence[dict] | None,
) -> int:
    turns, system_prompt = _merge_turns(messages)
    last_user = max(i for i, turn in enumerate(turns) if turn.role == "user")
    total = 1  # <s>
    for index, turn in enumerate(turns):
        if turn.role == "user":
            text = _joined(turn.contents)
            if index == last_user:
                if tools:
                    total += 2 + _raw_count(tokenizer, _dumps(_tools_payload(tools)))
                if system_prompt:
                    text = system_prompt + "\n\n" + text
            total += 2 + _raw_count(tokenizer, text)  # [INST] … [/INST]
        elif turn.role == "assistant":
            if turn.tool_calls:
                calls = [_tool_call_payload(call) for call in turn.tool_calls]
                total += 1 + _raw_count(tokenizer, _dumps(calls))  # [TOOL_CALLS] …
            else:
                total += _raw_count(tokenizer, _joined(turn.contents).rstrip(" "))
            if not turn.prefix:
                total += 1  # </s>
        else:  # tool
            result = {
                "content": _parsed_json_or_text(_joined(turn.contents)),
                "call_id": turn.tool_call_id or "null",
            }
            total += 2 + _raw_count(tokenizer, _dumps(result))  # [TOOL_RESULTS] … [/TOOL_RESULTS]
    return total


def _estimated_request_tokens(
    messages: Sequence[dict[str, Any]], tools: Sequence[dict] | None
) -> int:
    total = 1
    for message in messages:
        total += ESTIMATE_TOKENS_PER_MESSAGE + _estimate(_joined([message.get("content")]))
        if message.get("tool_calls"):
            total += _estimate(_dumps(message["tool_calls"]))
    if tools:
        total += 2 + _estimate(_dumps(list(tools)))
    return total


def count_request_tokens(messages: list[dict], model: str, tools: list[dict] | None = None) -> int:
    """Prompt tokens of a chat request given in Mistral API shape (see module docstring):
    exact for the models of :data:`tokenizers.MODEL_TOKENIZERS`, a calibrated estimate else.

    ``messages``: ``{"role", "content", "tool_calls", "tool_call_id", "name", "prefix"}`` dicts;
    content may be a string, None, or a list of ``{"type": "text", "text": …}`` chunks.
    ``tools``: ``{"type": "function", "function": {"name", "description", "parameters"}}``.
    """
    tokenizer, exact = _counter(model)
    if tokenizer is None:
        return tokenizers.calibrated(_estimated_request_tokens(messages, tools), model)
    counted = tokenizer.count_request(messages, tools) if exact else None
    if counted is None:
        counted = _v3_request_tokens(tokenizer, messages, tools)
    return counted if exact else tokenizers.calibrated(counted, model)


# --------------------------------------------------------------------------------------------
# Rendering and packing.


def render_item(item: ContextItem) -> str:
    """One item as it appears in the context block: a heading line, then its text."""
    return f"### {item.label}\n{item.text}"


def context_header(items: Sequence[ContextItem]) -> str:
    """The block's first line, for where ``items`` come from."""
    origins = {item.origin for item in items}
    if ORIGIN_NOTEBOOK not in origins:
        return CONTEXT_HEADER
    return NOTEBOOK_CONTEXT_HEADER if origins == {ORIGIN_NOTEBOOK} else MIXED_CONTEXT_HEADER


def render_context(items: Sequence[ContextItem]) -> str:
    """The context block for the system message ("" when there is nothing to show)."""
    if not items:
        return ""
    return context_header(items) + "\n\n" + "\n\n".join(render_item(item) for item in items)


@dataclass
class Packed:
    included: list[ContextItem]
    omitted: list[ContextItem]
    #: Tokens of render_context(included), counted per part; None until read when pack()
    #: included everything by the bound (:attr:`tokens` counts then, with ``count``).
    counted: int | None
    budget: int = 0
    truncated: list[str] = field(default_factory=list)  # keys of included items that were cut
    count: Callable[[], int] | None = field(default=None, repr=False, compare=False)

    @property
    def tokens(self) -> int:
        if self.counted is None:
            assert self.count is not None
            self.counted = self.count()
        return self.counted


def _item_cost(item: ContextItem, model: str) -> int:
    # Items are joined by a blank line; count it with the item.
    return count_tokens(render_item(item) + "\n\n", model)


def _cut_to_fit(
    item: ContextItem, room: int, model: str, full_cost: int | None
) -> ContextItem | None:
    """The longest line-aligned head of ``item`` (plus a marker) costing at most ``room``."""
    text = item.text
    chars_per_token = len(text) / full_cost if full_cost else ESTIMATE_CHARS_PER_TOKEN
    target_tokens = room - count_tokens(f"### {item.label}\n\n{TRUNCATION_MARKER}\n\n", model)
    for _ in range(8):
        if target_tokens <= 0:
            return None
        keep = int(target_tokens * chars_per_token * 0.97)
        if keep <= 0:
            return None
        head = text[:keep]
        newline = head.rfind("\n")
        if newline > keep // 2:
            head = head[:newline]
        candidate = replace(item, text=f"{head.rstrip()}\n{TRUNCATION_MARKER}")
        cost = _item_cost(candidate, model)
        if cost <= room:
            return candidate
        chars_per_token *= room / cost * 0.95
    return None


def pack(items: Sequence[ContextItem], budget: int, *, model: str) -> Packed:
    """Greedy by priority: include what fits, cut a big item to fit, omit the rest."""
    whole = pack_whole(items, budget, model=model)
    if whole is not None:
        return whole
    ordered = sorted(items, key=lambda item: item.priority)
    # the header of all candidates: what is included comes from the same origins or fewer,
    # whose header is no longer (tests check the token counts)
    header_tokens = count_tokens(context_header(ordered) + "\n\n", model)
    used = header_tokens
    included: list[ContextItem] = []
    omitted: list[ContextItem] = []
    truncated: list[str] = []
    for item in ordered:
        room = budget - used
        rendered = render_item(item) + "\n\n"
        full_cost: int | None = None
        if _min_tokens(rendered, model) <= room:
            full_cost = count_tokens(rendered, model)
            if full_cost <= room:
                included.append(item)
                used += full_cost
                continue
        cut = None
        if item.kind in TRUNCATABLE_KINDS and room >= MIN_TRUNCATED_TOKENS:
            cut = _cut_to_fit(item, room, model, full_cost)
        if cut is None:
            omitted.append(item)
            continue
        included.append(cut)
        truncated.append(item.key)
        used += _item_cost(cut, model)
    tokens = used if included else 0
    return Packed(included, omitted, tokens, budget=budget, truncated=truncated)


def pack_whole(items: Sequence[ContextItem], budget: int, *, model: str) -> Packed | None:
    """What :func:`pack` returns when the bound of every item (:func:`tokens_at_most`) fits
    ``budget``: all of them, in the same order, counted only when :attr:`Packed.tokens` is
    read; None when the bound does not fit (then only counting can tell)."""
    ordered = sorted(items, key=lambda item: item.priority)
    if not ordered:
        return None
    bound = tokens_at_most(context_header(ordered) + "\n\n", model)
    for item in ordered:
        bound += tokens_at_most(render_item(item) + "\n\n", model)
        if bound > budget:
            return None
    return Packed(ordered, [], None, budget=budget, count=lambda: _all_tokens(ordered, model))


def _all_tokens(ordered: Sequence[ContextItem], model: str) -> int:
    """What :func:`pack` counts when every item is included whole."""
    header = count_tokens(context_header(ordered) + "\n\n", model)
    return header + sum(_item_cost(item, model) for item in ordered)


def _short_name(item: ContextItem) -> str:
    if item.key.startswith("var:"):
        return item.key[4:]
    if item.kind == KIND_ERROR:
        return "the last error"
    return item.label  # cells: In[7], cell #12, markdown #3


def _listing(items: Sequence[ContextItem] | Sequence[str], limit: int = 8) -> str:
    names = [name if isinstance(name, str) else _short_name(name) for name in items]
    shown = ", ".join(names[:limit])
    if len(names) > limit:
        shown += f" and {len(names) - limit} more"
    return shown


def omitted_note(packed: Packed) -> str:
    """A short note for the user about what did not fit ("" if everything did)."""
    if not packed.omitted and not packed.truncated:
        return ""
    budget = f"the {packed.budget:,}-token budget" if packed.budget else "the token budget"
    parts = []
    if packed.omitted:
        parts.append(f"Left out to fit {budget}: {_listing(packed.omitted)}")
    if packed.truncated:
        by_key = {item.key: item for item in packed.included}
        cut = [_short_name(by_key[key]) for key in packed.truncated if key in by_key]
        verb = "Shortened" if not packed.omitted else "shortened"
        parts.append(f"{verb}{'' if packed.omitted else f' to fit {budget}'}: {_listing(cut)}")
    return "; ".join(parts) + "."
