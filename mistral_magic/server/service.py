"""The server extension's engine: settings, one reused async client, and a request payload
turned into context items, chips and a :class:`PreparedRequest` (via the shared conversation
code: the same packing and redaction as the magics)."""

from __future__ import annotations

import asyncio
import os
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from mistral_magic.config import Mistral
from mistral_magic.context.items import KIND_CELL, ContextItem
from mistral_magic.context.notebook import collect_notebook, variable_items
from mistral_magic.context.redact import Redactor
from mistral_magic.engine.prepare import Conversation, PreparedRequest, build_request
from mistral_magic.engine.usage import estimate_cost, format_cost
from mistral_magic.server.payload import ChatPayload

if TYPE_CHECKING:
    from mistral_magic.api.client import AsyncMistralClient
    from mistral_magic.api.types import Usage

NOTEBOOK_CHIP = "notebook"


@dataclass(frozen=True)
class Chip:
    """One removable chip in the sidebar: an item, or all cell items as "notebook"."""

    id: str
    label: str
    kind: str
    items: tuple[str, ...]  # labels of the items behind the chip, as the model sees them
    state: str  # "included" | "partial" | "omitted"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "label": self.label,
            "kind": self.kind,
            "items": list(self.items),
            "state": self.state,
        }


def chip_id(item: ContextItem) -> str:
    return NOTEBOOK_CHIP if item.kind == KIND_CELL else item.key


def chips_for(items: Sequence[ContextItem], prepared: PreparedRequest | None) -> list[Chip]:
    """Chips in item order; cell items share one "notebook · N cells" chip."""
    included = {i.key for i in prepared.packed.included} if prepared and prepared.packed else set()
    truncated = set(prepared.packed.truncated) if prepared and prepared.packed else set()
    groups: dict[str, list[ContextItem]] = {}
    for item in items:
        groups.setdefault(chip_id(item), []).append(item)
    chips = []
    for cid, members in groups.items():
        inside = [m for m in members if m.key in included]
        whole = [m for m in inside if m.key not in truncated]
        if len(whole) == len(members):
            state = "included"
        elif inside:
            state = "partial"
        else:
            state = "omitted"
        if cid == NOTEBOOK_CHIP:
            n = len(members)
            label = f"notebook · {n} cell{'s' if n != 1 else ''}"
        else:
            label = members[0].label
        chips.append(
            Chip(cid, label, members[0].kind, tuple(m.label for m in inside or members), state)
        )
    return chips


def _host(url: str) -> str:
    """Scheme and host of a URL, without any credentials or path."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}" if host else ""


class MistralService:
    """Built once per server; shared by all handlers."""

    def __init__(self, settings: Mistral) -> None:
        self.settings = settings
        self._client: AsyncMistralClient | None = None
        self.running: dict[str, asyncio.Task[Any]] = {}
        self._cancelled: weakref.WeakSet[asyncio.Task[Any]] = weakref.WeakSet()

    def cancel(self, task: asyncio.Task[Any] | None) -> bool:
        """Cancel a running answer once. (Stop both aborts the fetch and posts chat/cancel; a
        second cancel would interrupt the first one's cleanup and leak the upstream
        connection.)"""
        if task is None or task.done() or task in self._cancelled:
            return False
        self._cancelled.add(task)
        task.cancel()
        return True

    # -- the client ------------------------------------------------------------------------
    @property
    def client(self) -> AsyncMistralClient:
        """One client for the server process; settings that follow the environment are read
        by the client at each request."""
        if self._client is None:
            from mistral_magic.api.client import AsyncMistralClient

            self._client = AsyncMistralClient(**self.settings.client_options())
        return self._client

    async def close(self) -> None:
        for task in list(self.running.values()):
            self.cancel(task)
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    @staticmethod
    def key_configured() -> bool:
        return bool(os.environ.get("MISTRAL_API_KEY"))

    async def public_config(self) -> dict[str, Any]:
        """What the browser may know: never the key, only whether there is one. The dialect
        in effect comes with its reason ("from /models: owned_by vllm")."""
        s = self.settings
        choice = await self.client.resolve_dialect()
        return {
            "model": s.model,
            "server": _host(s.base_url),
            "dialect": choice.dialect,
            "dialect_reason": choice.reason,
            "api_key_configured": self.key_configured(),
            "temperature": s.temperature,
            "max_tokens": s.max_tokens,
            "context_budget": s.context_budget,
            "history_budget": s.history_budget,
        }

    def redactor(self) -> Redactor:
        key = os.environ.get("MISTRAL_API_KEY")
        return Redactor.from_environment([key] if key else [])

    # -- requests --------------------------------------------------------------------------
    def items(self, payload: ChatPayload) -> list[ContextItem]:
        """Every context item the payload asks for, before the user's exclusions."""
        redactor = self.redactor()
        items = collect_notebook(
            payload.notebook,
            active_cell=payload.active_cell,
            selection=payload.selection,
            error_cell=payload.error_cell,
            sources=payload.sources,
            redactor=redactor,
        )
        if "vars" in payload.sources and payload.variables:
            items.extend(variable_items(payload.variables, redactor))
        items.sort(key=lambda item: item.priority)
        return items

    def prepare(
        self, payload: ChatPayload, conversation: Conversation | None
    ) -> tuple[PreparedRequest, list[Chip]]:
        items = self.items(payload)
        chosen = [i for i in items if chip_id(i) not in payload.exclude]
        s = self.settings
        params: dict[str, Any] = {
            "temperature": s.temperature if payload.temperature is None else payload.temperature,
            "top_p": s.top_p,
            "max_tokens": s.max_tokens,
        }
        prompt = self.redactor().redact(payload.prompt) if payload.prompt else ""
        prepared = build_request(
            prompt,
            model=payload.model or s.model,
            items=chosen,
            conversation=conversation if payload.remember else None,
            params={k: v for k, v in params.items() if v is not None},
            context_budget=s.context_budget
            if payload.context_budget is None
            else payload.context_budget,
            history_budget=s.history_budget,
        )
        return prepared, chips_for(chosen, prepared)

    def usage_json(self, model: str, usage: Usage | None) -> dict[str, Any]:
        if usage is None:
            return {"model": model, "cost": None, "cost_text": "usage not reported"}
        cost = estimate_cost(
            model, usage.prompt_tokens, usage.completion_tokens, self.settings.price
        )
        return {
            "model": model,
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens,
            "cost": cost,
            "cost_text": format_cost(cost),
        }
