"""HTTP handlers under ``{base_url}mistral-magic/``.

Streaming protocol: server-sent events in the response to a POSTed ``fetch``
--------------------------------------------------------------------------------
``POST /mistral-magic/chat`` answers ``text/event-stream`` (events: :mod:`.events`). Why this
and not the alternatives:

* **EventSource (GET SSE)** cannot send a body (the notebook, the chosen context) nor the
  headers jupyter_server authenticates with; a POSTed ``fetch`` streams the same SSE framing
  through JupyterLab's ``ServerConnection``, which adds the token and XSRF header for us.
* **NDJSON** would work the same; SSE adds named events (delta / usage / error / done) at
  no cost, is the framing Mistral itself streams, and is readable in the browser devtools.
* **A websocket** needs its own origin / auth checks, a message protocol for request ids and
  cancellation, and reconnection logic; one question is one request, so plain HTTP fits.

Stop: the browser aborts the fetch (and, to be sure, ``POST chat/cancel``); the server sees the
connection close (``on_connection_close``) or the write fail, cancels the relay task, and
that closes the upstream request to Mistral. The stopped exchange is kept in the history.
New chat (``DELETE history``) cancels the user's running answers and forgets them: an answer
writes its exchange only into the history generation it was asked in (:mod:`.history`).

Request bodies are read as they arrive and capped at ``MistralServer.max_request_mb``: a larger
``Content-Length`` gets a 413 with the reason before any of the body is read (tornado's own
default would buffer up to 512 MB). Every handler is authenticated
(``@web.authenticated``) and authorized (``@authorized``, resource ``mistral-magic``) through
jupyter_server; POSTs go through its XSRF check; no CORS header is ever added here.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import re
import time
import uuid
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from tornado import web
from tornado.iostream import StreamClosedError

from mistral_magic.context.notebook import SELECTION_CHARS
from mistral_magic.server.agent import AgentBound, AgentTask, BoundedTools
from mistral_magic.server.events import encode_event
from mistral_magic.server.history import HistoryStore, conversation_from
from mistral_magic.server.payload import SELECTION_CHIP, ChatPayload, PayloadError, parse_payload
from mistral_magic.server.relay import STATUSES, Outcome, RelayedTools
from mistral_magic.server.service import Chip, MistralService
from mistral_magic.server.settings import MistralServer

if TYPE_CHECKING:
    from mistral_magic.api.async_client import AsyncChatStream, AsyncMistralClient
    from mistral_magic.api.types import Completion, Usage
    from mistral_magic.engine.prepare import PreparedRequest
    from mistral_magic.engine.tool_loop import ToolEvent

AUTH_RESOURCE = "mistral-magic"
_ANONYMOUS = re.compile(r"[0-9a-f]{32}")


def chips_json(chips: list[Chip], payload: ChatPayload) -> list[dict[str, Any]]:
    """The chips for the browser; a selection longer than what is sent says so (``note``)."""
    shown = []
    for chip in chips:
        data = chip.to_json()
        if chip.id == SELECTION_CHIP and payload.selection_chars > SELECTION_CHARS:
            data["note"] = f"first {SELECTION_CHARS:,} of {payload.selection_chars:,} characters"
        shown.append(data)
    return shown


@web.stream_request_body
class _Base(APIHandler):
    auth_resource = AUTH_RESOURCE
    _body: bytearray | None = None

    async def prepare(self) -> None:
        await super().prepare()
        if self.request.method not in ("POST", "PUT", "PATCH"):
            return
        limits: MistralServer = self.settings["mistral_magic_limits"]
        limit = self.max_body_bytes(limits)
        length = self.request.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > limit:
            raise web.HTTPError(413, self.too_large_message(limits, int(length)))
        # A chunked body past the limit is cut off by tornado (400, connection closed).
        self.request.connection.set_max_body_size(limit)
        self._body = bytearray()

    def max_body_bytes(self, limits: MistralServer) -> int:
        return limits.max_request_bytes

    def too_large_message(self, limits: MistralServer, size: int) -> str:
        return limits.too_large_message(size)

    def data_received(self, chunk: bytes) -> None:
        if self._body is not None:
            self._body += chunk

    @property
    def service(self) -> MistralService:
        return self.settings["mistral_magic_service"]

    @property
    def history(self) -> HistoryStore:
        return self.settings["mistral_magic_history"]

    @property
    def user_name(self) -> str:
        """Whose history: the user's name, or "anonymous" for jupyter_server's generated
        anonymous users (a random name per browser cookie on a single-user server, where
        everyone holding the token is the same person)."""
        user = self.current_user
        name = getattr(user, "username", None) or str(user)
        if _ANONYMOUS.fullmatch(name) and str(getattr(user, "name", "")).startswith("Anonymous"):
            return "anonymous"
        return name

    def body_json(self) -> Any:
        try:
            return json.loads(self._body or b"{}")
        except ValueError:
            raise web.HTTPError(400, "The request body is not valid JSON.") from None

    async def prepare_request(
        self, *, require_prompt: bool = True
    ) -> tuple[ChatPayload, PreparedRequest, list[Chip]]:
        """The checked body, the user's earlier turns and the request with its chips: one
        trip off the event loop (the body is a whole notebook, maybe megabytes of JSON, and
        packing it means tokenizing it)."""
        user = self.user_name
        target = await self.service.target()
        catalog = await self.service.catalog()  # the cards of that same GET /models

        def work() -> tuple[ChatPayload, PreparedRequest, list[Chip]]:
            payload = parse_payload(self.body_json(), require_prompt=require_prompt)
            conversation = conversation_from(self.history.load(user))
            return (payload, *self.service.prepare(payload, conversation, target, catalog))

        try:
            return await self.service.off_loop(work)
        except PayloadError as exc:
            raise web.HTTPError(400, str(exc)) from None


class ConfigHandler(_Base):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        try:
            config = await self.service.public_config()
        except ValueError as exc:  # a malformed MISTRAL_BASE_URL (a SettingsError)
            config = {"model": self.service.settings.model, "error": str(exc)}
            config["api_key_configured"] = self.service.key_configured()
        self.finish(json.dumps(config))


class HistoryHandler(_Base):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.finish(json.dumps({"entries": self.history.load(self.user_name)}))

    @web.authenticated
    @authorized
    async def delete(self) -> None:
        """New chat: forget the history and stop the user's running answers, at once (an
        answer still streaming cannot write the forgotten chat back: see :mod:`.history`)."""
        user = self.user_name
        self.history.clear(user)
        for (owner, _), task in list(self.service.running.items()):
            if owner == user:
                self.service.cancel(task)
        self.set_status(204)
        self.finish()


class ContextHandler(_Base):
    """``POST context``: the chips a question would carry, without asking anything."""

    @web.authenticated
    @authorized
    async def post(self) -> None:
        payload, prepared, chips = await self.prepare_request(require_prompt=False)
        self.finish(
            json.dumps(
                {
                    "chips": chips_json(chips, payload),
                    "model": prepared.model,
                    "prompt_tokens": prepared.prompt_tokens,
                    "note": prepared.context_note,
                }
            )
        )


class CancelHandler(_Base):
    @web.authenticated
    @authorized
    async def post(self) -> None:
        body = self.body_json()
        request_id = body.get("request_id") if isinstance(body, dict) else None
        task = (
            self.service.running.get((self.user_name, request_id))
            if isinstance(request_id, str)
            else None
        )
        self.service.cancel(task)
        self.finish(json.dumps({"cancelled": task is not None}))


class ToolResultHandler(_Base):
    """``POST tool_result``: the browser's result of a relayed tool call (contract:
    :mod:`.relay`). Late results (the wait timed out, the answer stopped) are not errors:
    ``{"accepted": false}``."""

    def max_body_bytes(self, limits: MistralServer) -> int:
        return limits.tool_result_bytes(self.service.settings.tool_result_chars)

    def too_large_message(self, limits: MistralServer, size: int) -> str:
        return (
            f"The tool result is {size:,} bytes, more than the "
            f"{self.max_body_bytes(limits):,} a result of Mistral.tool_result_chars "
            "characters can take."
        )

    @web.authenticated
    @authorized
    async def post(self) -> None:
        body = self.body_json()
        if not isinstance(body, dict):
            raise web.HTTPError(400, "The request body must be a JSON object.")
        request_id, call_id = body.get("request_id"), body.get("call_id")
        status, result = body.get("status"), body.get("result")
        if not isinstance(request_id, str) or not isinstance(call_id, str):
            raise web.HTTPError(400, "`request_id` and `call_id` must be strings.")
        if status not in STATUSES or not isinstance(result, str):
            raise web.HTTPError(
                400, f"`status` must be one of {', '.join(STATUSES)}, and `result` a string."
            )
        accepted = self.service.pending.deliver(
            (self.user_name, request_id, call_id), Outcome(status, result)
        )
        self.finish(json.dumps({"accepted": accepted}))


class EventStream(_Base):
    """A route that answers with server-sent events from one task (``_task``): the browser
    leaving cancels the task (and so the upstream request), and a send after it left raises
    ``CancelledError`` so the task unwinds where it is."""

    _task: asyncio.Task[Any] | None = None
    _closed = False

    def on_connection_close(self) -> None:
        self._closed = True
        self.service.cancel(self._task)

    async def _send(self, name: str, data: dict[str, Any]) -> None:
        if self._closed:
            raise asyncio.CancelledError()
        self.write(encode_event(name, data))
        try:
            await self.flush()
        except StreamClosedError:
            self._closed = True
            raise asyncio.CancelledError() from None


class ChatHandler(EventStream):
    """``POST chat``: ask, and stream the answer back as server-sent events."""

    _upstream_wait = 0.0  # seconds spent waiting for the model server (for `done` timings)
    _tool_wait = 0.0  # seconds spent waiting for relayed tool calls (idem)
    _text = ""  # the answer's text so far, over every round of a tool loop
    _thinking = ""  # a reasoning model's: shown apart, kept in the history entry, never
    # part of the text the conversation sends back
    _spent = 0.0  # the user's spending when the cost guard cleared the question (USD)

    @web.authenticated
    @authorized
    async def post(self) -> None:
        self._started = time.perf_counter()
        self._sent: list[str] = []  # SHA-256 of each body POSTed, request by request
        self._rounds: list[Completion] = []  # the model's replies so far (a tool loop's)
        user = self.user_name
        # Taken before the history is read: a New chat from here on forgets this exchange.
        generation = self.history.generation(user)
        payload, prepared, chips = await self.prepare_request()
        request_id = payload.request_id or uuid.uuid4().hex

        # Each event is a small write: without TCP_NODELAY, Nagle's algorithm and the
        # browser's delayed ACK would hold many of them back for up to 40 ms.
        stream = getattr(self.request.connection, "stream", None)
        if stream is not None:
            stream.set_nodelay(True)
        self.set_header("Content-Type", "text/event-stream; charset=utf-8")
        self.set_header("Cache-Control", "no-cache, no-store")
        self.set_header("X-Accel-Buffering", "no")
        try:
            await self._send(
                "context",
                {
                    "request_id": request_id,
                    "model": prepared.model,
                    "prompt_tokens": prepared.prompt_tokens,
                    "chips": chips_json(chips, payload),
                    "note": prepared.context_note,
                    # the question as provenance records it (redacted, short): an agent
                    # task's cells carry it from their first change
                    "question": prepared.asked,
                },
            )
        except asyncio.CancelledError:  # the browser left before anything was asked
            return
        if not await self._cleared(prepared, payload):
            with contextlib.suppress(StreamClosedError):
                self.finish(set_content_type="text/event-stream; charset=utf-8")
            return
        try:  # a deprecated model, a figure sent as words: before the answer
            for line in self.service.session(user).notices(prepared):
                await self._send("notice", {"message": line, "kind": "info"})
        except asyncio.CancelledError:
            return
        user_entry = {
            "role": "user",
            "text": prepared.prompt,
            "chips": [c.label for c in chips if c.state != "omitted"],
            "notebook": payload.notebook_path,
        }
        registry_key = (user, request_id)
        self._task = asyncio.ensure_future(
            self._relay(
                prepared,
                payload,
                user_entry,
                generation if payload.remember else None,
                request_id,
            )
        )
        self.service.running[registry_key] = self._task
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        finally:
            self.service.running.pop(registry_key, None)
        with contextlib.suppress(StreamClosedError):
            self.finish(set_content_type="text/event-stream; charset=utf-8")

    async def _cleared(self, prepared: PreparedRequest, payload: ChatPayload) -> bool:
        """The cost guard, as in every face, before anything is sent: past
        ``Mistral.session_budget`` an ``error`` event (``CostRefused``); above
        ``Mistral.confirm_above`` and not yet confirmed, a ``confirm`` event with what the
        request holds and may cost (the browser asks, then sends the question again with
        ``confirmed: true``). Either way the stream ends with ``done`` and nothing is sent."""
        from mistral_magic.engine.guard import CONFIRM, REFUSE

        check = self.service.session(self.user_name).check_cost(prepared)
        try:
            if check.verdict == REFUSE:
                await self._send(
                    "error", {"message": check.reason, "type": "CostRefused", "partial": False}
                )
                await self._send("done", {"finish_reason": "refused"})
                return False
            if check.verdict == CONFIRM and not payload.confirmed:
                await self._send("confirm", check.to_json())
                await self._send("done", {"finish_reason": "confirm"})
                return False
        except asyncio.CancelledError:  # the browser left
            return False
        self._spent = check.spent  # a tool loop's further rounds are kept to the budget too
        return True

    async def _relay(
        self,
        prepared: Any,
        payload: ChatPayload,
        user_entry: dict[str, Any],
        generation: int | None,
        request_id: str,
    ) -> None:
        """Stream the answer to the browser (running the tool loop when the kernel's tools
        are offered); at the end, write the exchange into history generation
        ``generation`` (``None``: not remembered)."""
        from mistral_magic.api.errors import MistralError
        from mistral_magic.server.hints import for_server

        started = time.monotonic()
        reply: dict[str, Any] = {"role": "assistant", "text": "", "model": prepared.model}
        calls: list[dict[str, Any]] = []  # the tool calls, as the sidebar shows them
        # Leased for the whole reply: a settings change meanwhile does not close it.
        client = await self.service.clients.take()
        try:
            if prepared.toolbox:
                completion = await self._answer_with_tools(
                    client, prepared, request_id, calls, agent=payload.mode == "agent"
                )
            else:
                stream = await self.service.stream(client, prepared, on_notice=self._notice)
                completion = await self._relay_stream(stream)
            model = completion.model or prepared.model
            # The SHA-256 of the first body POSTed (with tools: the loop's first request, as
            # in a kernel). The usage into the user's ledger, and the reply's provenance (the
            # sidebar's Insert puts it into the new cell's metadata; the history entry keeps it).
            prepared.sent_sha256 = self._sent[0] if self._sent else ""
            record = self.service.record(self.user_name, prepared, completion)
            self._counted = True
            usage = self.service.usage_json(model, completion.usage, prepared.other_names)
            reply.update(text=self._text, model=model, usage=usage, provenance=record)
            await self._send("usage", usage)
            await self._send("provenance", record)
            total = time.perf_counter() - self._started
            await self._send(
                "done",
                {
                    "finish_reason": completion.finish_reason,
                    "seconds": time.monotonic() - started,
                    # this handler's own time, without the waits for the model server and
                    # for the tools the browser ran
                    "server_ms": round((total - self._upstream_wait - self._tool_wait) * 1000, 3),
                    "tool_ms": round(self._tool_wait * 1000, 3),
                },
            )
        except AgentBound as exc:
            # a bound ended the agent's task: said as the task's last word, no more requests
            task = self._agent
            assert task is not None
            reply.update(text=self._text, stopped=True)
            await self._send("notice", {"message": str(exc), "kind": "agent"})
            await self._send("agent", task.progress())
            usage = self._count_rounds(prepared)
            await self._send("usage", self.service.usage_json(prepared.model, usage))
            await self._send("done", {"finish_reason": "bound"})
        except MistralError as exc:
            # A tool loop's round or an agent step refused by Mistral.session_budget
            # (CostRefused), or a failed request: the rounds before it were paid.
            usage = self._count_rounds(prepared)
            message = for_server(exc, from_settings_editor=bool(payload.model))
            reply.update(text=self._text, error=message)
            self.log.info("mistral-magic: %s", type(exc).__name__)
            await self._send(
                "error",
                {"message": message, "type": type(exc).__name__, "partial": bool(self._text)},
            )
            if self._agent is not None:
                await self._send("agent", self._agent.progress())
            if usage is not None:
                await self._send(
                    "usage", self.service.usage_json(prepared.model, usage, prepared.other_names)
                )
            await self._send("done", {"finish_reason": "error"})
        except asyncio.CancelledError:
            reply.update(text=self._text, stopped=True)
            self._count_rounds(prepared)  # stopped: what was answered so far was paid
            raise
        except Exception as exc:  # a bug here: tell the user in one paragraph, log the rest
            redacted = self.service.redactor().redact(f"{type(exc).__name__}: {exc}")
            logging.getLogger("mistral_magic").exception("mistral-magic chat failed")
            reply.update(text=self._text, error=redacted)
            message = (
                f"The mistral-magic server extension failed while answering ({redacted}). "
                "The part received so far is kept; the Jupyter server log has the details."
            )
            await self._send(
                "error",
                {"message": message, "type": "InternalError", "partial": bool(self._text)},
            )
            await self._send("done", {"finish_reason": "error"})
        finally:
            await asyncio.shield(self.service.clients.give_back(client))
            if self._thinking:
                reply["thinking"] = self._thinking
            if calls:
                reply["tools"] = calls
            if self._agent is not None:
                # after a page reload the sidebar finds the task's totals (and, in the
                # tab's own storage, its Undo) by its request id
                reply["agent"] = {"request_id": request_id, **self._agent.progress()}
            if generation is not None:
                await asyncio.shield(
                    self.service.off_loop(
                        functools.partial(self.history.append, generation=generation),
                        self.user_name,
                        user_entry,
                        reply,
                    )
                )

    def _count_rounds(self, prepared: PreparedRequest) -> Usage | None:
        """Count the replies so far into the user's ledger when the answer ended without
        being recorded (a bound, a refusal, an error, a stop mid-loop), once; their usage."""
        from mistral_magic.api.types import Usage

        if self._counted or not self._rounds:
            return None
        self._counted = True
        usages = [c.usage for c in self._rounds if c.usage is not None]
        if not usages:
            usage = None
        else:
            usage = Usage(
                sum(u.prompt_tokens for u in usages),
                sum(u.completion_tokens for u in usages),
                sum(u.total_tokens for u in usages),
            )
        model = self._rounds[-1].model or prepared.model
        self.service.record_usage(self.user_name, prepared, model, usage)
        return usage

    def _notice(self, notice: Any) -> Any:
        return self._send("notice", {"message": notice.message, "kind": notice.kind})

    async def _relay_stream(self, stream: AsyncChatStream) -> Completion:
        """Relay one streamed reply's text and thinking as events; its completion."""
        deltas = stream.__aiter__()
        try:
            while True:
                waited = time.perf_counter()
                try:
                    delta = await deltas.__anext__()
                except StopAsyncIteration:
                    break
                finally:
                    self._upstream_wait += time.perf_counter() - waited
                if delta.thinking and delta.index == 0:
                    self._thinking += delta.thinking
                    await self._send("thinking", {"text": delta.thinking})
                if delta.text and delta.index == 0:
                    if self._text and not self._text.endswith("\n\n") and self._new_round:
                        # a new round's text starts a new paragraph, as in the magic
                        self._text += "\n\n"
                        await self._send("delta", {"text": "\n\n"})
                    self._new_round = False
                    self._text += delta.text
                    await self._send("delta", {"text": delta.text})
        finally:
            # closes the upstream response; shielded so that nothing interrupts it
            await asyncio.shield(deltas.aclose())
            if stream.request_sha256:
                self._sent.append(stream.request_sha256)
        return stream.completion

    _new_round = False
    _counted = False  # the answer's usage is in the user's ledger
    _agent: AgentTask | None = None  # Agent mode's task: its bounds and running totals

    async def _answer_with_tools(
        self,
        client: AsyncMistralClient,
        prepared: PreparedRequest,
        request_id: str,
        calls: list[dict[str, Any]],
        *,
        agent: bool = False,
    ) -> Completion:
        """The tool loop of :mod:`mistral_magic.engine.tool_loop`, each call relayed to the
        browser (:mod:`.relay`), each finished call reported as a ``tool_result`` event.
        ``agent``: an Agent mode task, its steps, time and cost bounded (:mod:`.agent`;
        a bound reached raises :class:`AgentBound`). Every round after the first (an agent
        step among them) is checked against ``Mistral.session_budget`` before it is sent
        (a refusal raises :class:`CostRefused`, nothing sent)."""
        from mistral_magic.engine.guard import round_guard
        from mistral_magic.engine.prepare import WireTarget
        from mistral_magic.engine.tool_loop import AsyncToolExecutor, arun_tool_loop
        from mistral_magic.tools.agent import AGENT_RUNNER, AGENT_TOOL_NAMES

        choice = await client.resolve_dialect()
        prepared.retarget(WireTarget(client.base_url, choice.dialect))
        assert prepared.toolbox is not None
        relayed = RelayedTools(
            prepared.toolbox,
            self.service.pending,
            user=self.user_name,
            request_id=request_id,
            emit=self._send,
            redactor=self.service.redactor(),
            runners=dict.fromkeys(AGENT_TOOL_NAMES, AGENT_RUNNER) if agent else None,
        )
        executor: AsyncToolExecutor = relayed
        limits = self.service.tool_limits()
        task: AgentTask | None = None
        if agent:
            task = self._agent = AgentTask(
                self.settings["mistral_magic_limits"], self.service.settings, prepared.model
            )
            executor = BoundedTools(relayed, task)
            # The task's own bounds replace the question's: one more round than steps (the
            # step bound ends the task first), the task's wall time for tool waits.
            limits = replace(limits, max_rounds=task.max_steps + 1, max_seconds=task.max_seconds)

        # Each further round is checked against Mistral.session_budget before it is sent,
        # as in a kernel (the first one was, by _cleared).
        guard = round_guard(
            self.service.settings,
            prepared.model,
            self._spent,
            window=prepared.window,
            also=prepared.other_names,
            loop="the agent task" if agent else "the tool loop",
        )
        done = self._rounds

        async def send(messages: list[dict[str, Any]], params: dict[str, Any], lead: str) -> Any:
            if task is not None and task.requests:
                task.before_request()
            if guard is not None and done:  # counts tokens: off the event loop
                request = {"model": prepared.model, **params}
                await self.service.off_loop(guard, messages, request, list(done))
            self._new_round = True
            stream = client.stream(messages, on_notice=self._notice, model=prepared.model, **params)
            completion = await self._relay_stream(stream)
            done.append(completion)
            if task is not None:
                task.add_usage(completion.model or prepared.model, completion.usage)
                await self._send("agent", task.progress())
            return completion

        async def on_tool(event: ToolEvent) -> None:
            if not event.done:  # a relayed call announces itself (the tool_call event)
                return
            self._tool_wait += event.seconds
            shown = {
                "call_id": relayed.call_id(event),
                "name": event.name,
                "signature": event.signature,
                "status": event.status,
                "result": event.result,
                "seconds": round(event.seconds, 3),
                "round": event.round,
            }
            calls.append(shown)
            await self._send("tool_result", shown)
            if task is not None:
                await self._send("agent", task.progress())

        result = await arun_tool_loop(
            send,
            prepared.messages,
            executor,
            params=prepared.params,
            limits=limits,
            on_tool=on_tool,
        )
        prepared.tool_events = result.events
        prepared.tool_note = result.note
        if result.note:
            await self._send("notice", {"message": result.note, "kind": "tools"})
        return result.completion
