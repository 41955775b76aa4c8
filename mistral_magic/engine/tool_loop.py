"""The tool-call loop: ask, run the tools the model calls, feed the results back, repeat.

Protocol rules kept here (mistral-api.md §1, §7): the assistant message with ``tool_calls`` is
sent back with ``content: ""`` (content xor tool calls), followed by exactly one ``tool``
message per call, in the calls' order, each with its ``tool_call_id``; every id sent back is 9
characters [a-zA-Z0-9] (others, e.g. ``call_…`` ids of OpenAI-style servers, are remapped
deterministically); the loop always ends on an assistant reply, so no user message ever
follows tool messages and the conversation stays user/assistant.

Bounds: at most ``max_rounds`` rounds of tool calls and ``max_seconds`` of tool run time per
question. When either is used up, the model is asked once more with ``tool_choice: "none"``
to answer with what it has. A forced ``tool_choice`` (``any`` or a tool name) applies to the
first request only; later rounds use ``auto``, or the model could never stop calling tools.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Awaitable, Callable, Generator, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal, Protocol

from ..api.types import Choice, Completion, ToolCall, Usage

if TYPE_CHECKING:
    from ..context.redact import Redactor
    from ..tools.core import Tool, Toolbox

ToolStatus = Literal["running", "ok", "error", "declined", "skipped"]

_WIRE_ID = re.compile(r"^[a-zA-Z0-9]{9}$")
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
ARGUMENT_CHARS = 60  # per argument value in the one-line display of a call


@dataclass(frozen=True)
class ToolEvent:
    """One tool call as the user sees it: reported when it starts and when it ends."""

    call_id: str
    name: str
    arguments: dict[str, Any]
    status: ToolStatus
    result: str = ""
    seconds: float = 0.0
    round: int = 1

    @property
    def signature(self) -> str:
        """``describe_variable(name="df")``"""
        return call_signature(self.name, self.arguments)

    @property
    def done(self) -> bool:
        return self.status != "running"


@dataclass(frozen=True)
class ToolLimits:
    max_rounds: int = 8
    max_seconds: float = 60.0
    result_chars: int = 4000


@dataclass
class ToolLoopResult:
    completion: Completion  # the visible text of every round; usage summed over the rounds
    events: list[ToolEvent] = field(default_factory=list)
    rounds: int = 0  # rounds in which tools ran
    note: str = ""  # why the loop stopped early, if it did


class ConfirmationUnavailable(Exception):
    """There is no way to ask the user (e.g. a notebook run without stdin)."""


Confirm = Callable[["Tool", ToolEvent], bool]
OnTool = Callable[[ToolEvent], None]
# (messages, request params, text already shown) -> the streamed completion of one request
Send = Callable[[list[dict[str, Any]], dict[str, Any], str], Completion]
AsyncSend = Callable[[list[dict[str, Any]], dict[str, Any], str], Awaitable[Completion]]
AsyncOnTool = Callable[[ToolEvent], Awaitable[None]]


def call_signature(name: str, arguments: dict[str, Any]) -> str:
    parts = []
    for key, value in arguments.items():
        text = json.dumps(value, ensure_ascii=False, default=str)
        if len(text) > ARGUMENT_CHARS:
            text = text[: ARGUMENT_CHARS - 1] + "…"
        parts.append(f"{key}={text}")
    return f"{name}({', '.join(parts)})"


def wire_id(call_id: str, round_number: int, index: int) -> str:
    """The id sent back to the server: as received if it fits ``^[a-zA-Z0-9]{9}$``, else
    the same 9 characters every time for the same call (base62 of a SHA-256)."""
    if _WIRE_ID.match(call_id or ""):
        return call_id
    digest = int.from_bytes(
        hashlib.sha256(f"{call_id}|{round_number}|{index}".encode()).digest(), "big"
    )
    chars = []
    for _ in range(9):
        digest, rest = divmod(digest, 62)
        chars.append(_BASE62[rest])
    return "".join(chars)


def ask_with_input(tool: Tool, event: ToolEvent) -> bool:
    """Ask on stdin: Jupyter shows an input box under the cell, a terminal reads a line.

    Not an ipywidgets Yes/No: while a cell runs, ipykernel (7.x) handles a button's comm
    message only after the cell has finished, so a blocking wait for the click never ends.
    """
    try:
        answer = input(f"Mistral wants to run {event.signature}. Allow? [y/N] ")
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # StdinNotImplementedError, EOFError, captured stdin…
        raise ConfirmationUnavailable(f"{type(exc).__name__}: {exc}") from None
    return answer.strip().lower() in ("y", "yes")


class ToolExecutor(Protocol):
    """Runs the tools the model calls and turns each outcome into the text the model reads.

    :class:`LocalTools` runs them in this process (the kernel's magics and chat panel); an
    executor for the Jupyter server can run them in a notebook's kernel instead."""

    def run(self, call: ToolCall, event: ToolEvent, limits: ToolLimits) -> ToolEvent:
        """Run ``call`` (``event`` is its "running" report) and return the finished event:
        status, the result text (redacted, at most ``limits.result_chars``), seconds.
        ``limits.max_seconds`` is what is left of the question's tool time."""
        ...


class AsyncToolExecutor(Protocol):
    """A :class:`ToolExecutor` whose calls are awaited: the Jupyter server's, which relays
    each call to the browser (and so to the notebook's kernel) and awaits the result."""

    async def run(self, call: ToolCall, event: ToolEvent, limits: ToolLimits) -> ToolEvent:
        """As :meth:`ToolExecutor.run`; ``limits.max_seconds`` is what is left of the
        question's tool time: waiting longer than that must end in an error result."""
        ...


class LocalTools:
    """The tools of a :class:`~mistral_magic.tools.core.Toolbox`, run here: arguments
    validated, ``confirm=True`` tools asked about (``confirm``, default ``input()``), every
    result redacted with ``redactor`` and cut to size."""

    def __init__(
        self,
        toolbox: Toolbox,
        *,
        confirm: Confirm | None = None,
        redactor: Redactor | None = None,
    ) -> None:
        self.toolbox = toolbox
        self.confirm = confirm or ask_with_input
        self.redactor = redactor

    def run(self, call: ToolCall, event: ToolEvent, limits: ToolLimits) -> ToolEvent:
        from ..tools.core import ToolArgumentsError, result_text

        tool = self.toolbox.get(call.name)
        status: ToolStatus = "error"
        seconds = 0.0
        if tool is None:
            offered = ", ".join(self.toolbox.names())
            text = f"Error: there is no tool named {call.name!r}. The tools are: {offered}."
        elif not call.arguments_valid:
            raw = call.raw_arguments[:200]
            text = f"Error: the arguments are not a JSON object ({raw!r}). Call the tool again."
        else:
            allowed, refusal = _confirmed(tool, event, self.confirm)
            if not allowed:
                status, text = "declined", refusal
            else:
                started = time.perf_counter()
                try:
                    value = tool.call(call.arguments)
                except ToolArgumentsError as exc:
                    text = f"Error: invalid arguments for {tool.name}: {exc}"
                except Exception as exc:
                    text = f"Error: {type(exc).__name__}: {exc}"
                else:
                    status = "ok"
                    text = result_text(value, max_chars=limits.result_chars, redactor=self.redactor)
                seconds = time.perf_counter() - started
        if status != "ok":
            text = result_text(text, max_chars=limits.result_chars, redactor=self.redactor)
        return replace(event, status=status, result=text, seconds=seconds)


@dataclass(frozen=True)
class _Ask:
    """Step: send ``messages`` with ``params`` (``lead``: the text already shown)."""

    messages: list[dict[str, Any]]
    params: dict[str, Any]
    lead: str


@dataclass(frozen=True)
class _Run:
    """Step: run ``call`` (``event`` is its "running" report); ``limits.max_seconds`` is
    what is left of the question's tool time."""

    call: ToolCall
    event: ToolEvent
    limits: ToolLimits


@dataclass(frozen=True)
class _Skip:
    """Step: report a call that is not run (the tool time is used up)."""

    event: ToolEvent


_Step = _Ask | _Run | _Skip


def _steps(
    messages: Sequence[dict[str, Any]], params: dict[str, Any], limits: ToolLimits
) -> Generator[_Step, Any, ToolLoopResult]:
    """The loop itself, without I/O: it yields what to do next and is sent the outcome (a
    :class:`Completion` for :class:`_Ask`, the finished :class:`ToolEvent` for
    :class:`_Run`). One loop for the kernel (:func:`run_tool_loop`, blocking) and the
    Jupyter server (:func:`arun_tool_loop`, on its event loop), so both keep the same
    protocol rules and bounds."""
    history = list(messages)
    texts: list[str] = []
    thoughts: list[str] = []  # a reasoning model's thinking, round by round (shown apart)
    usages: list[Usage] = []
    events: list[ToolEvent] = []
    rounds = 0
    tool_seconds = 0.0
    note = ""
    forced = params.get("tool_choice") not in (None, "auto", "none")
    completion: Completion | None = None
    for request_number in range(1, limits.max_rounds + 2):
        request_params = dict(params)
        if rounds >= limits.max_rounds or tool_seconds >= limits.max_seconds:
            request_params["tool_choice"] = "none"
            note = note or _limit_note(rounds, limits, tool_seconds)
        elif forced and request_number > 1:
            request_params["tool_choice"] = "auto"
        lead = "".join(f"{t}\n\n" for t in texts)
        completion = yield _Ask(history, request_params, lead)
        assert completion is not None
        if completion.usage is not None:
            usages.append(completion.usage)
        if completion.content.strip():
            texts.append(completion.content.strip())
        if completion.thinking.strip():
            thoughts.append(completion.thinking.strip())
        calls = completion.tool_calls
        if not calls:
            break
        if request_params.get("tool_choice") == "none":
            note = f"{note}; the model still asked for tools, which were not run".lstrip("; ")
            break
        rounds += 1
        ids = [wire_id(call.id, rounds, index) for index, call in enumerate(calls)]
        history.append(_assistant_message(calls, ids))
        for call, call_id in zip(calls, ids, strict=True):
            if tool_seconds >= limits.max_seconds:
                event = _skipped(call, call_id, rounds, limits)
                yield _Skip(event)
            else:
                running = ToolEvent(call_id, call.name, call.arguments, "running", round=rounds)
                left = replace(limits, max_seconds=limits.max_seconds - tool_seconds)
                event = yield _Run(call, running, left)
                tool_seconds += event.seconds
            events.append(event)
            history.append(_tool_message(call, call_id, event.result))
    assert completion is not None
    return ToolLoopResult(_merged(completion, texts, usages, thoughts), events, rounds, note)


def run_tool_loop(
    send: Send,
    messages: Sequence[dict[str, Any]],
    executor: ToolExecutor,
    *,
    params: dict[str, Any],
    limits: ToolLimits,
    on_tool: OnTool | None = None,
) -> ToolLoopResult:
    """Send ``messages`` and keep answering tool calls (run by ``executor``) until the
    model replies in text."""
    report = on_tool or (lambda event: None)
    steps = _steps(messages, params, limits)
    outcome: Any = None
    while True:
        try:
            step = steps.send(outcome)
        except StopIteration as finished:
            return finished.value
        if isinstance(step, _Ask):
            outcome = send(step.messages, step.params, step.lead)
        elif isinstance(step, _Run):
            report(step.event)
            outcome = executor.run(step.call, step.event, step.limits)
            report(outcome)
        else:
            report(step.event)
            outcome = None


async def arun_tool_loop(
    send: AsyncSend,
    messages: Sequence[dict[str, Any]],
    executor: AsyncToolExecutor,
    *,
    params: dict[str, Any],
    limits: ToolLimits,
    on_tool: AsyncOnTool | None = None,
) -> ToolLoopResult:
    """:func:`run_tool_loop` on an event loop: ``send``, ``executor.run`` and ``on_tool``
    are awaited (the Jupyter server relays each call to the browser and awaits its result
    without blocking other requests)."""
    steps = _steps(messages, params, limits)
    outcome: Any = None
    while True:
        try:
            step = steps.send(outcome)
        except StopIteration as finished:
            return finished.value
        if isinstance(step, _Ask):
            outcome = await send(step.messages, step.params, step.lead)
        elif isinstance(step, _Run):
            if on_tool is not None:
                await on_tool(step.event)
            outcome = await executor.run(step.call, step.event, step.limits)
            if on_tool is not None:
                await on_tool(outcome)
        else:
            if on_tool is not None:
                await on_tool(step.event)
            outcome = None


def _limit_note(rounds: int, limits: ToolLimits, tool_seconds: float) -> str:
    if rounds >= limits.max_rounds:
        plural = "s" if rounds != 1 else ""
        return f"stopped calling tools after {rounds} round{plural} (Mistral.max_tool_rounds)"
    return (
        f"stopped calling tools after {tool_seconds:.1f} s of tool time (Mistral.max_tool_seconds)"
    )


def _assistant_message(calls: Sequence[ToolCall], ids: Sequence[str]) -> dict[str, Any]:
    wire_calls = []
    for call, call_id in zip(calls, ids, strict=True):
        arguments = call.raw_arguments if call.arguments_valid and call.raw_arguments else None
        wire_calls.append(
            {
                "id": call_id,
                "type": "function",
                "function": {
                    "name": call.name,
                    "arguments": arguments or json.dumps(call.arguments, ensure_ascii=False),
                },
            }
        )
    return {"role": "assistant", "content": "", "tool_calls": wire_calls}


def _tool_message(call: ToolCall, call_id: str, result: str) -> dict[str, Any]:
    message = {"role": "tool", "tool_call_id": call_id, "content": result}
    if _NAME.match(call.name or ""):
        message["name"] = call.name
    return message


def _skipped(call: ToolCall, call_id: str, round_number: int, limits: ToolLimits) -> ToolEvent:
    return ToolEvent(
        call_id,
        call.name,
        call.arguments,
        "skipped",
        f"Not run: the time allowed for tools in one question ({limits.max_seconds:g} s) is "
        "used up. Answer with what you have.",
        round=round_number,
    )


def _confirmed(tool: Tool, event: ToolEvent, ask: Confirm) -> tuple[bool, str]:
    if not tool.confirm:
        return True, ""
    try:
        if ask(tool, event):
            return True, ""
    except ConfirmationUnavailable:
        return False, (
            "Not run: this tool needs the user's confirmation and there was no way to ask. "
            "Tell the user what you wanted to do instead."
        )
    return False, (
        "The user declined this call, so it was not run. Do not call it again for this "
        "request; continue without it or ask the user."
    )


def _merged(
    last: Completion, texts: list[str], usages: list[Usage], thoughts: list[str]
) -> Completion:
    usage = None
    if usages:
        usage = Usage(
            prompt_tokens=sum(u.prompt_tokens for u in usages),
            completion_tokens=sum(u.completion_tokens for u in usages),
            total_tokens=sum(u.total_tokens for u in usages),
        )
    choice = Choice(
        content="\n\n".join(texts),
        thinking="\n\n".join(thoughts),
        finish_reason=last.finish_reason,
    )
    return Completion(
        id=last.id, model=last.model, created=last.created, choices=[choice], usage=usage
    )
