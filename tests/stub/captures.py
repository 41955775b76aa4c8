"""Finding the shared folder of real recorded Mistral traffic (``shared/mistral-captures``).

The repo and ``shared/`` sit side by side (``/work/main`` and ``/work/shared`` here; CI
uses another root), so the folder is searched upwards from this file, never hard-coded.
``MISTRAL_CAPTURES_DIR`` overrides the search.
"""

from __future__ import annotations

import os
from pathlib import Path

_RELATIVE = Path("shared") / "mistral-captures"


def find_captures_dir() -> Path | None:
    """The captures folder, or None when it cannot be found."""
    override = os.environ.get("MISTRAL_CAPTURES_DIR")
    if override:
        path = Path(override)
        return path if path.is_dir() else None
    for parent in Path(__file__).resolve().parents:
        candidate = parent / _RELATIVE
        if candidate.is_dir():
            return candidate
    return None


def captures_dir() -> Path:
    """The captures folder; raises FileNotFoundError with a clear message if absent."""
    found = find_captures_dir()
    if found is None:
        raise FileNotFoundError(
            "shared/mistral-captures not found: expected a 'shared' folder beside the repo "
            f"(searched upwards from {Path(__file__).resolve().parent}); "
            "set MISTRAL_CAPTURES_DIR to point at it"
        )
    return found


def resolve_capture(path: str | Path) -> Path:
    """``path`` itself if it exists, else that file name inside the captures folder."""
    candidate = Path(path)
    if candidate.is_file():
        return candidate
    inside = captures_dir() / candidate.name
    if inside.is_file():
        return inside
    raise FileNotFoundError(f"capture not found: {path}")
