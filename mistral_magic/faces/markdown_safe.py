"""Markdown that front ends may render as trusted: model and server text never becomes HTML.

JupyterLab, Notebook 7 and VS Code render a kernel's ``text/markdown`` output unsanitized
(outputs of the running session are trusted), so raw HTML inside a reply would run:
``<img src=x onerror=…>``, ``<script>``. :func:`neutralize` returns Markdown in which such
markup shows as text, while Markdown formatting, code blocks and tables render as before.

Being safe must not depend on every renderer agreeing with our reading of the Markdown
(marked, markdown-it and mistune differ at the edges), so nothing is left raw on the strength
of a guess:

* Code blocks are written back as fences that no line inside can close, every line indented
  at least as much as the opening fence and a blank line before: whatever list or quote the
  block sat in, any parser reads those lines as code (a fenced or an indented block), never
  as HTML. An unclosed last block (a reply still streaming) is closed.
* In prose, ``<`` that could open a tag becomes ``&lt;`` (``<`` before a space or a digit, as
  in ``x < 5``, cannot, and stays as written, so math renders); ``&`` that would form a
  character reference becomes ``&amp;`` (``&#106;`` or ``&colon;`` could spell
  ``javascript:``), except the harmless ``&lt;``, ``&gt;``, ``&amp;``, ``&quot;``,
  ``&apos;`` and ``&nbsp;``.
* Code spans stay as written when their content is harmless even if a parser did not read a
  span there; otherwise they become ``<code>`` elements whose content is escaped.
* ``javascript:`` gets an invisible break, so no link (Markdown or MathJax's ``\\href``)
  carries a script; images become links (a reply must not make the browser fetch a URL
  without a click); ``<https://…>`` autolinks become bare URLs.
"""

from __future__ import annotations

import bisect
import re
import string

from .markdown_fence import Fence, markdown_lines, opening_fence

ZERO_WIDTH_SPACE = "\u200b"

_BACKTICK_RUN = re.compile(r"`+")
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")
_PUNCTUATION = re.escape(string.punctuation)  # what a backslash can escape
# What prose may contain that a renderer would turn into markup, in one pass. A backslash
# escape is matched first so that an escaped character is left alone (``\<`` is already a
# literal ``<``).
_PROSE_HAZARD = re.compile(
    rf"(?P<escaped>\\[{_PUNCTUATION}])"
    r"|<(?P<autolink>https?://[^\s<>]*)>"
    r"|(?P<tag><(?=[A-Za-z/!?]))"
    r"|(?P<reference>&(?=#|(?!(?:lt|gt|amp|quot|apos|nbsp);)[A-Za-z][A-Za-z0-9]*;))"
    r"|(?P<image>!(?=\[))"
    r"|(?P<script>javascript(?=\\?:))",
    re.IGNORECASE,
)
# Code span content that is harmless even where a renderer does not read a code span.
_SPAN_HAZARD = re.compile(
    r"<[A-Za-z/!?]|&(?:#|(?!(?:lt|gt|amp|quot|apos|nbsp);)[A-Za-z][A-Za-z0-9]*;)|\]\(|!\[|"
    r"javascript\\?:",
    re.IGNORECASE,
)
# Inside a line, only these can start markup (lists, headings and the like need a line start).
_INLINE_MARKUP = re.compile(r"[\\`*_\[\]<>&|!~$]")
_SAFE_LANGUAGE = re.compile(r"[\w+#.-]+")


def neutralize(markdown: str) -> str:
    """``markdown`` with every piece of raw HTML shown as text (see the module's notes)."""
    out: list[str] = []
    prose: list[str] = []
    lines = markdown_lines(markdown)
    i = 0
    while i < len(lines):
        fence = opening_fence(lines[i], max_indent=None)
        if fence is None:
            prose.append(lines[i])
            i += 1
            continue
        end = i + 1
        while end < len(lines) and not fence.closed_by(lines[end], max_indent=None):
            end += 1
        if prose:
            out.append(_neutralize_prose("\n".join(prose)))
            prose = []
        out.append(_code_block(fence, lines[i + 1 : end], after_text=bool(out)))
        i = end + 1
    if prose:
        out.append(_neutralize_prose("\n".join(prose)))
    return "\n".join(out)


def literal_inline(text: str) -> str:
    """Markdown inline content (inside a line, such as a table cell) that renders exactly as
    ``text``: the characters that could start markup inside a line backslash-escaped (``\\<``
    is a literal ``<`` to every CommonMark renderer), line breaks as spaces."""
    return _INLINE_MARKUP.sub(r"\\\g<0>", re.sub(r"[\r\n]+", " ", text))


