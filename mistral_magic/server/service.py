"""The server extension's side of the engine: the settings, one async client for the whole
server process, a :class:`~mistral_magic.session.Session` per user, and a request payload
turned into context items, chips and a :class:`PreparedRequest` by the engine's one request
builder (:func:`mistral_magic.engine.prepare.prepare`: the same prompts, packing and
redaction as the magics).

Packing a notebook (tokenizing megabytes of cells) and reading or writing history are
blocking work: :meth:`MistralService.off_loop` runs them in a small thread pool so the
Jupyter server's event loop keeps answering every other request meanwhile."""

from __future__ import annotations

import asyncio
import functools
import os
import threading
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from mistral_magic.config import Mistral
from mistral_magic.context.items import KIND_CELL, ContextItem
from mistral_magic.context.notebook import collect_notebook, variable_items
from mistral_magic.context.redact import Redactor
from mistral_magic.engine.clients import AsyncClients
from mistral_magic.engine.conversation import Conversation
from mistral_magic.engine.instructions import CHIP_ID as INSTRUCTIONS_CHIP
from mistral_magic.engine.instructions import Instructions, load_instructions
from mistral_magic.engine.prepare import PreparedRequest, WireTarget, prepare
from mistral_magic.engine.prompts import AGENT_PROMPT, SYSTEM_PROMPT
from mistral_magic.engine.tool_loop import ToolLimits
from mistral_magic.engine.usage import estimate_cost, format_cost
from mistral_magic.server.payload import ChatPayload, PayloadError
from mistral_magic.server.relay import PendingCalls, kernel_toolbox
from mistral_magic.server.settings import MistralServer
from mistral_magic.session import Session

if TYPE_CHECKING:
    from mistral_magic.api.async_client import AsyncChatStream, AsyncMistralClient
    from mistral_magic.api.models import Capabilities, ModelCatalog
    from mistral_magic.api.retry import OnNotice
    from mistral_magic.api.types import Completion, Usage
    from mistral_magic.context.figures import Figure
    from mistral_magic.tools.core import Toolbox

