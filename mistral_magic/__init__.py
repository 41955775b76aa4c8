"""mistral-magic: Mistral Large 2 in Jupyter.

``%load_ext mistral_magic`` registers the ``%%mistral`` / ``%mistral`` magics. Everything
heavy (pandas, mistral-common, ipywidgets, httpx clients) is imported where it is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Public functions, imported on first use so `import mistral_magic` stays light.
_LAZY = {
    "apply": "mistral_magic.bulk.apply",
    "map": "mistral_magic.bulk.apply",
    "ApplyError": "mistral_magic.bulk.outcomes",
    "ApplyFailed": "mistral_magic.bulk.outcomes",
    "batch_results": "mistral_magic.bulk.batch",
    "cancel_batch": "mistral_magic.bulk.batch",
    "tool": "mistral_magic.tools",
    "chat": "mistral_magic.extension",
}

__all__ = [
    "ApplyError",
    "ApplyFailed",
    "apply",
    "batch_results",
    "cancel_batch",
    "chat",
    "load_ipython_extension",
    "map",
    "tool",
    "unload_ipython_extension",
]

if TYPE_CHECKING:
    from .bulk.apply import apply, map
    from .bulk.batch import batch_results, cancel_batch
    from .bulk.outcomes import ApplyError, ApplyFailed
    from .extension import chat
    from .tools import tool


def __getattr__(name: str) -> Any:
    home = _LAZY.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def load_ipython_extension(ipython: Any) -> None:
    from .extension import load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    from .extension import unload

    unload(ipython)


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """The prebuilt JupyterLab extension shipped in the wheel (labextension/ sources)."""
    return [{"src": "labextension", "dest": "mistral-magic"}]


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    """The jupyter_server extension behind the sidebar (``mistral_magic.server``)."""
    return [{"module": "mistral_magic.server"}]
