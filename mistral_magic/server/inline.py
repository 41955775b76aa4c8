"""``{base_url}mistral-magic/complete``: inline completion (ghost text) for the labextension.

``GET complete`` says whether and how completions are asked (``mode``: ``fim`` / ``chat`` /
``off``, the model, the reason) and this user's inline usage. ``POST complete`` takes the
code around the cursor (:mod:`.inline_payload`) and streams the insertion back as
server-sent events, like ``chat``: ``delta`` (text to insert, in order), ``usage`` (this
request's and, under ``session``, the user's totals), ``error`` (type ``CostRefused`` before
anything is sent past ``Mistral.session_budget``: inline completions count toward it),
``done`` (with ``server_ms``, this handler's own time, and ``upstream_ms``, the wait for the
model server's first text).

One request per editor: a new one for the same ``editor`` cancels the one running. The
browser aborts its fetch when the user types on; the server sees the connection close, and
cancelling the relay closes the upstream request. Authenticated, authorized and
XSRF-checked like every handler here; the key never leaves the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time

from jupyter_server.auth.decorator import authorized
from tornado import web
from tornado.iostream import StreamClosedError

from mistral_magic.engine.inline import InlineContext, InlineRoute, InsertionCut, thought_only
from mistral_magic.engine.prepare import PreparedRequest
from mistral_magic.server.handlers import EventStream
from mistral_magic.server.inline_payload import parse_inline_payload
from mistral_magic.server.inline_service import InlineCompletions
from mistral_magic.server.payload import PayloadError
from mistral_magic.server.settings import MB

#: A completion request holds code, not notebooks: larger bodies are refused unread.
MAX_BODY_BYTES = 2 * 1024 * 1024


class CompleteHandler(EventStream):
    """``GET complete``: the route's status; ``POST complete``: one completion as events."""

    @property
    def inline(self) -> InlineCompletions:
        return self.settings["mistral_magic_inline"]

    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.finish(json.dumps(await self.inline.status(self.user_name)))

    async def prepare(self) -> None:
        await super().prepare()
        if self.request.method != "POST":
            return
        # Refused before the body is read, as the sidebar's routes are (the body arrives in
        # data_received): the smaller of this route's bound and MistralServer.max_request_mb.
        limit = min(MAX_BODY_BYTES, self.settings["mistral_magic_limits"].max_request_bytes)
        length = self.request.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > limit:
            raise web.HTTPError(
                413,
                f"An inline completion request holds at most {limit / MB:g} MB of code "
                f"(this one is {int(length) / MB:,.1f} MB).",
            )
        self.request.connection.set_max_body_size(limit)

    @web.authenticated
    @authorized
    async def post(self) -> None:
        self._started = time.perf_counter()
        try:
            payload = parse_inline_payload(self.body_json())
        except PayloadError as exc:
            raise web.HTTPError(400, str(exc)) from None
        route = await self.inline.route()
        stream = getattr(self.request.connection, "stream", None)
        if stream is not None:
            stream.set_nodelay(True)  # small events, sent at once (no Nagle delay)
        self.set_header("Content-Type", "text/event-stream; charset=utf-8")
        self.set_header("Cache-Control", "no-cache, no-store")
        self.set_header("X-Accel-Buffering", "no")
        user, editor = self.user_name, payload.editor or f"path:{payload.path}"
        self._task = asyncio.ensure_future(self._relay(payload.context, route))
        self.inline.replace(user, editor, self._task)
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        finally:
            self.inline.done(user, editor, self._task)
        with contextlib.suppress(StreamClosedError):
            self.finish()

    async def _relay(self, context: InlineContext, route: InlineRoute) -> None:
        from mistral_magic.api.errors import MistralError
        from mistral_magic.server.hints import for_server

        if route.mode == "off":
            await self._send("error", {"message": f"Inline completion is off: {route.reason}."})
            await self._send("done", {"finish_reason": "off"})
            return
        pool = self.inline.pool(route)
        client = await pool.take()
        deltas = None
        upstream = 0.0  # seconds waiting for the model server
        first_text_ms: float | None = None
        try:
            prepared: PreparedRequest = await self.inline.prepare(context, route)
            refusal = await self.service.off_loop(self.inline.refusal, self.user_name, prepared)
            if refusal:  # past Mistral.session_budget: nothing is sent
                await self._send("error", {"message": refusal, "type": "CostRefused"})
                await self._send("done", {"finish_reason": "refused"})
                return
            cut = (
                InsertionCut(context.line_prefix, context.suffix_head)
                if route.mode == "chat"
                else None
            )
            stream = prepared.open_stream(client)
            deltas = stream.__aiter__()
            while True:
                waited = time.perf_counter()
                try:
                    delta = await deltas.__anext__()
                except StopAsyncIteration:
                    break
                finally:
                    upstream += time.perf_counter() - waited
                if not delta.text or delta.index != 0:
                    continue
                text = cut.feed(delta.text) if cut is not None else delta.text
                if text:
                    if first_text_ms is None:
                        first_text_ms = round(upstream * 1000, 3)
                    await self._send("delta", {"text": text})
            inserted = first_text_ms is not None
            if cut is not None and (rest := cut.finish()):
                inserted = True
                await self._send("delta", {"text": rest})
            completion = stream.completion
            model = completion.model or prepared.model
            self.inline.record(self.user_name, model, completion.usage)
            usage = self.service.usage_json(model, completion.usage)
            usage["session"] = self.inline.usage_json(self.user_name)
            await self._send("usage", usage)
            # only the answer's text is inserted: a model that only thought gets a status
            status = thought_only(model, completion.finish_reason, completion.thinking, inserted)
            if status is not None:
                await self._send("error", {"message": status, "type": "ThoughtOnly"})
            total = time.perf_counter() - self._started
            await self._send(
                "done",
                {
                    "finish_reason": completion.finish_reason,
                    "mode": route.mode,
                    "server_ms": round((total - upstream) * 1000, 3),
                    "upstream_ms": first_text_ms,
                },
            )
        except MistralError as exc:
            self.log.info("mistral-magic inline completion: %s", type(exc).__name__)
            await self._send("error", {"message": for_server(exc), "type": type(exc).__name__})
            await self._send("done", {"finish_reason": "error"})
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug here: one paragraph to the user, the rest to the log
            redacted = self.service.redactor().redact(f"{type(exc).__name__}: {exc}")
            logging.getLogger("mistral_magic").exception("mistral-magic inline completion failed")
            message = (
                f"The mistral-magic server extension failed while completing ({redacted}); "
                "the Jupyter server log has the details."
            )
            await self._send("error", {"message": message, "type": "InternalError"})
            await self._send("done", {"finish_reason": "error"})
        finally:
            if deltas is not None:
                # closes the upstream response; shielded so that nothing interrupts it
                await asyncio.shield(deltas.aclose())
            await asyncio.shield(pool.give_back(client))
