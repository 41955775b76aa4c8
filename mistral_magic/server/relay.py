"""Tool calls of the sidebar, relayed to the browser: the server runs the tool loop (it owns
the conversation, the client and the history) and each call is run where the notebook is.

Why the browser: the notebook's kernel and its model belong to the browser's session — the
kernel tools run there as a silent execution (``mistral_magic.kernel_entry``), and agent
tools that edit the notebook (issue #14) can only run where the notebook model lives.

The contract (all under ``{base_url}mistral-magic/``):

1. The chat stream emits ``tool_call``: ``{"request_id", "call_id", "name", "arguments"
   (object), "signature", "round", "runner", "timeout_ms", "max_chars"}``. ``runner`` says
   which of the browser's handlers runs it (``kernel``: the notebook's kernel); ``call_id``
   is unique within the request.
2. The browser runs it and POSTs ``tool_result`` (XSRF-checked, body bounded by
   ``MistralServer.tool_result_bytes``): ``{"request_id", "call_id", "status": "ok" |
   "error" | "declined", "result": text}``. The answer is ``{"accepted": bool}``: false when
   nothing waits for that call any more (timed out, stopped, answered already).
3. The server waits at most the question's tool time that is left (``Mistral.
   max_tool_seconds``); a timeout becomes an error result for the model, never a hang. A
   browser that leaves stops the answer (like Stop), which stops the wait.
4. Each finished call (and each one not run) is reported on the stream as ``tool_result``:
   ``{"call_id", "name", "signature", "status", "result", "seconds", "round"}`` — the text
   the model reads: redacted with the server's redactor too, cut to ``Mistral.
   tool_result_chars``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from mistral_magic.tools.agent import AGENT_RUNNER, agent_result_text
from mistral_magic.tools.core import BUILTIN_NAMES, Tool, Toolbox, result_text

if TYPE_CHECKING:
    from mistral_magic.api.types import ToolCall
    from mistral_magic.context.redact import Redactor
    from mistral_magic.engine.tool_loop import ToolEvent, ToolLimits, ToolStatus

#: The browser's handler for the tools the kernel listed.
KERNEL_RUNNER = "kernel"
#: What the browser may report for a call.
STATUSES = ("ok", "error", "declined")
Key = tuple[str, str, str]  # (user, request id, call id)
Emit = Callable[[str, dict[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class Outcome:
    """What the browser reported for one relayed call."""

    status: ToolStatus
    result: str


class PendingCalls:
    """Relayed calls waiting for their result, by (user, request id, call id): a result
    only reaches a call of the same user, and only while it is awaited."""

    def __init__(self) -> None:
        self._waiting: dict[Key, asyncio.Future[Outcome]] = {}

    def expect(self, key: Key) -> asyncio.Future[Outcome]:
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._waiting[key] = future
        return future

    def deliver(self, key: Key, outcome: Outcome) -> bool:
        """Hand ``outcome`` to the call waiting under ``key``; False if none is."""
        future = self._waiting.pop(key, None)
        if future is None or future.done():
            return False
        future.set_result(outcome)
        return True

    def forget(self, key: Key) -> None:
        self._waiting.pop(key, None)

    def __len__(self) -> int:
        return len(self._waiting)


def kernel_toolbox(definitions: list[dict[str, Any]]) -> Toolbox:
    """The tools the kernel listed, as a toolbox whose functions are never called here
    (:class:`RelayedTools` sends each call to the browser)."""
    tools = {}
    for entry in definitions:
        function = entry["function"]
        name = function["name"]
        tools[name] = Tool(
            name=name,
            description=function.get("description", ""),
            parameters=function["parameters"],
            function=_not_here,
            builtin=name in BUILTIN_NAMES,
        )
    return Toolbox(tools)


def _invalid_arguments(tool: Tool | None, call: ToolCall) -> str | None:
    """Why the arguments do not fit a tool defined here (the agent's: the browser then
    gets well-typed ones), or None. The kernel's tools are checked in the kernel."""
    if tool is None or tool.spec is None:
        return None
    from pydantic import ValidationError

    try:
        tool.spec.bind(dict(call.arguments))
    except ValidationError as exc:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ())) or "arguments"
        return f"Error: invalid arguments for {tool.name}: {where}: {first.get('msg', exc)}."
    return None


def _not_here(**_: Any) -> Any:
    raise RuntimeError("a relayed tool runs in the browser, not in the server")


class RelayedTools:
    """The :class:`~mistral_magic.engine.tool_loop.AsyncToolExecutor` of the sidebar: each
    call goes to the browser as a ``tool_call`` event and its result comes back through
    ``POST tool_result`` (see the module's contract)."""

    def __init__(
        self,
        toolbox: Toolbox,
        pending: PendingCalls,
        *,
        user: str,
        request_id: str,
        emit: Emit,
        redactor: Redactor | None = None,
        runners: dict[str, str] | None = None,
    ) -> None:
        self.toolbox = toolbox
        self.pending = pending
        self.user = user
        self.request_id = request_id
        self.emit = emit
        self.redactor = redactor
        self.runners = runners or {}  # tool name -> runner; default: the kernel

    @staticmethod
    def call_id(event: ToolEvent) -> str:
        """The relay's id of a call: the model's ids may repeat across rounds."""
        return f"r{event.round}-{event.call_id}"

    async def run(self, call: ToolCall, event: ToolEvent, limits: ToolLimits) -> ToolEvent:
        status: ToolStatus = "error"
        seconds = 0.0
        if self.toolbox.get(call.name) is None:
            offered = ", ".join(self.toolbox.names())
            text = f"Error: there is no tool named {call.name!r}. The tools are: {offered}."
        elif not call.arguments_valid:
            raw = call.raw_arguments[:200]
            text = f"Error: the arguments are not a JSON object ({raw!r}). Call the tool again."
        elif (problem := _invalid_arguments(self.toolbox.get(call.name), call)) is not None:
            text = problem
        else:
            started = time.perf_counter()
            status, text = await self._relay(call, event, limits)
            seconds = time.perf_counter() - started
            if self.runners.get(call.name) == AGENT_RUNNER:
                text = agent_result_text(call.name, text)
        # The kernel redacted with its own secrets; the server's (the API key) on top.
        text = result_text(text, max_chars=limits.result_chars, redactor=self.redactor)
        return replace(event, status=status, result=text, seconds=seconds)

    async def _relay(
        self, call: ToolCall, event: ToolEvent, limits: ToolLimits
    ) -> tuple[ToolStatus, str]:
        call_id = self.call_id(event)
        key = (self.user, self.request_id, call_id)
        waiting = self.pending.expect(key)
        timeout = max(limits.max_seconds, 0.0)
        try:
            await self.emit(
                "tool_call",
                {
                    "request_id": self.request_id,
                    "call_id": call_id,
                    "name": call.name,
                    "arguments": call.arguments,
                    "signature": event.signature,
                    "round": event.round,
                    "runner": self.runners.get(call.name, KERNEL_RUNNER),
                    "timeout_ms": round(timeout * 1000),
                    "max_chars": limits.result_chars,
                },
            )
            outcome = await asyncio.wait_for(waiting, timeout)
        except asyncio.TimeoutError:
            return "error", (
                f"Error: the notebook did not return this tool's result within {timeout:.1f} s "
                "(the kernel may be busy; Mistral.max_tool_seconds bounds tool time). "
                "Answer with what you have, or say what you could not check."
            )
        finally:
            self.pending.forget(key)
        return outcome.status, outcome.result
