"""The server extension's side of inline completion: which way to ask (Codestral's
fill-in-the-middle or the chat model), the request from the engine's one builder
(:func:`mistral_magic.engine.prepare.prepare_inline`), one request per editor, and each
user's inline usage (tokens and cost, in the user's :class:`~mistral_magic.session.Session`).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from mistral_magic.engine.clients import AsyncClients, codestral_options
from mistral_magic.engine.inline import InlineContext, InlineRoute, choose_route
from mistral_magic.engine.prepare import PreparedRequest, WireTarget, prepare_inline
from mistral_magic.engine.usage import format_cost

if TYPE_CHECKING:
    from mistral_magic.api.types import Usage
    from mistral_magic.server.service import MistralService


class InlineCompletions:
    """Built once per server, beside the :class:`MistralService` it uses."""

    def __init__(self, service: MistralService) -> None:
        self.service = service
        self.settings = service.settings
        #: Codestral's own server, when its key or base URL is given.
        self.codestral = AsyncClients(service.settings, codestral_options)
        #: The running request of each (user, editor): a new one replaces it.
        self.running: dict[tuple[str, str], asyncio.Task[Any]] = {}

    async def route(self) -> InlineRoute:
        """How to ask now (``GET /models`` is asked once per base URL, with the dialect)."""
        if self.settings.codestral_options() is not None:
            return choose_route(self.settings, None)
        # The one card source: the catalog read with the dialect (None for settings that
        # cannot work, e.g. a malformed base URL: the chat path says so when it asks).
        catalog = await self.service.catalog()
        if catalog is None:
            return choose_route(self.settings, None)
        declared = self.settings.model_capabilities
        return choose_route(
            self.settings, catalog.capabilities(self.settings.codestral_model, declared)
        )

    def pool(self, route: InlineRoute) -> AsyncClients:
        return self.codestral if route.codestral else self.service.clients

    async def prepare(self, context: InlineContext, route: InlineRoute) -> PreparedRequest:
        client = self.pool(route).current()
        target = WireTarget(client.base_url, "mistral")
        capabilities = None
        if route.mode == "chat":
            choice = await client.resolve_dialect()
            target = WireTarget(client.base_url, choice.dialect)
            # the chat model's card (a reasoning model is asked not to think)
            catalog = await self.service.catalog()
            if catalog is not None:
                declared = self.settings.model_capabilities
                capabilities = catalog.capabilities(route.model, declared)
        redactor = self.service.redactor()
        return prepare_inline(
            context,
            fim=route.mode == "fim",
            model=route.model,
            target=target,
            settings=self.settings,
            redactor=redactor,
            capabilities=capabilities,
        )

    def refusal(self, user: str, prepared: PreparedRequest) -> str:
        """Why ``prepared`` may not be sent, '' when it may: inline completions count toward
        ``Mistral.session_budget`` like every request, and past it nothing is sent. Ghost text
        has nowhere to ask, so ``Mistral.confirm_above`` is not asked here. Blocking (counts
        the prompt's tokens), and only with a budget set."""
        from mistral_magic.engine.guard import REFUSE

        if self.settings.session_budget is None:
            return ""
        check = self.service.session(user).check_budget(prepared)
        return check.reason if check.verdict == REFUSE else ""

    def replace(self, user: str, editor: str, task: asyncio.Task[Any]) -> None:
        """Run ``task`` as the editor's one request: the one it replaces is cancelled."""
        key = (user, editor)
        self.service.cancel(self.running.get(key))
        self.running[key] = task

    def done(self, user: str, editor: str, task: asyncio.Task[Any]) -> None:
        if self.running.get((user, editor)) is task:
            del self.running[(user, editor)]

    def record(self, user: str, model: str, usage: Usage | None) -> None:
        self.service.session(user).inline_usage.record(model, usage)

    def usage_json(self, user: str) -> dict[str, Any]:
        """This user's inline completions since the server started."""
        requests, prompt, completion, cost = self.service.session(user).inline_usage.totals()
        return {
            "requests": requests,
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "cost": cost,
            "cost_text": format_cost(cost),
        }

    async def status(self, user: str) -> dict[str, Any]:
        """What the browser may know: the way completions are asked and why, and the usage."""
        route = await self.route()
        return {
            "available": route.mode != "off",
            "mode": route.mode,
            "model": route.model,
            "reason": route.reason,
            "usage": self.usage_json(user),
        }

    async def close(self) -> None:
        for task in list(self.running.values()):
            self.service.cancel(task)
        await self.codestral.aclose()
