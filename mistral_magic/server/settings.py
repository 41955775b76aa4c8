"""Settings of the server extension itself (the model settings are the ``Mistral`` traitlets).

Set them in ``jupyter_server_config.py``, e.g. ``c.MistralServer.max_request_mb = 64``.
"""

from __future__ import annotations

from typing import Any

from traitlets import Float, TraitError, validate
from traitlets.config import Configurable

MB = 1024 * 1024


class MistralServer(Configurable):
    """Bounds of the sidebar's server extension."""

    max_request_mb = Float(
        16.0,
        help=(
            "Largest request body (a question with its notebook context) the sidebar's "
            "endpoints accept, in MB. The browser sends the notebook's sources and text outputs "
            "(each output already cut to 20,000 characters), so real questions stay far below."
        ),
    ).tag(config=True)

    @validate("max_request_mb")
    def _positive(self, proposal: dict[str, Any]) -> float:
        value = proposal["value"]
        if not value > 0:
            raise TraitError(f"MistralServer.max_request_mb must be above 0, got {value!r}.")
        return value

    @property
    def max_request_bytes(self) -> int:
        return int(self.max_request_mb * MB)

    def too_large_message(self, size: int) -> str:
        return (
            f"The request is {size / MB:,.1f} MB, more than the {self.max_request_mb:g} MB the "
            "Mistral server extension accepts. Remove the notebook chip (or other context) and "
            "ask again, or raise the limit with c.MistralServer.max_request_mb in "
            "jupyter_server_config.py."
        )
