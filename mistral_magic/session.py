"""The engine behind every face (magics, chat panel): settings, one reused client, the
conversation, usage, and turning a question plus the live notebook into a request."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Collection, Sequence
from typing import TYPE_CHECKING, Any

from .config import Mistral
from .engine.prepare import (
    SYSTEM_PROMPT,
    TOOLS_PROMPT,
    Conversation,
    PreparedRequest,
    build_request,
    expand_placeholders,
)
from .engine.usage import UsageLedger, estimate_cost, format_cost

if TYPE_CHECKING:
    from .api.client import MistralClient
    from .api.retry import OnNotice
    from .api.types import Completion
    from .context.items import ContextItem
    from .context.redact import Redactor
    from .engine.tool_loop import Confirm, OnTool
    from .tools.core import Toolbox
    from .tools.notebook import NotebookTools

ALL_SOURCES = ("cells", "vars", "error")
TextCallback = Callable[[str], None]


class Assistant:
    def __init__(self, settings: Mistral, shell: Any = None) -> None:
        self.settings = settings
        self.shell = shell
        self.conversation = Conversation()
        self.ledger = UsageLedger(settings.price)
        self._client: MistralClient | None = None
        self._client_key: tuple[Any, ...] | None = None
        self._lock = threading.Lock()
        self._notebook_tools: NotebookTools | None = None

    # -- the HTTP client, built once and rebuilt only when its settings change --------------
    @property
    def client(self) -> MistralClient:
        """One client (one connection pool). Settings that follow the environment are read
        by the client at each request, so changing MISTRAL_BASE_URL or the key needs no new
        client; changing a ``%config Mistral`` setting makes one."""
        with self._lock:
            wanted = tuple(self.settings.client_options().items())
            if self._client is None or wanted != self._client_key:
                from .api.client import MistralClient

                if self._client is not None:
                    self._client.close()
                self._client = MistralClient(**dict(wanted))
                self._client_key = wanted
            return self._client

    def warm_up(self) -> threading.Thread:
        """Pay the one-off costs in the background, so the first question does not: the
        httpx import and the connection pool, the server's dialect (``GET /models``, asked
        once per base URL), the tokenizer."""

        def work() -> None:
            try:
                client = self.client
                _ = client.http
                client.resolve_dialect()
            except Exception:  # a warm-up that fails only means the first call is slower
                pass
            try:
                from .context.budget import warm_up

                warm_up()
            except Exception:
                pass

        thread = threading.Thread(target=work, name="mistral-magic-warm-up", daemon=True)
        thread.start()
        return thread

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    # -- requests ------------------------------------------------------------------------
    def redactor(self) -> Redactor:
        from .context.redact import Redactor

        key = os.environ.get("MISTRAL_API_KEY")
        return Redactor([key] if key else [])

    def collect(self, prompt: str, sources: Collection[str]) -> list[ContextItem]:
        if self.shell is None or not sources:
            return []
        from .context.kernel import collect

        return collect(self.shell, prompt, sources=tuple(sources), redactor=self.redactor())

    def prepare(
        self,
        prompt: str,
        *,
        sources: Collection[str] = ALL_SOURCES,
        budget: int | None = None,
        model: str | None = None,
        params: dict[str, Any] | None = None,
        remember: bool = True,
        extra_items: Collection[ContextItem] = (),
        tools: str | Sequence[str] | None = None,
    ) -> PreparedRequest:
        """Build the request for ``prompt``: expand ``{name}``, collect and pack context.

        ``extra_items`` (e.g. an error's context from :mod:`.faces.tracebacks`) are packed together
        with what ``sources`` collects, by priority; they replace collected items with the
        same key."""
        from .context.describe import describe
        from .context.redact import is_secret_name

        namespace = getattr(self.shell, "user_ns", {}) or {}
        visible = {k: v for k, v in namespace.items() if not is_secret_name(k)}
        redactor = self.redactor()
        text, expanded = expand_placeholders(prompt, visible, describe)
        text = redactor.redact(text)
        model = model or self.settings.model
        merged: dict[str, Any] = {
            "temperature": self.settings.temperature,
            "top_p": self.settings.top_p,
            "max_tokens": self.settings.max_tokens,
        }
        merged.update(params or {})
        toolbox = self._offer_tools(self.settings.tools if tools is None else tools, merged)
        if toolbox and budget is None:
            budget = min(self.settings.context_budget, self.settings.tools_context_budget)
        prepared = build_request(
            text,
            model=model,
            items=_merged(extra_items, self.collect(prompt, sources)),
            conversation=self.conversation if remember else None,
            params={k: v for k, v in merged.items() if v is not None},
            context_budget=self.settings.context_budget if budget is None else budget,
            history_budget=self.settings.history_budget,
            system_prompt=SYSTEM_PROMPT + TOOLS_PROMPT if toolbox else SYSTEM_PROMPT,
        )
        prepared.expanded = expanded
        prepared.toolbox = toolbox
        return prepared

    # -- tools ---------------------------------------------------------------------------
    def notebook_tools(self) -> NotebookTools:
        """The built-in notebook tools bound to this shell (made once)."""
        if self._notebook_tools is None:
            from .tools.notebook import NotebookTools

            self._notebook_tools = NotebookTools(self.shell, self.redactor())
        return self._notebook_tools

    def toolbox(self, names: str | Sequence[str] | None) -> Toolbox:
        """The tools named by ``--tools`` words: tool names, ``notebook``, ``all``, ``none``."""
        from .tools.core import Toolbox, select, split_names

        if not split_names(names):
            return Toolbox()
        builtins = self.notebook_tools().tools() if self.shell is not None else []
        return select(names, builtins)

    def _offer_tools(
        self, names: str | Sequence[str] | None, params: dict[str, Any]
    ) -> Toolbox | None:
        """Resolve the tools and put their specs (and a checked tool_choice) in ``params``."""
        choice = params.get("tool_choice")
        if not names and choice is None:
            return None
        from .tools.core import ToolSelectionError, check_tool_choice

        toolbox = self.toolbox(names)
        if not toolbox:
            if choice is not None:
                raise ToolSelectionError(
                    f"--tool-choice {choice} needs tools to choose from: add --tools."
                )
            return None
        params["tools"] = toolbox.to_wire()
        params["tool_choice"] = check_tool_choice(choice, toolbox)
        return toolbox

    def answer(
        self,
        prepared: PreparedRequest,
        on_text: TextCallback,
        on_tool: OnTool | None = None,
        confirm: Confirm | None = None,
        on_notice: OnNotice | None = None,
    ) -> Completion:
        """Send ``prepared`` and stream the reply, calling ``on_text`` with the text so far.

        With tools (``prepared.toolbox``), runs the tools the model calls, reporting each to
        ``on_tool`` as it starts and ends, asking ``confirm`` (default: ``input()``) before
        tools marked ``confirm=True``, until the model answers in text; the completion then
        holds the text of every round and the usage summed over them, and
        ``prepared.tool_events`` the calls.

        ``on_notice`` hears what the client waits for before a retry ("rate limited, retrying
        in 3 s"). Raises a ``MistralError`` (its ``.partial`` holds what arrived) or lets
        ``KeyboardInterrupt`` through; either way ``on_text`` has shown the partial text.
        """
        if not prepared.toolbox:
            return self._stream(
                prepared.messages, prepared.model, prepared.params, on_text, "", on_notice
            )
        from .engine.tool_loop import ToolLimits, run_tool_loop
        from .tools.notebook import tool_redactor

        limits = ToolLimits(
            max_rounds=self.settings.max_tool_rounds,
            max_seconds=self.settings.max_tool_seconds,
            result_chars=self.settings.tool_result_chars,
        )
        result = run_tool_loop(
            lambda messages, params, lead: self._stream(
                messages, prepared.model, params, on_text, lead, on_notice
            ),
            prepared.messages,
            prepared.toolbox,
            params=prepared.params,
            limits=limits,
            on_tool=on_tool,
            confirm=confirm,
            redactor=tool_redactor(self.shell, self.redactor()),
        )
        prepared.tool_events = result.events
        prepared.tool_note = result.note
        return result.completion

    def _stream(
        self,
        messages: list[dict[str, Any]],
        model: str,
        params: dict[str, Any],
        on_text: TextCallback,
        lead: str = "",
        on_notice: OnNotice | None = None,
    ) -> Completion:
        stream = self.client.stream(messages, model=model, on_notice=on_notice, **params)
        text = lead
        for delta in stream:
            if delta.text and delta.index == 0:
                text += delta.text
                on_text(text)
        return stream.completion

    def footer(self, prepared: PreparedRequest, completion: Completion) -> str:
        """One line under a reply: model, tokens, estimated cost, notes."""
        model = completion.model or prepared.model
        parts = [model]
        usage = completion.usage
        if usage is not None:
            parts.append(f"{usage.prompt_tokens:,} → {usage.completion_tokens:,} tokens")
            cost = estimate_cost(
                model, usage.prompt_tokens, usage.completion_tokens, self.settings.price
            )
            parts.append(format_cost(cost))
        if completion.finish_reason == "length":
            parts.append("reply cut at max_tokens")
        if prepared.tool_events:
            count = len(prepared.tool_events)
            parts.append(f"{count} tool call{'s' if count != 1 else ''}")
        if prepared.tool_note:
            parts.append(prepared.tool_note)
        if prepared.context_note:
            parts.append(prepared.context_note)
        return " · ".join(parts)

    def record(self, prepared: PreparedRequest, completion: Completion, *, remember: bool) -> None:
        self.ledger.record(completion.model or prepared.model, completion.usage)
        if remember and completion.content:
            self.conversation.add(prepared.prompt, completion.content)


def _merged(extra: Collection[ContextItem], collected: list[ContextItem]) -> list[ContextItem]:
    keys = {item.key for item in extra}
    return [*extra, *(item for item in collected if item.key not in keys)]