def code_span(text: str) -> str:
    """``text`` (one line) as a Markdown code span no backtick inside can end."""
    flat = re.sub(r"[\r\n]+", " ", text)
    if not flat:
        return ""  # an empty code span does not exist in Markdown
    ticks = "`" * (_longest_run(flat, "`") + 1)
    # CommonMark strips one space from each end when both have one; a backtick at an end
    # would join the delimiter: both need a space added.
    stripped = flat.startswith(" ") and flat.endswith(" ") and flat.strip()
    padded = flat.startswith("`") or flat.endswith("`") or stripped
    return f"{ticks} {flat} {ticks}" if padded else f"{ticks}{flat}{ticks}"


def fence_for(code: str) -> str:
    """A backtick fence longer than any backtick run in ``code``."""
    return "`" * max(3, _longest_run(code, "`") + 1)


def _code_block(fence: Fence, body: list[str], *, after_text: bool) -> str:
    indent = " " * fence.indent
    content = [indent + _dedent(line, fence.indent) if line.strip() else "" for line in body]
    ticks = fence_for("\n".join(content))
    word = fence.info.split()[0] if fence.info else ""
    language = word if _SAFE_LANGUAGE.fullmatch(word) else ""
    lines = [indent + ticks + language, *content, indent + ticks]
    if after_text:
        lines.insert(0, "")  # so no paragraph or table can take the fence's lines as its own
    return "\n".join([*lines, ""])


def _dedent(line: str, count: int) -> str:
    """``line`` without up to ``count`` leading spaces (what CommonMark removes)."""
    stripped = line.lstrip(" ")
    return line[min(count, len(line) - len(stripped)) :]


def _neutralize_prose(text: str) -> str:
    out: list[str] = []
    position = 0
    for start, end, content in _code_spans(text):
        out.append(_neutralize_text(text[position:start]))
        raw = text[start:end]
        out.append(f"<code>{literal_inline(content)}</code>" if _SPAN_HAZARD.search(raw) else raw)
        position = end
    out.append(_neutralize_text(text[position:]))
    return "".join(out)


def _neutralize_text(text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        kind = match.lastgroup
        if kind == "escaped":
            return match.group(0)
        if kind == "autolink":
            return match.group("autolink")
        if kind == "tag":
            return "&lt;"
        if kind == "reference":
            return "&amp;"
        if kind == "image":
            return "\\!"
        return match.group(0) + ZERO_WIDTH_SPACE  # javascript

    return _PROSE_HAZARD.sub(replace, text)


def _code_spans(text: str) -> list[tuple[int, int, str]]:
    """The code spans of a prose chunk as (start, end, content), by CommonMark's rules: an
    opening backtick run (not backslash-escaped) is closed by the next run of exactly its
    length in the same paragraph; line breaks inside become spaces. Linear apart from a
    binary search per run."""
    runs = [(m.start(), m.end()) for m in _BACKTICK_RUN.finditer(text)]
    if not runs:
        return []
    by_length: dict[int, list[int]] = {}
    for start, end in runs:
        by_length.setdefault(end - start, []).append(start)
    breaks = [m.start() for m in _PARAGRAPH_BREAK.finditer(text)]
    escaped = _escaped_positions(text)
    spans: list[tuple[int, int, str]] = []
    position = 0
    for start, end in runs:
        if start < position:
            continue  # inside the previous span
        opener = start + 1 if start in escaped else start
        length = end - opener
        if length == 0:
            continue
        starts = by_length.get(length, [])
        k = bisect.bisect_left(starts, end)
        if k == len(starts):
            continue
        close = starts[k]
        b = bisect.bisect_left(breaks, end)
        if b < len(breaks) and breaks[b] < close:
            continue
        content = text[end:close].replace("\r\n", " ").replace("\n", " ")
        if content.startswith(" ") and content.endswith(" ") and content.strip(" "):
            content = content[1:-1]
        spans.append((opener, close + length, content))
        position = close + length
    return spans


def _escaped_positions(text: str) -> set[int]:
    """Positions of characters escaped by a backslash (``\\\\`` escapes itself)."""
    escaped: set[int] = set()
    i = text.find("\\")
    while i != -1 and i + 1 < len(text):
        if text[i + 1] in string.punctuation:
            escaped.add(i + 1)
            i = text.find("\\", i + 2)
        else:
            i = text.find("\\", i + 1)
    return escaped


def _longest_run(text: str, char: str) -> int:
    runs = re.findall(f"{re.escape(char)}+", text)
    return max((len(r) for r in runs), default=0)
