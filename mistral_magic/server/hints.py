"""What the sidebar adds to an API error: where to fix it from JupyterLab (the Jupyter
server's environment and config, the Settings Editor), not from a kernel."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mistral_magic.api.errors import MistralError

SETTINGS_EDITOR = "Settings → Settings Editor → Mistral"
SERVER_MODEL = (
    "MISTRAL_MODEL in the Jupyter server's environment, or c.Mistral.model in "
    "jupyter_server_config.py"
)


def for_server(error: MistralError, *, from_settings_editor: bool = False) -> str:
    """``error``'s message, followed by what to do about it from the sidebar.
    ``from_settings_editor``: the request's model was chosen in the Settings Editor (which
    then wins over the server's model, so that is where to change it)."""
    from mistral_magic.api import errors

    hint = ""
    if isinstance(error, errors.ModelNotFoundError):
        if from_settings_editor:
            hint = (
                f"The sidebar's model is set in {SETTINGS_EDITOR} → Model: choose one the "
                f"server offers there, or clear the field to use the server's ({SERVER_MODEL})."
            )
        else:
            hint = (
                f"It is the Jupyter server's model ({SERVER_MODEL}); the sidebar can use "
                f"another: {SETTINGS_EDITOR} → Model."
            )
    elif isinstance(error, errors.ContextLengthError):
        hint = (
            "Remove context chips (×) before asking, start a New chat, or lower the context "
            f"budget in {SETTINGS_EDITOR}."
        )
    elif isinstance(error, errors.MissingAPIKeyError | errors.AuthenticationError):
        hint = "Set MISTRAL_API_KEY in the environment of the Jupyter server and restart it."
    elif isinstance(error, errors.APITimeoutError):
        hint = "c.Mistral.timeout in jupyter_server_config.py waits longer."
    return f"{error} {hint}".strip()
