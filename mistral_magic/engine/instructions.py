"""Project instructions: the user's ``Mistral.instructions`` and the nearest ``AGENTS.md``
(the cross-tool convention), added to the system message of every request.

``AGENTS.md`` is looked for in the notebook's folder, then its parents: up to the Jupyter
server's root for the sidebar (never above it), and for a kernel up to the first folder that
holds ``.git``, the home folder or the file system's root. Each text is redacted, then cut at
``Mistral.instructions_max_chars`` with a note; files are read only that far.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import Mistral
    from ..context.redact import Redactor

AGENTS_FILE = "AGENTS.md"
SETTING = "Mistral.instructions"
#: Folders looked at, at most, from the notebook's folder upward.
MAX_LEVELS = 16
#: The id of the instructions' chip in the sidebar (removable for one question).
CHIP_ID = "instructions"


@dataclass(frozen=True)
class Instructions:
    """One source of standing instructions, as sent."""

    source: str  # "AGENTS.md" or "Mistral.instructions": the label people see
    text: str  # redacted and cut
    path: str = ""  # the file it was read from
    cut: bool = False  # longer than Mistral.instructions_max_chars

    @property
    def label(self) -> str:
        """``instructions · AGENTS.md``"""
        return f"instructions · {self.source}"


def find_agents_file(start: Path, root: Path | None = None) -> Path | None:
    """The nearest ``AGENTS.md`` from folder ``start`` upward. With ``root``, nothing above
    it is looked at (and nothing at all when ``start`` is outside it); without, the search
    ends at a folder holding ``.git``, the home folder or the file system's root."""
    try:
        folder = start.resolve()
        top = root.resolve() if root is not None else None
    except OSError:
        return None
    if top is not None and folder != top and top not in folder.parents:
        return None
    home = Path.home()
    for _ in range(MAX_LEVELS):
        candidate = folder / AGENTS_FILE
        if candidate.is_file():
            return candidate
        if top is not None and folder == top:
            return None
        if top is None and (folder == home or (folder / ".git").exists()):
            return None
        if folder.parent == folder:
            return None
        folder = folder.parent
    return None


def _bounded(text: str, limit: int, redactor: Redactor | None) -> tuple[str, bool]:
    """Redacted, then cut at ``limit`` characters (redacting first: a secret across the cut
    is removed whole)."""
    if redactor is not None:
        text = redactor.redact(text)
    text = text.strip()
    if len(text) <= limit:
        return text, False
    return text[:limit].rstrip() + f"\n[… cut at {limit:,} characters]", True


def read_agents_file(path: Path, limit: int, redactor: Redactor | None) -> Instructions | None:
    try:
        with path.open("rb") as handle:
            # A UTF-8 character takes at most 4 bytes: this reads past the cut, never far.
            raw = handle.read(limit * 4 + 4)
    except OSError:
        return None
    text, cut = _bounded(raw.decode("utf-8", errors="replace"), limit, redactor)
    if not text:
        return None
    return Instructions(AGENTS_FILE, text, str(path), cut)


def load_instructions(
    settings: Mistral,
    *,
    folder: Path | None,
    root: Path | None = None,
    redactor: Redactor | None = None,
) -> list[Instructions]:
    """The instructions that go with every request from a notebook in ``folder``: the
    setting's, then the nearest ``AGENTS.md`` (see :func:`find_agents_file`)."""
    limit = settings.instructions_max_chars
    found: list[Instructions] = []
    if settings.instructions.strip():
        text, cut = _bounded(settings.instructions, limit, redactor)
        found.append(Instructions(SETTING, text, "", cut))
    if settings.agents_file and folder is not None:
        path = find_agents_file(folder, root)
        read = read_agents_file(path, limit, redactor) if path is not None else None
        if read is not None:
            found.append(read)
    return found


def instructions_block(instructions: Sequence[Instructions]) -> str:
    """The part of the system message that carries them (empty without any)."""
    if not instructions:
        return ""
    parts = [
        "Standing instructions from the user for this project follow. Follow them unless "
        "the question asks otherwise."
    ]
    for item in instructions:
        parts.append(f"## From {item.source}\n{item.text}")
    return "\n\n".join(parts)


def kernel_notebook_path(namespace: Mapping[str, object]) -> Path | None:
    """The kernel's notebook: Jupyter tells a kernel its notebook's path (``__session__``,
    from ``JPY_SESSION_NAME``), VS Code as ``__vsc_ipynb_file__``."""
    for found in (
        namespace.get("__session__"),
        namespace.get("__vsc_ipynb_file__"),
        os.environ.get("JPY_SESSION_NAME"),
    ):
        if isinstance(found, str) and found and Path(found).is_absolute():
            return Path(found)
    return None


def kernel_notebook_folder(namespace: Mapping[str, object]) -> Path:
    """The folder of the kernel's notebook, else the working directory."""
    path = kernel_notebook_path(namespace)
    return path.parent if path is not None else Path.cwd()
