"""Settings of the server extension itself (the model settings are the ``Mistral`` traitlets).

Set them in ``jupyter_server_config.py``, e.g. ``c.MistralServer.max_request_mb = 64``.
"""

from __future__ import annotations

from typing import Any

from traitlets import Bool, Float, Int, TraitError, validate
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

    tools = Bool(
        True,
        help=(
            "Let the model call tools from the sidebar: the read-only notebook tools and the "
            "@tool functions of the notebook's kernel (a Python kernel with mistral_magic "
            "importable), run in that kernel. Bounded by Mistral.max_tool_rounds, "
            "Mistral.max_tool_seconds and Mistral.tool_result_chars. The sidebar has its "
            "own toggle (and a setting in the Settings Editor); False here turns tools off "
            "for every user of this server."
        ),
    ).tag(config=True)

    agent_max_steps = Int(
        25,
        help=(
            "Agent mode: the most tool calls one task may make (reads, inserts, edits, runs). "
            "The call past it is not run and the task ends with a message saying so."
        ),
    ).tag(config=True)

    agent_max_seconds = Float(
        600.0,
        help=(
            "Agent mode: the most wall time one task may take, in seconds: the model's "
            "replies, the user's approvals and the cells' runs together. Every wait of a task "
            "(an approval, a running cell) ends within it."
        ),
    ).tag(config=True)

    agent_max_cost = Float(
        0.50,
        help=(
            "Agent mode: the most estimated cost of one task in USD (Mistral.price rates). "
            "Checked before each model request; a model without a known price is not bounded "
            "by it (the task's running total then says the cost is unknown)."
        ),
    ).tag(config=True)

    @validate("max_request_mb", "agent_max_seconds", "agent_max_cost", "agent_max_steps")
    def _positive(self, proposal: dict[str, Any]) -> float:
        value = proposal["value"]
        if not value > 0:
            name = proposal["trait"].name
            raise TraitError(f"MistralServer.{name} must be above 0, got {value!r}.")
        return value

    @property
    def max_request_bytes(self) -> int:
        return int(self.max_request_mb * MB)

    @staticmethod
    def tool_result_bytes(result_chars: int) -> int:
        """Largest body ``POST tool_result`` accepts: a result of ``result_chars``
        characters, each at most 6 bytes once JSON-escaped, and room for the other fields."""
        return 6 * result_chars + 16 * 1024

    def too_large_message(self, size: int) -> str:
        return (
            f"The request is {size / MB:,.1f} MB, more than the {self.max_request_mb:g} MB the "
            "Mistral server extension accepts. Remove the notebook chip (or other context) and "
            "ask again, or raise the limit with c.MistralServer.max_request_mb in "
            "jupyter_server_config.py."
        )
