"""Where a reply came from: its provenance, and the session's log of answers.

Every reply carries a provenance record (:func:`provenance`): model, dialect, parameters,
request id, the server's token usage, the estimated cost, the context items sent (labels
only), the SHA-256 of the exact request body as POSTed, the question (redacted, short) and a
timestamp. The magic saves it in its output's metadata, an inserted cell in its own
(``metadata["mistral"]``, :data:`METADATA_KEY`). Nothing secret goes in: the body's hash,
never the body; labels, never the context.

:class:`AnswerLog` keeps the session's recent answers in memory (bounded): ``%mistral audit``
reads it for code offered in this session, ``%mistral replay N`` the exact request behind
output N (the body is kept here, never in the notebook).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..api.request import body_sha256, encode_body

if TYPE_CHECKING:
    from ..api.types import Completion
    from ..prices import Price
    from .prepare import PreparedRequest

#: The metadata key of an output or a cell that holds a provenance record.
METADATA_KEY = "mistral"
VERSION = 1
#: Answers whose request the session keeps for ``%mistral replay`` (the oldest go first).
REMEMBERED_ANSWERS = 64
# Parameters worth recording (never messages, never tool schemas: only the tools' names).
_PARAMETERS = (
    "temperature",
    "top_p",
    "max_tokens",
    "random_seed",
    "seed",
    "response_format",
    "tool_choice",
    "reasoning_effort",
)

FACE_MAGIC = "magic"
FACE_PANEL = "chat panel"
FACE_BUTTONS = "error buttons"
FACE_SIDEBAR = "sidebar"


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def code_hash(code: str) -> str:
    """The hash an inserted cell's source is compared by (edited since insertion?): of the
    source with line endings made ``\\n`` and trailing blank space dropped, as front ends
    keep it."""
    return sha256_text(code.replace("\r\n", "\n").rstrip())


def request_sha256(prepared: PreparedRequest) -> str:
    """The SHA-256 of ``prepared``'s body serialized as the client POSTs it (for a reply
    that was not sent: from the cache, or a dry run)."""
    return body_sha256(encode_body(prepared.body))


def server_of(base_url: str) -> str:
    """``scheme://host:port`` of a base URL: no credentials, no path."""
    parts = urlsplit(base_url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}" if host else ""


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def provenance(
    prepared: PreparedRequest,
    completion: Completion,
    *,
    face: str,
    price: Price | None,
    sent_sha256: str = "",
    cached: bool = False,
    code: str | None = None,
    timestamp: str | None = None,
    asked_in: int | None = None,
) -> dict[str, Any]:
    """The provenance of ``completion``, the reply to ``prepared``. ``sent_sha256`` is the
    hash the client computed of the bytes it POSTed (the first request's, with tools);
    without it (``cached``) the body is serialized the client's way and hashed here.
    ``code``: the code offered as a new cell, by its hash; ``asked_in``: the execution
    count of the cell that asked (the magic's)."""
    model = completion.model or prepared.model
    usage = completion.usage
    record: dict[str, Any] = {
        "version": VERSION,
        "face": face,
        "kind": prepared.kind,
        "question": prepared.asked,
        "model": model,
        "dialect": prepared.target.dialect,
        "server": server_of(prepared.target.base_url),
        "parameters": {k: prepared.params[k] for k in _PARAMETERS if k in prepared.params},
        "request_id": completion.id,
        "usage": None
        if usage is None
        else {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
        },
        "cost_usd": None,
        "price": None,
        "context": context_labels(prepared),
        "body_sha256": sent_sha256 or request_sha256(prepared),
        "reply_sha256": sha256_text(completion.content),
        "finish_reason": completion.finish_reason,
        "cached": cached,
        "timestamp": timestamp or now_iso(),
    }
    if asked_in is not None:
        record["asked_in"] = asked_in
    if model != prepared.model:
        record["requested_model"] = prepared.model
    tools = [t["function"]["name"] for t in prepared.params.get("tools") or ()]
    if tools:
        record["tools"] = tools
        record["tool_calls"] = len(prepared.tool_events)
    if price is not None:
        record["price"] = price.to_json()
        if usage is not None and not cached:
            record["cost_usd"] = round(price.cost(usage.prompt_tokens, usage.completion_tokens), 6)
        elif cached:
            record["cost_usd"] = 0.0
    if code is not None:
        record["code_sha256"] = code_hash(code)
    return record


def context_labels(prepared: PreparedRequest) -> list[str]:
    """What went with the question, by label: instructions, earlier turns, context items."""
    labels = [f"instructions · {source}" for source in prepared.instructions]
    turns = sum(1 for m in prepared.messages if m.get("role") == "assistant")
    if turns:
        labels.append(f"{turns} earlier turn{'s' if turns != 1 else ''}")
    if prepared.packed is not None:
        labels.extend(item.label for item in prepared.packed.included)
    return labels


def for_cell(record: Mapping[str, Any], code: str) -> dict[str, Any]:
    """The provenance an inserted cell keeps: the reply's, with the hash of its source."""
    return {**record, "code_sha256": code_hash(code), "inserted": now_iso()}


# ------------------------------------------------------------------------------------------
# The session's answers


@dataclass
class Answer:
    """One answer of this session: its provenance, and what ``replay`` needs."""

    provenance: dict[str, Any]
    prepared: PreparedRequest  # the exact body and its target, kept in memory only
    execution_count: int | None  # the cell that asked (magic), if any
    codes: list[str] = field(default_factory=list)  # code offered or inserted as new cells


class AnswerLog:
    """The session's recent answers, newest last; thread-safe (the widget faces record from
    their own threads); at most :data:`REMEMBERED_ANSWERS`."""

    def __init__(self, limit: int = REMEMBERED_ANSWERS) -> None:
        self._limit = limit
        self._answers: OrderedDict[int, Answer] = OrderedDict()
        self._next = 0
        self._lock = threading.Lock()

    def add(self, answer: Answer) -> None:
        with self._lock:
            self._answers[self._next] = answer
            self._next += 1
            while len(self._answers) > self._limit:
                self._answers.popitem(last=False)

    def inserted(self, record: Mapping[str, Any], code: str) -> None:
        """Note that ``code`` from the answer with provenance ``record`` went into a cell."""
        with self._lock:
            for answer in self._answers.values():
                if answer.provenance is record and code not in answer.codes:
                    answer.codes.append(code)
                    return

    def all(self) -> list[Answer]:
        with self._lock:
            return list(self._answers.values())

    def for_cell(self, count: int) -> Answer | None:
        """The newest answer asked by cell ``In[count]``."""
        with self._lock:
            answers = list(self._answers.values())
        for answer in reversed(answers):
            if answer.execution_count == count:
                return answer
        return None
