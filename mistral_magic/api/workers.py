"""Async clients for a pool of workers: one connection each, one TLS context for all.

httpcore's connection pool checks every connection of the pool on each request, so a single
client shared by N concurrent workers costs O(N) per request; N single-connection clients
cost O(1) (~20% less CPU per request at 16 workers). They share one SSL context, which is
the expensive part of making a client.
"""

from __future__ import annotations

from typing import Any

import httpx

from .client import AsyncMistralClient


def single_connection_clients(count: int, **settings: Any) -> list[AsyncMistralClient]:
    """``count`` AsyncMistralClients with the same ``settings`` (api_key, base_url, model,
    timeout, max_retries, dialect), each with its own one-connection HTTP client."""
    tls = httpx.create_ssl_context()
    timeout = AsyncMistralClient(**settings)._timeout()
    one = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    return [
        AsyncMistralClient(
            **settings, http_client=httpx.AsyncClient(timeout=timeout, verify=tls, limits=one)
        )
        for _ in range(max(1, count))
    ]
