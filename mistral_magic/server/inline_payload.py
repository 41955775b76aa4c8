"""The JSON body of an inline completion request (``POST complete``), checked.

Sent by the labextension after its debounce: the cell's code around the cursor, the other
code cells, the kernel's scope as last read. Untrusted like every request body: types
checked, sizes bounded (the browser sends at most ~32k characters of cells each way), and
a bad field is a one-sentence :class:`~mistral_magic.server.payload.PayloadError` (HTTP 400).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mistral_magic.engine.inline import InlineContext
from mistral_magic.server.payload import PayloadError

#: Characters of the current cell, and of the other cells each way.
MAX_CELL_CHARS = 200_000
MAX_CELLS_CHARS = 200_000
MAX_NAMES = 200
MAX_FRAMES = 64
MAX_SCOPE_TEXT = 2_000
_EDITOR = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


@dataclass(frozen=True)
class InlinePayload:
    context: InlineContext
    #: Which editor asks (cell id): one request per editor runs at a time.
    editor: str = ""
    path: str = ""


def _text(body: Mapping[str, Any], name: str, limit: int) -> str:
    value = body.get(name, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise PayloadError(f"`{name}` must be a string.")
    if len(value) > limit:
        raise PayloadError(f"`{name}` is longer than {limit:,} characters.")
    return value


def _cells(body: Mapping[str, Any], name: str) -> tuple[str, ...]:
    value = body.get(name) or []
    if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
        raise PayloadError(f"`{name}` must be a list of cell sources.")
    if sum(len(c) for c in value) > MAX_CELLS_CHARS:
        raise PayloadError(f"`{name}` holds more than {MAX_CELLS_CHARS:,} characters.")
    return tuple(value)


def _scope(value: Any) -> tuple[tuple[str, ...], dict[str, str]]:
    """Names and frames from the kernel's scope; anything malformed is left out (the scope
    is a hint: a completion without it is still a completion)."""
    if not isinstance(value, Mapping):
        return (), {}
    names = value.get("names")
    frames = value.get("frames")
    kept_names = tuple(
        n[:MAX_SCOPE_TEXT] for n in (names if isinstance(names, list) else []) if isinstance(n, str)
    )[:MAX_NAMES]
    kept_frames: dict[str, str] = {}
    for name, text in (frames if isinstance(frames, Mapping) else {}).items():
        if len(kept_frames) >= MAX_FRAMES:
            break
        if isinstance(name, str) and name.isidentifier() and isinstance(text, str):
            kept_frames[name] = text[:MAX_SCOPE_TEXT]
    return kept_names, kept_frames


def parse_inline_payload(body: Any) -> InlinePayload:
    if not isinstance(body, Mapping):
        raise PayloadError("The request body must be a JSON object.")
    editor = body.get("editor") or ""
    if editor and (not isinstance(editor, str) or not _EDITOR.match(editor)):
        raise PayloadError("`editor` must be 1 to 128 letters, digits, '.', ':', '-' or '_'.")
    names, frames = _scope(body.get("scope"))
    context = InlineContext(
        prefix=_text(body, "prefix", MAX_CELL_CHARS),
        suffix=_text(body, "suffix", MAX_CELL_CHARS),
        before=_cells(body, "before"),
        after=_cells(body, "after"),
        names=names,
        frames=frames,
    )
    return InlinePayload(context, editor, _text(body, "path", 4096))
