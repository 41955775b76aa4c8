"""Fenced code blocks in Markdown: where one opens and which line closes it.

CommonMark's rules: a fence is three or more backticks or tildes; a backtick fence's info
string has no backtick; the closing fence uses the same character, is at least as long and
carries nothing but spaces or tabs. Lines end at ``\\n``, ``\\r\\n`` or ``\\r`` only (not at
the other characters ``str.splitlines`` breaks on, such as U+2028, which Markdown renderers
keep inside a line).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_LINE_END = re.compile(r"\r\n?|\n")
_OPENING = re.compile(r"(?P<indent> *)(?P<marker>`{3,}|~{3,})(?P<info>.*)")
_CLOSING = re.compile(r"(?P<indent> *)(?P<marker>`{3,}|~{3,})[ \t]*")


def markdown_lines(text: str) -> list[str]:
    """``text`` cut into lines where Markdown cuts them."""
    return _LINE_END.split(text)


@dataclass(frozen=True)
class Fence:
    indent: int  # spaces before the marker
    marker: str  # the backticks or tildes
    info: str  # what follows the marker, stripped

    @property
    def language(self) -> str:
        return self.info.split()[0].lower() if self.info else ""

    def closed_by(self, line: str, max_indent: int | None = 3) -> bool:
        match = _CLOSING.fullmatch(line)
        return bool(
            match
            and (max_indent is None or len(match["indent"]) <= max_indent)
            and match["marker"][0] == self.marker[0]
            and len(match["marker"]) >= len(self.marker)
        )


def opening_fence(line: str, max_indent: int | None = 3) -> Fence | None:
    """The fence ``line`` opens, or None. ``max_indent=None`` accepts any indentation of
    spaces (fences nested in list items)."""
    match = _OPENING.fullmatch(line)
    if not match or (max_indent is not None and len(match["indent"]) > max_indent):
        return None
    marker, info = match["marker"], match["info"]
    if marker[0] == "`" and "`" in info:
        return None
    return Fence(len(match["indent"]), marker, info.strip())
