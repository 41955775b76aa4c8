"""Checking a base URL before use: the one place ``urls`` (pure string work) meets
``errors`` (its own module, so neither of them imports the other)."""

from __future__ import annotations

from .errors import SettingsError
from .urls import base_url_problem


def check_base_url(url: str) -> str:
    """``url`` without a trailing slash; :class:`SettingsError` when it cannot work."""
    problem = base_url_problem(url)
    if problem is not None:
        raise SettingsError(problem[0].upper() + problem[1:] + ".")
    return url.rstrip("/")
