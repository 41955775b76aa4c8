"""Async clients for a pool of workers: one connection each, one TLS context for all.

httpcore's connection pool checks every connection of the pool on each request, so a single
client shared by N concurrent workers costs O(N) per request; N single-connection clients
cost O(1) (~20% less CPU per request at 16 workers). They share the process's SSL context
(:func:`~mistral_magic.api.client_core.tls_context`), the expensive part of making a client.
"""

from __future__ import annotations

from typing import Any

from .async_client import AsyncMistralClient


def single_connection_clients(count: int, **settings: Any) -> list[AsyncMistralClient]:
    """``count`` AsyncMistralClients with the same ``settings`` (api_key, base_url, model,
    timeout, max_retries, dialect, ...), each with a pool of one connection."""
    return [AsyncMistralClient(**settings, max_connections=1) for _ in range(max(1, count))]
