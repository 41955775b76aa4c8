"""Plain REST calls (JSON in, JSON or bytes out) over a :class:`MistralClient`, for the
endpoints beyond chat: files and batch jobs. Retries and error mapping are the client's."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

import httpx

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


def request_bytes(
    client: MistralClient,
    method: str,
    path: str,
    *,
    content: bytes | None = None,
    content_type: str | None = None,
    accept: str = "application/json",
) -> bytes:
    """Send (with the client's retries) and return the whole response body."""
    headers = client._headers(accept)
    if content_type:
        headers["Content-Type"] = content_type
    response = client._send(method, path, content=content, headers=headers)
    try:
        return response.read()
    except httpx.HTTPError as exc:
        raise client._transport_error(exc) from None
    finally:
        response.close()


def request_json(
    client: MistralClient,
    method: str,
    path: str,
    *,
    body: Any = None,
    content: bytes | None = None,
    content_type: str | None = None,
) -> Any:
    """A JSON request (``body``) or a prepared one (``content``); the decoded JSON answer."""
    if body is not None:
        content = json.dumps(body, ensure_ascii=False).encode()
        content_type = "application/json"
    raw = request_bytes(client, method, path, content=content, content_type=content_type)
    return client._decode_json(raw)
