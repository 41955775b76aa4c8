"""Helpers for the endpoints beyond chat (files, batch jobs): paths with query strings and
ids, and the JSON/bytes requests, which are the client's own (its key, retries, errors)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

if TYPE_CHECKING:
    from .client import MistralClient

Query = Mapping[str, str | int | bool | Sequence[str] | None]


def with_query(path: str, query: Query | None) -> str:
    """``path?k=v&…``, dropping ``None`` values; lists repeat the key; booleans are lowercase."""
    if not query:
        return path
    pairs: list[tuple[str, str]] = []
    for key, value in query.items():
        if value is None:
            continue
        if isinstance(value, bool):
            pairs.append((key, "true" if value else "false"))
        elif isinstance(value, (list, tuple)):
            pairs.extend((key, str(v)) for v in value)
        else:
            pairs.append((key, str(value)))
    return f"{path}?{urlencode(pairs)}" if pairs else path


def path_id(value: str) -> str:
    """An id as one safe path segment."""
    return quote(str(value), safe="")


def request_bytes(client: MistralClient, method: str, path: str, **options: Any) -> bytes:
    """Send (with the client's retries) and return the whole response body."""
    return client.request_bytes(method, path, **options)


def request_json(client: MistralClient, method: str, path: str, **options: Any) -> Any:
    """A JSON request (``body=``) or a prepared one (``content=``); the decoded JSON answer."""
    return client.request_json(method, path, **options)
