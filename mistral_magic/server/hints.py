"""What the sidebar adds to an API error: where to fix it from JupyterLab (the Jupyter
server's environment, the Settings Editor), not from a kernel."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mistral_magic.api.errors import MistralError


def for_server(error: MistralError) -> str:
    """``error``'s message, followed by what to do about it from the sidebar."""
    from mistral_magic.api import errors

    hint = ""
    if isinstance(error, errors.ModelNotFoundError):
        hint = "Choose another model in Settings → Settings Editor → Mistral."
    elif isinstance(error, errors.MissingAPIKeyError):
        hint = "Set MISTRAL_API_KEY in the environment of the Jupyter server and restart it."
    elif isinstance(error, errors.APITimeoutError):
        hint = "c.Mistral.timeout in jupyter_server_config.py waits longer."
    return f"{error} {hint}".strip()
