"""What the kernel faces add to an API error: their own way to fix it.

The api's messages name only settings and environment variables, the same for every face;
the kernel faces (magics, chat panel, error buttons) point at magic commands and options.
(The sidebar's hints, about the Jupyter server's environment and the Settings Editor, are in
``server/hints.py``.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..api.errors import MistralError


def for_notebook(error: MistralError) -> str:
    """``error``'s message, followed by what to do about it in a notebook."""
    from ..api import errors
    from ..engine.guard import CostRefused

    hint = ""
    if isinstance(error, errors.ModelNotFoundError):
        hint = (
            "`%mistral models` lists the models the server offers; pick one with `--model` or "
            '`%config Mistral.model = "..."`.'
        )
    elif isinstance(error, errors.ContextLengthError):
        hint = "Send less: a smaller `--budget`, `--no-context`, or `%mistral reset`."
    elif isinstance(error, errors.MissingAPIKeyError):
        hint = (
            "In the notebook, without saving the key in it: `import os, getpass; "
            'os.environ["MISTRAL_API_KEY"] = getpass.getpass()`.'
        )
    elif isinstance(error, errors.APITimeoutError):
        hint = "`%config Mistral.timeout = 300` waits longer."
    elif isinstance(error, errors.ReplyTooLongError):
        hint = "`%config Mistral.max_reply_chars = ...` moves the bound."
    elif isinstance(error, CostRefused):
        hint = "`%mistral usage` shows this session's spending."
    return f"{error} {hint}".strip()
