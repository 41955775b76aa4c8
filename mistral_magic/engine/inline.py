"""Inline completion: what goes into a request for ghost text at the cursor of a notebook
cell, and what comes out of it.

Two ways to ask (the request itself is built by :mod:`mistral_magic.engine.prepare`):

* **fill-in-the-middle** (Codestral, ``POST /fim/completions``): ``prompt`` is the code of the
  earlier cells, then the current cell up to the cursor; ``suffix`` is the rest of the cell,
  then the following cells. The kernel's scope goes first, as comments. The answer is the
  middle, inserted as it streams.
* **chat** (any chat model): a compact prompt with the code around a ``<CURSOR>`` mark and
  the rule "answer with the inserted code only"; :class:`InsertionCut` turns the streamed
  answer into the insertion (no fences, no echo of the line typed so far, no repeat of what
  follows the cursor).

Everything sent is redacted first, then clipped (a secret is never cut in two): the nearest
code is kept, within ``Mistral.inline_prefix_chars`` before the cursor and
``Mistral.inline_suffix_chars`` after it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from ..api.models import Capabilities
    from ..config import Mistral
    from ..context.redact import Redactor

CURSOR = "<CURSOR>"
# Cells of the notebook, joined as one file (the "percent" cell marker of jupytext/VS Code).
CELL_SEPARATOR = "\n\n# %%\n"
# Room for the kernel's scope at the top of the code, in characters.
SCOPE_CHARS = 1500
NAMES_CHARS = 600
#: More tokens for a chat model that reasons (asked not to): room to think, then answer.
THINKING_ROOM = 512
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_FENCES = ("```", "~~~")


@dataclass(frozen=True)
class InlineContext:
    """Where the cursor is: the cell's code around it, the other code cells, and what the
    kernel has in scope (labels of names; per data frame, its columns and dtypes)."""

    prefix: str
    suffix: str = ""
    before: Sequence[str] = ()
    after: Sequence[str] = ()
    names: Sequence[str] = ()
    frames: Mapping[str, str] = field(default_factory=dict)

    @property
    def line_prefix(self) -> str:
        """The current line up to the cursor."""
        return self.prefix.rsplit("\n", 1)[-1]

    @property
    def suffix_head(self) -> str:
        """The rest of the current line after the cursor."""
        return self.suffix.split("\n", 1)[0]


def referenced_frames(ctx: InlineContext) -> list[str]:
    """The data frames the current cell names, in the order it names them first."""
    if not ctx.frames:
        return []
    seen: list[str] = []
    for name in _IDENTIFIER.findall(ctx.prefix + "\n" + ctx.suffix):
        if name in ctx.frames and name not in seen:
            seen.append(name)
    return seen


def scope_lines(ctx: InlineContext) -> list[str]:
    """The kernel's scope as short lines: the frames the cell refers to (columns and dtypes),
    then the other names, within :data:`SCOPE_CHARS`."""
    lines: list[str] = []
    size = 0
    for name in referenced_frames(ctx):
        text = " ".join(ctx.frames[name].split())
        if size + len(text) > SCOPE_CHARS:
            break
        lines.append(text)
        size += len(text)
    shown = {line.split(":", 1)[0] for line in lines}
    others = [n for n in ctx.names if n.split(" · ", 1)[0] not in shown]
    if others:
        listing = _clip_end(", ".join(others), min(NAMES_CHARS, max(0, SCOPE_CHARS - size)))
        if listing:
            lines.append(f"names in scope: {listing}")
    return lines


def _clip_start(text: str, limit: int) -> str:
    """The last ``limit`` characters of ``text``, from a line start when one is near."""
    if len(text) <= limit:
        return text
    cut = text[len(text) - limit :]
    newline = cut.find("\n")
    return cut[newline + 1 :] if 0 <= newline < limit // 4 else cut


def _clip_end(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[:limit]
    newline = cut.rfind("\n")
    return cut[:newline] if newline > limit * 3 // 4 else cut


def code_around(
    ctx: InlineContext, *, prefix_chars: int, suffix_chars: int, redactor: Redactor | None
) -> tuple[str, str, list[str]]:
    """(code before the cursor, code after it, scope lines): redacted, then clipped to the
    budgets, keeping the code nearest to the cursor."""

    def clean(text: str) -> str:
        return redactor.redact(text) if redactor is not None else text

    scope = [clean(line) for line in scope_lines(ctx)]
    room = max(0, prefix_chars - sum(len(line) + 3 for line in scope))
    # Cells are redacted only as far as they can be sent (twice the room, so that a secret
    # at the edge is still seen whole): a big notebook costs what a small one does.
    pieces = [clean(ctx.prefix[-2 * room :])]
    size = len(pieces[0])
    for cell in reversed(ctx.before):
        if size >= room:
            break
        pieces.append(clean(cell[-2 * room :]) + CELL_SEPARATOR)
        size += len(pieces[-1])
    before = _clip_start("".join(reversed(pieces)), room)
    pieces = [clean(ctx.suffix[: 2 * suffix_chars])]
    size = len(pieces[0])
    for cell in ctx.after:
        if size >= suffix_chars:
            break
        pieces.append(CELL_SEPARATOR + clean(cell[: 2 * suffix_chars]))
        size += len(pieces[-1])
    after = _clip_end("".join(pieces), suffix_chars)
    return before, after, scope


def fim_prompt(
    ctx: InlineContext, *, prefix_chars: int, suffix_chars: int, redactor: Redactor | None
) -> tuple[str, str]:
    """``(prompt, suffix)`` of a fill-in-the-middle request; the scope leads as comments."""
    before, after, scope = code_around(
        ctx, prefix_chars=prefix_chars, suffix_chars=suffix_chars, redactor=redactor
    )
    header = "".join(f"# {line}\n" for line in scope)
    if header:
        header = "# In the running kernel:\n" + header + "\n"
    return header + before, after


def chat_question(
    ctx: InlineContext, *, prefix_chars: int, suffix_chars: int, redactor: Redactor | None
) -> str:
    """The user message of a chat-path completion: the scope, then the code with the cursor
    marked."""
    before, after, scope = code_around(
        ctx, prefix_chars=prefix_chars, suffix_chars=suffix_chars, redactor=redactor
    )
    parts = []
    if scope:
        parts.append("In the running kernel:\n" + "\n".join(scope))
    parts.append(f"Code of the notebook, the cursor marked:\n\n{before}{CURSOR}{after}")
    return "\n\n".join(parts)


class InsertionCut:
    """A chat model's answer, streamed, turned into the text to insert at the cursor.

    Dropped: a Markdown fence around the code (and anything after its end), the ``<CURSOR>``
    mark, the part of the current line the answer repeats, and (at the end) what already
    follows the cursor on its line. While streaming, the tail that could still turn out to
    be one of those is held back, so text once given is never taken back. The answer is
    bounded (the request's ``max_tokens``; here also ``limit`` characters), so the cut is
    recomputed on the whole answer at each piece.
    """

    def __init__(self, line_prefix: str, suffix_head: str, limit: int = 8000) -> None:
        self._line_prefix = line_prefix
        self._suffix_head = suffix_head[:80]
        self._limit = limit
        self._raw = ""
        self._given = 0

    def feed(self, text: str) -> str:
        """Text that may be inserted now (possibly ``""``)."""
        self._raw = (self._raw + text)[: self._limit]
        clean, hold = self._cut(final=False)
        return self._give(clean[: max(self._given, len(clean) - hold)])

    def finish(self) -> str:
        """The rest of the insertion, once the answer is complete."""
        clean, _ = self._cut(final=True)
        return self._give(clean)

    @property
    def text(self) -> str:
        """Everything given so far."""
        return self._cut(final=True)[0][: self._given]

    def _give(self, clean: str) -> str:
        new = clean[self._given :]
        self._given = max(self._given, len(clean))
        return new

    def _cut(self, *, final: bool) -> tuple[str, int]:
        """(the insertion as it stands, how many of its last characters to hold back)."""
        body = self._raw.replace(CURSOR, "")
        # An opening fence (```python): undecided until its line is whole.
        lead = body.lstrip()
        if not final and any(f.startswith(lead) for f in _FENCES) and len(lead) < 3:
            return "", 0
        if lead.startswith(_FENCES):
            newline = lead.find("\n")
            if newline < 0:
                return "", 0
            body = lead[newline + 1 :]
        # A closing fence ends the code; a line that may be becoming one is held back.
        hold = 0
        lines = body.split("\n")
        for index, line in enumerate(lines):
            if index and line.lstrip().startswith(_FENCES):
                body = "\n".join(lines[:index])
                break
        else:
            last = lines[-1].lstrip()
            if not final and len(lines) > 1 and any(f.startswith(last) for f in _FENCES):
                hold = len(lines[-1]) + 1
        # The answer may repeat what the line already has: "sales[" -> "sales['region']".
        typed = self._line_prefix.lstrip()
        if typed:
            if not final and _may_become_echo(typed, body):
                return "", 0
            overlap = _overlap(typed, body)
            if overlap >= min(3, len(typed)):
                body = body[overlap:]
        # A partial <CURSOR> mark at the end is held back.
        for size in range(min(len(CURSOR) - 1, len(body)), 0, -1):
            if CURSOR.startswith(body[-size:]):
                hold = max(hold, size)
                break
        if final:
            body = body.rstrip()
            tail = _overlap(body, self._suffix_head) if self._suffix_head.strip() else 0
            return (body[: len(body) - tail] if tail else body), 0
        trailing = len(body) - len(body.rstrip())
        return body, max(hold, trailing + len(self._suffix_head))


def _may_become_echo(typed: str, body: str) -> bool:
    """Whether more of the answer could make it repeat an end of ``typed`` (so that what
    came so far cannot be given yet)."""
    start = typed.find(body) if body else 0
    while start >= 0:
        if len(typed) - start > len(body):
            return True
        start = typed.find(body, start + 1)
    return False


def _overlap(left: str, right: str) -> int:
    """The length of the longest end of ``left`` that is also a start of ``right``."""
    for size in range(min(len(left), len(right)), 0, -1):
        if left.endswith(right[:size]):
            return size
    return 0


@dataclass(frozen=True)
class InlineRoute:
    """How inline completion asks, and why: ``fim`` (Codestral's fill-in-the-middle), ``chat``
    (the chat model with a compact prompt), or ``off`` (no model server configured).
    ``codestral``: through Codestral's own key / base URL rather than the main server."""

    mode: Literal["fim", "chat", "off"]
    model: str
    reason: str
    codestral: bool = False


NOT_CONFIGURED = (
    "no model server is configured: set MISTRAL_API_KEY (La Plateforme) or MISTRAL_BASE_URL "
    "(a self-hosted server), or MISTRAL_CODESTRAL_API_KEY / MISTRAL_CODESTRAL_BASE_URL, in "
    "the environment of the Jupyter server, then restart it"
)


def model_server_configured(settings: Mistral) -> bool:
    """Whether a model server was chosen: a key, or a base URL (set in the environment or
    the settings). Inline completion stays off until then: it would only fail."""
    return bool(
        (os.environ.get("MISTRAL_API_KEY") or "").strip()
        or (os.environ.get("MISTRAL_BASE_URL") or "").strip()
        or settings.trait_has_value("base_url")
        or settings.codestral_options() is not None
    )


def choose_route(settings: Mistral, codestral: Capabilities | None) -> InlineRoute:
    """Codestral's fill-in-the-middle when its settings are given, or when the main server's
    model card for the Codestral model says ``completion_fim`` (``codestral``: its
    capabilities from the one ``GET /models`` per base URL, with ``Mistral.model_capabilities``
    over them; None: not asked, when Codestral has its own settings); otherwise the chat model."""
    if not model_server_configured(settings):
        return InlineRoute("off", "", NOT_CONFIGURED)
    model = settings.codestral_model
    if settings.codestral_options() is not None:
        return InlineRoute(
            "fim", model, "Codestral's own settings (MISTRAL_CODESTRAL_*)", codestral=True
        )
    if codestral is not None and codestral.completion_fim:
        return InlineRoute("fim", model, f"the server's model list gives {model} FIM")
    return InlineRoute(
        "chat",
        settings.model,
        f"the server's model list gives {model} no FIM: the chat model completes",
    )


def thought_only(
    model: str, finish_reason: str | None, thinking: str, inserted: bool
) -> str | None:
    """The status for a reasoning model's completion that ends with thinking and no code (its
    thinking is never inserted), else None."""
    if inserted or not thinking:
        return None
    bound = " before its token bound" if finish_reason == "length" else ""
    return (
        f"{model} thought{bound} and wrote no code: a reasoning model is slow for ghost text. "
        "Inline completion is quicker with Codestral (MISTRAL_CODESTRAL_API_KEY, or a server "
        "whose codestral-latest card says completion_fim) or a chat model that does not "
        "reason (MISTRAL_MODEL)."
    )
