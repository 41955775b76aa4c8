"""Showing a reply as it streams, and finding the code in it.

In a notebook the reply is Markdown cut into blocks (:mod:`markdown_stream`): each finished
block is its own output, sent once, and only the last one is updated as text arrives (at most
``max_fps`` times a second, so a fast stream never queues up renders), so an update costs
the same at the end of a long reply as at its start. Everything shown as Markdown goes through
:func:`markdown_safe.neutralize` first: front ends render a kernel's Markdown as trusted, and
model or server text must never become live HTML. In terminal IPython the text is printed as
it arrives, and Markdown is printed as plain text.
"""

from __future__ import annotations

import re
import sys
import time
from dataclasses import dataclass
from typing import Any, TextIO

PYTHON_LANGS = frozenset({"python", "py", "python3", "ipython", "ipython3"})
CURSOR = " ▌"
# Control characters other than tab and newline: in model or server text printed to a
# terminal they could move the cursor, rewrite what is on screen or set the clipboard
# (ANSI escape sequences, a lone carriage return).
_CONTROL = re.compile(r"\r(?!\n)|[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """``text`` safe to print to a terminal: control characters shown as ``�``."""
    return _CONTROL.sub("\ufffd", text)


@dataclass(frozen=True)
class CodeBlock:
    language: str
    code: str

    @property
    def is_python(self) -> bool:
        return self.language in PYTHON_LANGS


@dataclass(frozen=True)
class Prose:
    markdown: str


Segment = Prose | CodeBlock


def split_segments(markdown: str) -> list[Segment]:
    """The reply cut into prose and fenced code blocks (``` or ~~~; a closing fence is at
    least as long as its opening one). An unclosed last block stays prose: a reply cut off
    mid-block would give code that does not run."""
    from .markdown_fence import markdown_lines, opening_fence

    segments: list[Segment] = []
    prose: list[str] = []
    lines = markdown_lines(markdown)
    i = 0
    while i < len(lines):
        fence = opening_fence(lines[i])
        end = i + 1
        while fence is not None and end < len(lines) and not fence.closed_by(lines[end]):
            end += 1
        if fence is None:
            prose.append(lines[i])
            i += 1
            continue
        if end == len(lines):  # a block that never closes: the rest is prose
            prose += lines[i:]
            break
        if any(p.strip() for p in prose):
            segments.append(Prose("\n".join(prose)))
        prose = []
        segments.append(CodeBlock(fence.language, "\n".join(lines[i + 1 : end])))
        i = end + 1
    if any(p.strip() for p in prose):
        segments.append(Prose("\n".join(prose)))
    return segments


def extract_code_blocks(markdown: str) -> list[CodeBlock]:
    """The fenced code blocks of a Markdown text, in order (an unclosed last one dropped)."""
    return [s for s in split_segments(markdown) if isinstance(s, CodeBlock)]


def python_cell(blocks: list[CodeBlock]) -> str | None:
    """The text of one new cell holding every Python block, each labelled when there are
    several; None when there is no Python code."""
    python = [b.code.strip("\n") for b in blocks if b.is_python and b.code.strip()]
    if not python:
        return None
    if len(python) == 1:
        return python[0]
    return "\n\n".join(
        f"# --- block {i} of {len(python)} from Mistral's reply ---\n{code}"
        for i, code in enumerate(python, 1)
    )


def in_notebook(shell: Any) -> bool:
    """True in a Jupyter kernel (rich display), False in terminal IPython."""
    return getattr(shell, "kernel", None) is not None


class StreamingDisplay:
    """One reply on screen: ``update`` as text grows, ``finish`` once with the footer.

    ``update`` and ``finish`` take the whole text so far; only what is new since the last
    call is looked at. ``code_language`` shows the reply as one code block of that language
    in a notebook (``json`` for ``--json``); a terminal prints it as it comes."""

    def __init__(
        self,
        *,
        notebook: bool,
        max_fps: float = 15.0,
        out: TextIO | None = None,
        code_language: str | None = None,
    ) -> None:
        self.notebook = notebook
        self._interval = 1.0 / max_fps
        self._last = 0.0
        self._out = out or sys.stdout
        # Imported here, not at module level: %load_ext stays fast (the regexes compile
        # when the first reply is shown).
        from .markdown_safe import fence_for
        from .markdown_stream import MarkdownBlocks

        self._blocks = MarkdownBlocks()
        self._seen = 0  # characters of the text taken into the blocks (or printed)
        self._handle: Any = None  # the output showing the unfinished block
        self._closing_fence = ""
        if code_language is not None:
            fence = fence_for("")
            self._blocks.feed(f"{fence}{code_language}\n")
            self._closing_fence = f"\n{fence}"
        self.renders = 0  # display messages sent
        self.at_line_start = True  # terminal: whether the printed text ended a line
        self.pending_break = ""  # terminal: printed before the first text (after thinking)

    def update(self, text: str) -> None:
        if not self.notebook:
            self._print_new(text)
            return
        self._publish(self._take(text))
        now = time.monotonic()
        if now - self._last < self._interval:
            return
        self._last = now
        self._show(self._blocks.tail + CURSOR)

    def break_block(self) -> None:
        """End the block on screen here, so what comes next appears below whatever is
        displayed in between (a tool call's line)."""
        if self.notebook:
            self._publish(self._blocks.cut())

    @property
    def started(self) -> bool:
        """Whether any text has been shown."""
        return self._seen > 0

    def finish(self, text: str, footer: str = "", metadata: dict[str, Any] | None = None) -> None:
        """The whole reply, then ``footer`` under it; ``metadata`` goes with the last output
        (the reply's provenance: saved with the notebook)."""
        if not self.notebook:
            self._print_new(text)
        else:
            self._publish(self._take(text))
        self.finish_here(footer, metadata)

    def finish_here(self, footer: str, metadata: dict[str, Any] | None = None) -> None:
        """End with the text shown so far (an interrupted or failed reply), then ``footer``.
        The faces keep no copy of the growing text: the engine can then append to it in
        place instead of copying it for every piece."""
        if not self.notebook:
            self._out.write("\n" + (f"\n{footer}\n" if footer else ""))
            self._out.flush()
            return
        self._publish(self._blocks.feed(self._closing_fence))
        last = self._blocks.close()
        if footer:
            from .markdown_safe import literal_inline

            last += f"\n\n---\n*{literal_inline(footer)}*"
        if last.strip() or self._handle is not None or metadata:
            self._show(last, metadata)
        self._handle = None

    def _take(self, text: str) -> list[str]:
        new, self._seen = text[self._seen :], len(text)
        return self._blocks.feed(new)

    def _publish(self, finished: list[str]) -> None:
        for block in finished:
            self._show(block)
            self._handle = None  # the next block gets an output of its own

    def _print_new(self, text: str) -> None:
        if self.pending_break and len(text) > self._seen:
            self._out.write(self.pending_break)
            self.pending_break = ""
        self._out.write(printable(text[self._seen :]))
        self._out.flush()
        if len(text) > self._seen:
            self.at_line_start = text.endswith("\n")
        self._seen = len(text)

    def _show(self, markdown: str, metadata: dict[str, Any] | None = None) -> None:
        from IPython.display import Markdown, display

        from .markdown_safe import neutralize

        self.renders += 1
        shown = Markdown(neutralize(markdown))
        extra = {"metadata": metadata} if metadata else {}
        if self._handle is None:
            self._handle = display(shown, display_id=True, **extra)
        else:
            self._handle.update(shown, **extra)


#: ANSI "faint" and "reset": a reasoning model's thinking is dimmed in a terminal.
DIM, UNDIM = "\x1b[2m", "\x1b[0m"


class ThinkingDisplay:
    """A reasoning model's thinking, apart from the answer (``on_thinking`` of the answer).

    In a notebook: while it streams, one line ("💭 Reasoning… 412 words") updated in place;
    at :meth:`finish` that line is emptied and the whole thinking shown *under* the answer,
    collapsed in a ``<details>`` block (its Markdown neutralized: raw HTML shows as text).
    In a terminal: printed dimmed as it arrives (plain where the output is not a terminal,
    or ``TERM=dumb``), a blank line before the answer.
    The thinking is never part of the answer's text, so never of ``-o``, ``--json``, the
    code offered as a cell, or the conversation."""

    def __init__(
        self,
        *,
        notebook: bool,
        text_display: StreamingDisplay | None = None,
        out: TextIO | None = None,
        max_fps: float = 4.0,
    ) -> None:
        self.notebook = notebook
        self._text_display = text_display
        self._out = out or sys.stdout
        self._interval = 1.0 / max_fps
        self._last = 0.0
        self._seen = 0
        self._words = 0
        self._handle: Any = None
        self.text = ""
        self._dim = not notebook and _is_color_terminal(self._out)

    def update(self, thinking: str) -> None:
        new = thinking[self._seen :]
        self._words += new_words(thinking[self._seen - 1 : self._seen], new)
        self._seen = len(thinking)
        self.text = thinking
        if not new:
            return
        if not self.notebook:
            shown = printable(new)
            self._out.write(DIM + shown + UNDIM if self._dim else shown)
            self._out.flush()
            if self._text_display is not None:
                self._text_display.pending_break = "\n\n"
            return
        now = time.monotonic()
        if now - self._last < self._interval:
            return
        self._last = now
        self._show_live(f"💭 *Reasoning… {self._words:,} words*")

    def finish(self) -> None:
        """The whole thinking, collapsed, under what was shown since (the answer)."""
        if not self.notebook or not self.text.strip():
            if not self.notebook and self.text and self._text_display is not None:
                self._text_display.pending_break = ""
            return
        if self._handle is not None:
            self._show_live("")
        from IPython.display import Markdown, display

        display(Markdown(thinking_markdown(self.text)))

    def _show_live(self, markdown: str) -> None:
        from IPython.display import Markdown, display

        if self._handle is None:
            self._handle = display(Markdown(markdown), display_id=True)
        else:
            self._handle.update(Markdown(markdown))


_WORD_START = re.compile(r"\s\S")


def new_words(before: str, new: str) -> int:
    """Words that start in ``new``, the text after ``before`` (its last character suffices):
    a word cut between two pieces of a stream counts once."""
    starts = len(_WORD_START.findall(new))
    if new[:1].strip() and (not before or before[-1:].isspace()):
        starts += 1
    return starts


def _is_color_terminal(out: TextIO) -> bool:
    import os

    try:
        return out.isatty() and os.environ.get("TERM", "") != "dumb"
    except (AttributeError, ValueError):
        return False


def thinking_markdown(thinking: str) -> str:
    """A reasoning model's thinking as a collapsed block: ``<details>`` (closed) with the
    thinking as neutralized Markdown inside (no raw HTML of it survives, so it cannot close
    the block; an unclosed code fence of it is closed)."""
    from .markdown_safe import neutralize

    words = len(thinking.split())
    summary = f"💭 Reasoning · {words:,} word{'s' if words != 1 else ''}"
    return f"<details><summary>{summary}</summary>\n\n{neutralize(thinking)}\n\n</details>"


class ToolCallDisplay:
    """Tool calls as they happen (``on_tool`` of :meth:`Assistant.answer`): in a notebook one
    Markdown line per call, updated in place, its result folded in a ``<details>``; in a
    terminal one plain line per finished call."""

    def __init__(
        self,
        *,
        notebook: bool,
        text_display: StreamingDisplay | None = None,
        out: TextIO | None = None,
    ) -> None:
        self.notebook = notebook
        self._text_display = text_display
        self._out = out or sys.stdout
        self._handles: dict[tuple[int, str], Any] = {}

    def __call__(self, event: Any) -> None:
        if self.notebook:
            self._show(event)
        elif event.done:
            if self._text_display is not None and not self._text_display.at_line_start:
                self._out.write("\n")
                self._text_display.at_line_start = True
            self._out.write(printable(tool_call_line(event)) + "\n")
            self._out.flush()

    def _show(self, event: Any) -> None:
        from IPython.display import Markdown, display

        key = (event.round, event.call_id)
        markdown = Markdown(tool_call_markdown(event))
        handle = self._handles.get(key)
        if handle is None:
            if self._text_display is not None:
                self._text_display.break_block()  # text after the call goes below it
            self._handles[key] = display(markdown, display_id=True)
        else:
            handle.update(markdown)


_TOOL_STATUS = {
    "running": "…",
    "ok": "",
    "error": "⚠️ error",
    "declined": "declined",
    "skipped": "skipped (tool time limit)",
}


def tool_call_summary(event: Any) -> tuple[str, str]:
    """A tool call's signature on one line, and what to say after it (status, time)."""
    status = _TOOL_STATUS.get(event.status, event.status)
    facts = [f for f in (status, f"{event.seconds:.2f} s" if event.seconds >= 0.01 else "") if f]
    tail = f" · {' · '.join(facts)}" if facts else ""
    return re.sub(r"[\r\n]+", " ", event.signature), tail


def tool_call_markdown(event: Any) -> str:
    """``🔧 describe_variable(name="df")`` with the result folded underneath. The model
    chose the name and arguments, so no character of them is left to be read as markup:
    Markdown-escaped in a paragraph, HTML-escaped in the ``<details>`` HTML block (where
    Markdown is not read), and the result in a fence no line of it can close."""
    import html

    from .markdown_safe import fence_for, literal_inline

    signature, tail = tool_call_summary(event)
    if not event.done or not event.result:
        return f"🔧 <code>{literal_inline(signature)}</code>{literal_inline(tail)}"
    summary = f"🔧 <code>{html.escape(signature, quote=False)}</code>{html.escape(tail)}"
    fence = fence_for(event.result)
    return (
        f"<details><summary>{summary}</summary>\n\n{fence}text\n{event.result}\n{fence}\n\n"
        "</details>"
    )


def tool_call_line(event: Any) -> str:
    """``🔧 describe_variable(name="df") → 12 lines, 0.02 s`` for a terminal."""
    if event.status == "ok":
        lines = event.result.count("\n") + 1
        outcome = f"{lines} line{'s' if lines != 1 else ''}, {event.seconds:.2f} s"
    elif event.status == "error":
        first = event.result.splitlines()[0] if event.result else ""
        outcome = first[:200]
    else:
        outcome = _TOOL_STATUS.get(event.status, event.status)
    return f"🔧 {event.signature} → {outcome}"


def show_markdown(shell: Any, markdown: str) -> None:
    """A one-off Markdown output, its raw HTML shown as text (plain text in a terminal)."""
    if in_notebook(shell):
        from IPython.display import Markdown, display

        from .markdown_safe import neutralize

        display(Markdown(neutralize(markdown)))
    else:
        from .markdown_plain import to_plain

        print(printable(to_plain(markdown)))


def hint_line(count: int | None) -> str:
    """The one line shown where the Explain / Fix buttons cannot be."""
    n = f" {count}" if count is not None else ""
    return f"Mistral can explain this error: run %mistral explain{n} (or %mistral fix{n})."


def show_problem(message: str) -> None:
    """A failure, as one paragraph on stderr: no traceback (and no control characters a
    server's text might carry)."""
    print(printable(message), file=sys.stderr)
