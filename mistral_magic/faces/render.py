"""Showing a reply as it streams, and finding the code in it.

In a notebook the reply is one Markdown output updated in place (at most ``max_fps`` times a
second, so a fast stream never queues up renders); in terminal IPython the text is printed
as it arrives.
"""

from __future__ import annotations

import re
import sys
import time
from dataclasses import dataclass
from typing import Any, TextIO

PYTHON_LANGS = frozenset({"python", "py", "python3", "ipython", "ipython3"})
_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>[^\n`]*)$")


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
    segments: list[Segment] = []
    prose: list[str] = []
    code: list[str] = []
    opening = ""
    fence: str | None = None
    language = ""
    for line in markdown.splitlines():
        match = _FENCE.match(line)
        if fence is None:
            if match:
                fence = match["fence"]
                info = match["info"].strip()
                language = info.split()[0].lower() if info else ""
                opening, code = line, []
            else:
                prose.append(line)
        elif (
            match
            and match["fence"][0] == fence[0]
            and len(match["fence"]) >= len(fence)
            and not match["info"].strip()
        ):
            if any(p.strip() for p in prose):
                segments.append(Prose("\n".join(prose)))
            prose = []
            segments.append(CodeBlock(language, "\n".join(code)))
            fence = None
        else:
            code.append(line)
    if fence is not None:
        prose += [opening, *code]
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
    """One reply on screen: ``update`` as text grows, ``finish`` once with the footer."""

    def __init__(self, *, notebook: bool, max_fps: float = 15.0, out: TextIO | None = None):
        self.notebook = notebook
        self._interval = 1.0 / max_fps
        self._last = 0.0
        self._handle: Any = None
        self._printed = 0
        self._out = out or sys.stdout
        self.renders = 0
        self.at_line_start = True  # terminal: whether the printed text ended a line

    def update(self, text: str) -> None:
        if not self.notebook:
            self._print_new(text)
            return
        now = time.monotonic()
        if now - self._last < self._interval:
            return
        self._last = now
        self._show(text + " ▌")

    def finish(self, text: str, footer: str = "") -> None:
        if not self.notebook:
            self._print_new(text)
            self._out.write("\n" + (f"\n{footer}\n" if footer else ""))
            self._out.flush()
            return
        self._show(text + (f"\n\n---\n*{footer}*" if footer else ""))

    def _print_new(self, text: str) -> None:
        self._out.write(text[self._printed :])
        self._out.flush()
        if len(text) > self._printed:
            self.at_line_start = text.endswith("\n")
        self._printed = len(text)

    def _show(self, markdown: str) -> None:
        from IPython.display import Markdown, display

        self.renders += 1
        if self._handle is None:
            self._handle = display(Markdown(markdown), display_id=True)
        else:
            self._handle.update(Markdown(markdown))


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
            self._out.write(tool_call_line(event) + "\n")
            self._out.flush()

    def _show(self, event: Any) -> None:
        from IPython.display import Markdown, display

        key = (event.round, event.call_id)
        markdown = Markdown(tool_call_markdown(event))
        handle = self._handles.get(key)
        if handle is None:
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


def tool_call_markdown(event: Any) -> str:
    """``🔧 describe_variable(name="df")`` with the result folded underneath."""
    import html

    status = _TOOL_STATUS.get(event.status, event.status)
    facts = [f for f in (status, f"{event.seconds:.2f} s" if event.seconds >= 0.01 else "") if f]
    tail = f" · {' · '.join(facts)}" if facts else ""
    summary = f"🔧 <code>{html.escape(event.signature, quote=False)}</code>{tail}"
    if not event.done or not event.result:
        return summary
    fence = "`" * max(3, _longest_backtick_run(event.result) + 1)
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


def _longest_backtick_run(text: str) -> int:
    runs = re.findall(r"`+", text)
    return max((len(r) for r in runs), default=0)


def show_markdown(shell: Any, markdown: str) -> None:
    """A one-off Markdown output (plain text in a terminal)."""
    if in_notebook(shell):
        from IPython.display import Markdown, display

        display(Markdown(markdown))
    else:
        print(markdown)


def show_problem(message: str) -> None:
    """A failure, as one paragraph on stderr: no traceback."""
    print(message, file=sys.stderr)
