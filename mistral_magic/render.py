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


def extract_code_blocks(markdown: str) -> list[CodeBlock]:
    """Fenced code blocks (``` or ~~~) of a Markdown text; an unclosed last block is dropped,
    since a reply cut off mid-block would give code that does not run."""
    blocks: list[CodeBlock] = []
    fence: str | None = None
    language = ""
    lines: list[str] = []
    for line in markdown.splitlines():
        match = _FENCE.match(line)
        if fence is None:
            if match:
                fence = match["fence"]
                info = match["info"].strip()
                language = info.split()[0].lower() if info else ""
                lines = []
        elif (
            match
            and match["fence"][0] == fence[0]
            and len(match["fence"]) >= len(fence)
            and (not match["info"].strip())
        ):
            blocks.append(CodeBlock(language, "\n".join(lines)))
            fence = None
        else:
            lines.append(line)
    return blocks


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
        self._printed = len(text)

    def _show(self, markdown: str) -> None:
        from IPython.display import Markdown, display

        self.renders += 1
        if self._handle is None:
            self._handle = display(Markdown(markdown), display_id=True)
        else:
            self._handle.update(Markdown(markdown))


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
