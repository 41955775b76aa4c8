"""mistral-magic: Mistral Large 2 in Jupyter.

``%load_ext mistral_magic`` registers the ``%%mistral`` / ``%mistral`` magics. Everything
heavy (pandas, mistral-common, ipywidgets, httpx clients) is imported where it is used.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def load_ipython_extension(ipython: Any) -> None:
    from .magics import load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    from .magics import unload

    unload(ipython)


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """The prebuilt JupyterLab extension shipped in the wheel (labextension/ sources)."""
    return [{"src": "labextension", "dest": "mistral-magic"}]


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    """The jupyter_server extension behind the sidebar (``mistral_magic.server``)."""
    return [{"module": "mistral_magic.server"}]


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """The prebuilt JupyterLab extension shipped in the wheel (labextension/ sources)."""
    return [{"src": "labextension", "dest": "mistral-magic"}]


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    """The jupyter_server extension behind the sidebar (``mistral_magic.server``)."""
    return [{"module": "mistral_magic.server"}]
