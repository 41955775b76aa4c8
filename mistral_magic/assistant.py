"""The engine behind every face (magics, chat panel): settings, one reused client, the
conversation, usage, and turning a question plus the live notebook into a request."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any

from .config import Mistral
from .conversation import Conversation, PreparedRequest, build_request, expand_placeholders
from .usage import UsageLedger, estimate_cost, format_cost

if TYPE_CHECKING:
    from .api.client import MistralClient
    from .api.types import Completion
    from .context.items import ContextItem
    from .context.redact import Redactor

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

    # -- the HTTP client, built once and rebuilt only when its settings change --------------
    def _client_settings(self) -> tuple[Any, ...]:
        s = self.settings
        return (
            s.base_url,
            s.dialect,
            s.timeout,
            s.max_retries,
            os.environ.get("MISTRAL_API_KEY"),
        )

    @property
    def client(self) -> MistralClient:
        with self._lock:
            wanted = self._client_settings()
            if self._client is None or wanted != self._client_key:
                from .api.client import MistralClient

                if self._client is not None:
                    self._client.close()
                self._client = MistralClient(
                    base_url=self.settings.base_url,
                    model=self.settings.model,
                    timeout=self.settings.timeout,
                    max_retries=self.settings.max_retries,
                    dialect=self.settings.dialect,
                )
                self._client_key = wanted
            return self._client

    def warm_up(self) -> threading.Thread:
        """Pay the one-off costs (httpx import, CA bundle, tokenizer) in the background,
        so the first question does not."""

        def work() -> None:
            try:
                _ = self.client.http
                from .context.budget import warm_up

                warm_up()
            except Exception:  # a warm-up that fails only means the first call is slower
                pass

        thread = threading.Thread(target=work, name="mistral-magic-warm-up", daemon=True)
        thread.start()
        return thread

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

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
    ) -> PreparedRequest:
        """Build the request for ``prompt``: expand ``{name}``, collect and pack context."""
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
        prepared = build_request(
            text,
            model=model,
            items=self.collect(prompt, sources),
            conversation=self.conversation if remember else None,
            params={k: v for k, v in merged.items() if v is not None},
            context_budget=self.settings.context_budget if budget is None else budget,
            history_budget=self.settings.history_budget,
        )
        prepared.expanded = expanded
        return prepared

    def answer(self, prepared: PreparedRequest, on_text: TextCallback) -> Completion:
        """Send ``prepared`` and stream the reply, calling ``on_text`` with the text so far.

        Raises a ``MistralError`` (its ``.partial`` holds what arrived) or lets
        ``KeyboardInterrupt`` through; either way ``on_text`` has shown the partial text.
        """
        stream = self.client.stream(prepared.messages, model=prepared.model, **prepared.params)
        text = ""
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
        if prepared.context_note:
            parts.append(prepared.context_note)
        return " · ".join(parts)

    def record(self, prepared: PreparedRequest, completion: Completion, *, remember: bool) -> None:
        self.ledger.record(completion.model or prepared.model, completion.usage)
        if remember and completion.content:
            self.conversation.add(prepared.prompt, completion.content)
