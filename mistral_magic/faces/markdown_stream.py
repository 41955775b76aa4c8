"""A growing Markdown reply cut into finished blocks and one unfinished tail.

A front end can only replace a display output whole, so re-sending the whole reply on every
update costs O(reply) per update and O(reply²) in all (a 20 MB reply once put 35 GB on the
kernel's iopub channel). Cut into blocks, each finished block is sent once and only the tail
is re-sent: an update costs at most about ``hard`` characters, whatever the reply's length.

Blocks end at a blank line (outside code) once they hold ``soft`` characters, or after a code
block closes; a paragraph or code block longer than ``hard`` is cut at a line end (a code
block is closed there and reopened in the next block); a line longer than ``hard`` is cut at
a space, or anywhere if it has none. Every block is valid Markdown on its own.
"""

from __future__ import annotations

from .markdown_fence import Fence, opening_fence

SOFT_BLOCK_CHARS = 6_000
HARD_BLOCK_CHARS = 16_000


class MarkdownBlocks:
    """Feed text as it arrives; get the blocks that became final."""

    def __init__(self, *, soft: int = SOFT_BLOCK_CHARS, hard: int = HARD_BLOCK_CHARS) -> None:
        self.soft = soft
        self.hard = hard
        self._lines: list[str] = []  # complete lines of the current block
        self._size = 0
        self._partial: list[str] = []  # pieces of the line not ended yet
        self._partial_size = 0
        self._fence: Fence | None = None
        self._fence_line = ""

    def feed(self, text: str) -> list[str]:
        """Add ``text``; returns the blocks it finished (in order). Costs O(len(text))."""
        finished: list[str] = []
        if "\n" not in text:
            self._partial.append(text)
            self._partial_size += len(text)
        else:
            first, *middle, last = text.split("\n")
            self._partial.append(first)
            finished += self._add_line("".join(self._partial))
            for line in middle:
                finished += self._add_line(line)
            self._partial, self._partial_size = [last], len(last)
        if self._partial_size > self.hard:
            finished += self._break_long_line()
        return finished

    @property
    def tail(self) -> str:
        """The unfinished block as it stands (a code block in it may still be open)."""
        return "\n".join([*self._lines, "".join(self._partial)])

    def cut(self) -> list[str]:
        """End the current block here, even mid-line (e.g. where a tool call is shown);
        returns it, or nothing if it is empty."""
        self._lines.append("".join(self._partial))
        self._partial, self._partial_size = [], 0
        if not any(line.strip() for line in self._lines):
            self._lines, self._size = [], 0
            return []
        return [self._end_block()]

    def close(self) -> str:
        """The tail as the last block (text ends here)."""
        reopened_only = self._lines == [self._fence_line] and not self._partial_size
        tail = "" if self._fence is not None and reopened_only else self.tail
        self._lines, self._size, self._partial, self._partial_size = [], 0, [], 0
        self._fence = None
        return tail

    # -- internals ---------------------------------------------------------------------------
    def _add_line(self, line: str) -> list[str]:
        if self._fence is None:
            fence = opening_fence(line, max_indent=None)
            if fence is not None:
                self._fence, self._fence_line = fence, line
            elif not line.strip() and self._size >= self.soft:
                return [self._end_block()]  # a paragraph boundary: the blank line goes
            self._append(line)
            return [self._end_block()] if self._size >= self.hard else []
        self._append(line)
        if self._fence.closed_by(line, max_indent=None):
            self._fence = None
            return [self._end_block()] if self._size >= self.soft else []
        return [self._end_block()] if self._size >= self.hard else []

    def _append(self, line: str) -> None:
        self._lines.append(line)
        self._size += len(line) + 1

    def _end_block(self) -> str:
        lines = self._lines
        reopen: list[str] = []
        if self._fence is not None:  # cut inside a code block: close it, reopen it next
            lines = [*lines, " " * self._fence.indent + self._fence.marker]
            reopen = [self._fence_line]
        block = "\n".join(lines)
        self._lines, self._size = reopen, sum(len(line) + 1 for line in reopen)
        return block

    def _break_long_line(self) -> list[str]:
        """A line past ``hard`` characters: cut it into pieces of at most ``hard`` at a space
        (or anywhere), until at most half of that is left (so the next cut is far off)."""
        line = "".join(self._partial)
        finished: list[str] = []
        while len(line) > self.hard // 2:
            limit = min(len(line), self.hard)
            space = line.rfind(" ", limit // 2, limit)
            cut = space + 1 if space != -1 else limit
            finished += self._add_line(line[:cut])
            line = line[cut:]
        self._partial, self._partial_size = [line], len(line)
        return finished
