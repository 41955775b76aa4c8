"""Settings and clients for a run: the session's ``Mistral`` settings when the shell has a
session (so ``%config Mistral.…`` applies), else the defaults and the environment."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..config import Mistral
from ..session import current_session

if TYPE_CHECKING:
    from ..api.async_client import AsyncMistralClient
    from ..api.client import MistralClient
    from ..api.dialect import DialectChoice


def current_settings() -> Mistral:
    """The settings of the running shell's session (``%config Mistral.…`` applies), else
    a fresh ``Mistral`` reading the config files and the environment."""
    session = current_session()
    if session is not None:
        return session.settings
    shell = _shell()
    return Mistral(parent=shell) if shell is not None else Mistral()


def _shell() -> Any:
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is a dependency
        return None
    return get_ipython()


def sync_client(settings: Mistral, model: str) -> MistralClient:
    """For files and batch jobs (and the dialect): the client's own retries on 429/5xx."""
    from ..api.client import MistralClient

    return MistralClient(**{**settings.client_options(), "model": model})


def async_clients(
    settings: Mistral, model: str, dialect: DialectChoice, count: int = 1
) -> list[AsyncMistralClient]:
    """For the concurrent pool, one per worker: no retries of their own (the pool backs off
    as a whole), one connection each, and the dialect the requests were planned in."""
    from ..api.workers import single_connection_clients

    options = {**settings.client_options(), "model": model, "max_retries": 0}
    return single_connection_clients(count, **{**options, "dialect": dialect})


def check_credentials(client: MistralClient) -> None:
    """Raise the client's MissingAPIKeyError now, before any estimate or confirmation."""
    client.check_credentials()


def in_notebook() -> bool:
    return getattr(_shell(), "kernel", None) is not None
