"""Agent mode's task on the server (issue #14): its bounds and running totals.

A task is one ``POST chat`` with ``mode: agent``: the engine's tool loop with the agent's
notebook tools (:mod:`mistral_magic.tools.agent`), relayed to the browser like any tool
(:mod:`.relay`; the browser asks the user before a run or an edit). This module only
counts: tool calls (steps), wall time and estimated cost, each bounded by a
``MistralServer`` setting. A bound reached raises :class:`AgentBound`: the handler ends the
task with its message, without another model request (so a scripted stub sees exactly the
task's requests).
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from mistral_magic.engine.usage import estimate_cost, format_cost

if TYPE_CHECKING:
    from mistral_magic.api.types import ToolCall, Usage
    from mistral_magic.config import Mistral
    from mistral_magic.engine.tool_loop import AsyncToolExecutor, ToolEvent, ToolLimits
    from mistral_magic.server.settings import MistralServer


class AgentBound(Exception):
    """A bound of the task was reached; ``str()`` is the message for the user."""


class AgentTask:
    """The running totals of one agent task, and its bounds."""

    def __init__(self, limits: MistralServer, settings: Mistral, model: str) -> None:
        self.max_steps = limits.agent_max_steps
        self.max_seconds = limits.agent_max_seconds
        self.max_cost = limits.agent_max_cost
        self.price = settings.price
        self.model = model
        self.started = time.monotonic()
        self.steps = 0
        self.requests = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.cost: float | None = 0.0

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started

    @property
    def seconds_left(self) -> float:
        return self.max_seconds - self.seconds

    def add_usage(self, model: str, usage: Usage | None) -> None:
        """One model reply's usage into the totals (its cost at that model's price)."""
        self.requests += 1
        if usage is None:
            return
        self.prompt_tokens += usage.prompt_tokens
        self.completion_tokens += usage.completion_tokens
        cost = estimate_cost(model, usage.prompt_tokens, usage.completion_tokens, self.price)
        self.cost = None if cost is None or self.cost is None else self.cost + cost

    def before_request(self) -> None:
        """Checked before each model request after the first."""
        if self.seconds_left <= 0:
            raise AgentBound(self._time_message())
        if self.cost is not None and self.cost >= self.max_cost:
            raise AgentBound(
                f"Stopped: the task's estimated cost ({format_cost(self.cost)}) reached its "
                f"bound of {format_cost(self.max_cost)} (MistralServer.agent_max_cost)."
            )

    def before_step(self) -> None:
        """Checked before each tool call is relayed."""
        if self.steps >= self.max_steps:
            raise AgentBound(
                f"Stopped: the task made its {self.max_steps} steps "
                "(MistralServer.agent_max_steps); the next one was not run."
            )
        if self.seconds_left <= 0:
            raise AgentBound(self._time_message())
        self.steps += 1

    def _time_message(self) -> str:
        return (
            f"Stopped: the task ran for its {self.max_seconds:g} s "
            "(MistralServer.agent_max_seconds)."
        )

    def usage(self) -> Usage | None:
        """The task's tokens so far (None before any reply reported usage)."""
        from mistral_magic.api.types import Usage

        if not self.requests:
            return None
        total = self.prompt_tokens + self.completion_tokens
        return Usage(self.prompt_tokens, self.completion_tokens, total)

    def progress(self) -> dict[str, Any]:
        """The ``agent`` event: the running totals the sidebar shows on the task."""
        return {
            "step": self.steps,
            "max_steps": self.max_steps,
            "requests": self.requests,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cost": self.cost,
            "cost_text": format_cost(self.cost),
            "max_cost_text": format_cost(self.max_cost),
            "seconds": round(self.seconds, 3),
            "max_seconds": self.max_seconds,
        }


class BoundedTools:
    """An executor around the relay that counts each call as a step of ``task`` and waits
    at most the task's time left (an approval the user never gives ends with the task)."""

    def __init__(self, inner: AsyncToolExecutor, task: AgentTask) -> None:
        self.inner = inner
        self.task = task

    async def run(self, call: ToolCall, event: ToolEvent, limits: ToolLimits) -> ToolEvent:
        self.task.before_step()
        left = min(limits.max_seconds, self.task.seconds_left)
        done = await self.inner.run(call, event, replace(limits, max_seconds=left))
        if self.task.seconds_left <= 0:
            raise AgentBound(self.task._time_message())
        return done
