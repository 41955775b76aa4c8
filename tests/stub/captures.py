"""Where the recorded Mistral traffic lives: ``tests/captures/`` inside this repo.

The captures travel with the repo so that a clone with nothing beside it runs every test;
``tests/captures/README.md`` says where each file came from.
"""

from __future__ import annotations

from pathlib import Path

IN_REPO = Path(__file__).resolve().parent.parent / "captures"


def find_captures_dir() -> Path | None:
    """The captures folder, or None when it is missing (a broken checkout)."""
    return IN_REPO if IN_REPO.is_dir() else None


def captures_dir() -> Path:
    """The captures folder; raises FileNotFoundError with a clear message if absent."""
    found = find_captures_dir()
    if found is None:
        raise FileNotFoundError(f"recorded captures missing at {IN_REPO}: they ship with the repo")
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