NOTEBOOK_CHIP = "notebook"
#: Threads for blocking work (packing, history files): enough that a big notebook being
#: packed for one user does not hold up another's history read.
OFF_LOOP_WORKERS = 2
T = TypeVar("T")


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

    def __init__(
        self,
        settings: Mistral,
        server: MistralServer | None = None,
        root_dir: str | None = None,
    ) -> None:
        self.settings = settings
        self.server = server or MistralServer()
        self.pending = PendingCalls()  # tool calls relayed to a browser, awaiting results
        #: The Jupyter server's root: notebook paths from the browser are relative to it, and
        #: AGENTS.md is never looked for above it.
        self.root_dir = Path(root_dir).expanduser() if root_dir else None
        self.clients = AsyncClients(settings)  # one client for the whole server process
        self.running: dict[tuple[str, str], asyncio.Task[Any]] = {}  # (user, request id)
        self._cancelled: weakref.WeakSet[asyncio.Task[Any]] = weakref.WeakSet()
        self._sessions: dict[str, Session] = {}
        self._sessions_lock = threading.Lock()
        self._workers: ThreadPoolExecutor | None = None

    def session(self, user: str) -> Session:
        """``user``'s session: the server's settings and client, the user's usage."""
        with self._sessions_lock:
            found = self._sessions.get(user)
            if found is None:
                found = self._sessions[user] = Session(self.settings, clients=self.clients)
            return found

    async def off_loop(self, work: Callable[..., T], *args: Any) -> T:
        """Run blocking ``work(*args)`` in the service's threads, not on the event loop."""
        if self._workers is None:
            self._workers = ThreadPoolExecutor(
                max_workers=OFF_LOOP_WORKERS, thread_name_prefix="mistral-magic-server"
            )
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._workers, functools.partial(work, *args))

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
        """The current client, for what it knows (the dialect); answers lease it from
        :attr:`clients`, so a settings change never closes it under a reply. Settings that
        follow the environment are read by the client at each request."""
        return self.clients.current()

    async def close(self) -> None:
        for task in list(self.running.values()):
            self.cancel(task)
        await self.clients.aclose()
        if self._workers is not None:
            self._workers.shutdown(wait=False, cancel_futures=True)
            self._workers = None

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
            "tools": self.server.tools,
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
        self,
        payload: ChatPayload,
        conversation: Conversation | None,
        target: WireTarget,
        catalog: ModelCatalog | None = None,
    ) -> tuple[PreparedRequest, list[Chip]]:
        """The request and its chips (blocking: tokenizes the notebook, reads its figures;
        the handlers run it with :meth:`off_loop`). ``catalog``: the server's model cards,
        for what the model can do."""
        items = self.items(payload)
        chosen = [i for i in items if chip_id(i) not in payload.exclude]
        params = {} if payload.temperature is None else {"temperature": payload.temperature}
        model = payload.model or self.settings.model
        capabilities = (
            catalog.capabilities(model, self.settings.model_capabilities)
            if catalog is not None
            else None
        )
        toolbox, notes = self.toolbox(payload, model, capabilities)
        agent = payload.mode == "agent"
        if agent:
            from mistral_magic.tools.agent import agent_toolbox

            if not self.server.tools:
                raise PayloadError(
                    "Agent mode works through tools, and tools are off on this server "
                    "(c.MistralServer.tools)."
                )
            if notes:  # the model cannot call tools
                raise PayloadError(f"Agent mode needs a model that can call tools: {notes[0]}.")
            toolbox, _ = agent_toolbox(toolbox)
        prepared = prepare(
            payload.prompt,
            kind=payload.kind,
            error_count=_execution_count(payload.notebook, payload.error_cell),
            model=model,
            target=target,
            params=params,
            settings=self.settings,
            items=chosen,
            conversation=conversation if payload.remember else None,
            budget=payload.context_budget,
            redactor=self.redactor(),
            capabilities=capabilities,
            figures=self.figures(payload),
            toolbox=toolbox,
            notes=notes,
            system=AGENT_PROMPT if agent else SYSTEM_PROMPT,
            instructions=self.instructions(payload),
        )
        _ = prepared.prompt_tokens  # counted here, off the event loop
        chips = chips_for(chosen, prepared)
        if prepared.instructions:  # first: they lead the system message
            sources = ", ".join(prepared.instructions)
            label = f"instructions · {sources}"
            chips.insert(
                0,
                Chip(
                    INSTRUCTIONS_CHIP,
                    label,
                    "instructions",
                    tuple(prepared.instructions),
                    "included",
                ),
            )
        return prepared, chips

    def instructions(self, payload: ChatPayload) -> list[Instructions]:
        """``Mistral.instructions`` and the AGENTS.md nearest to the notebook, up to the
        server's root (blocking: reads a file); none when the user removed their chip for
        this question."""
        if INSTRUCTIONS_CHIP in payload.exclude:
            return []
        folder = self.root_dir
        if folder is not None and payload.notebook_path:
            # A path the browser sent: relative to the root, and never outside it
            # (find_agents_file looks at nothing outside the root).
            folder = (folder / payload.notebook_path.lstrip("/")).parent
        return load_instructions(
            self.settings, folder=folder, root=self.root_dir, redactor=self.redactor()
        )

    def toolbox(
        self, payload: ChatPayload, model: str, capabilities: Capabilities | None
    ) -> tuple[Toolbox | None, list[str]]:
        """The kernel's tools the browser sent, unless tools are off on this server
        (``MistralServer.tools``) or the model cannot call them (then a note says so)."""
        if not (payload.tools or payload.mode == "agent") or not self.server.tools:
            return None, []
        from mistral_magic.api.models import ModelCatalog

        caps = capabilities or ModelCatalog().capabilities(model)
        if not caps.function_calling:
            return None, [f"tools not offered: {model} cannot call tools"]
        return (kernel_toolbox(payload.tools) if payload.tools else None), []

    def tool_limits(self) -> ToolLimits:
        """The sidebar's tool bounds: the same settings as the magic's."""
        s = self.settings
        return ToolLimits(
            max_rounds=s.max_tool_rounds,
            max_seconds=s.max_tool_seconds,
            result_chars=s.tool_result_chars,
        )

    async def target(self) -> WireTarget:
        """Where answers go, in which dialect (``GET /models`` once per base URL). Settings
        that cannot work (a malformed base URL) give a placeholder here: sending then fails
        with the client's own message, as an ``error`` event of the chat stream."""
        from mistral_magic.api.errors import MistralError

        try:
            return await self.clients.target()
        except MistralError:
            return WireTarget("", "mistral")

    async def catalog(self) -> ModelCatalog | None:
        """The server's model cards (from the ``GET /models`` that told the dialect); None
        where the settings cannot work (the chat stream's error event says why)."""
        from mistral_magic.api.errors import MistralError

        try:
            return await self.clients.catalog()
        except MistralError:
            return None

    def figures(self, payload: ChatPayload) -> list[Figure]:
        """The figures the question names in the notebook (``In[7]``, "the plot above"),
        and those of the active cell while its chip is on."""
        from mistral_magic.context.figures import notebook_figures

        cells = payload.notebook.get("cells") or []
        if not isinstance(cells, list):
            return []
        active = "active" in payload.sources and "active" not in payload.exclude
        chosen = [payload.active_cell] if active and payload.active_cell is not None else []
        named = "cells" in payload.sources and NOTEBOOK_CHIP not in payload.exclude
        return notebook_figures(cells, payload.prompt if named else "", chosen=chosen)

    async def stream(
        self,
        client: AsyncMistralClient,
        prepared: PreparedRequest,
        on_notice: OnNotice | None = None,
    ) -> AsyncChatStream:
        """Send ``prepared`` with ``client`` (leased from :attr:`clients`): the body posted is
        ``prepared.body``, rebuilt first if the settings changed the server since."""
        choice = await client.resolve_dialect()
        prepared.retarget(WireTarget(client.base_url, choice.dialect))
        messages, params = prepared.send_arguments()
        return client.stream(messages, on_notice=on_notice, **params)

    def record(
        self, user: str, prepared: PreparedRequest, completion: Completion
    ) -> dict[str, Any]:
        """Count the usage in ``user``'s ledger (what their ``Mistral.session_budget`` is
        kept against), let the server's prompt token count for ``prepared`` correct our
        estimates for its model (as in a kernel: ``Session.record``), and return the reply's
        provenance."""
        from mistral_magic.engine.provenance import FACE_SIDEBAR

        # The sidebar's conversation is its history (remember=False: not the session's).
        return self.session(user).record(prepared, completion, remember=False, face=FACE_SIDEBAR)

    def record_usage(
        self, user: str, prepared: PreparedRequest, model: str, usage: Usage | None
    ) -> None:
        """Count usage that made no answer into ``user``'s ledger (the rounds of a tool loop
        or an agent task that ended early: they were paid, and count toward
        ``Mistral.session_budget``)."""
        self.session(user).record_usage(prepared, model, usage)

    def usage_json(
        self, model: str, usage: Usage | None, also: Sequence[str] = ()
    ) -> dict[str, Any]:
        if usage is None:
            return {"model": model, "cost": None, "cost_text": "usage not reported"}
        cost = estimate_cost(
            model,
            usage.prompt_tokens,
            usage.completion_tokens,
            lambda name: self.settings.price(name, also),
        )
        return {
            "model": model,
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens,
            "cost": cost,
            "cost_text": format_cost(cost),
        }


def _execution_count(notebook: dict[str, Any], index: int | None) -> int | None:
    """The execution count of cell ``index`` of the notebook JSON (the ``[7]`` an Explain
    names), if it has one."""
    cells = notebook.get("cells") or []
    if index is None or not 0 <= index < len(cells) or not isinstance(cells[index], dict):
        return None
    count = cells[index].get("execution_count")
    return count if isinstance(count, int) and not isinstance(count, bool) else None
