"""The exact request of every row: messages, parameters, the wire body and its cache key.

Rows whose requests are identical share one request when ``dedupe`` is on (it is whenever
the cache is: the same request would get the same cached reply anyway).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ..api.request import Dialect, build_chat_body
from ..engine.cache import request_key
from .structured import OutputSpec


@dataclass
class PlannedRequest:
    """One request to send. ``id`` is stable across its correction (``attempt`` 1)."""

    id: int
    messages: list[dict[str, Any]]
    params: dict[str, Any]  # every chat parameter, ``model`` included
    body: dict[str, Any]  # exactly what goes on the wire
    key: str  # the cache key of ``body``
    rows: list[int] = field(default_factory=list)  # positions of the rows it answers
    attempt: int = 0
    custom_id: str | None = None  # its line in a batch job, when not str(id)

    @property
    def batch_id(self) -> str:
        return self.custom_id if self.custom_id is not None else str(self.id)


@dataclass
class RequestFactory:
    """Builds requests the way the client will send them (same dialect, same body)."""

    base_url: str
    dialect: Dialect
    params: Mapping[str, Any]  # model included
    spec: OutputSpec
    system: str | None = None

    def messages(self, prompt: str) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        if self.system:
            messages.append({"role": "system", "content": self.system})
        messages.append({"role": "user", "content": self.spec.prompt(prompt)})
        return messages

    def build(
        self, request_id: int, messages: list[dict[str, Any]], attempt: int = 0
    ) -> PlannedRequest:
        params = dict(self.params)
        model = params.pop("model")
        body = build_chat_body(messages, params, model=model, dialect=self.dialect, stream=False)
        return PlannedRequest(
            id=request_id,
            messages=messages,
            params=dict(self.params),
            body=body,
            key=request_key(self.base_url, body),
            attempt=attempt,
        )

    def plan(self, prompts: Sequence[str | None], *, dedupe: bool) -> list[PlannedRequest]:
        """One request per prompt (None prompts get none); identical ones merged if ``dedupe``."""
        planned: list[PlannedRequest] = []
        by_key: dict[str, PlannedRequest] = {}
        for position, prompt in enumerate(prompts):
            if prompt is None:
                continue
            request = self.build(len(planned), self.messages(prompt))
            if dedupe and request.key in by_key:
                by_key[request.key].rows.append(position)
                continue
            request.rows.append(position)
            by_key[request.key] = request
            planned.append(request)
        return planned

    def correction(self, request: PlannedRequest, reply: str, problem: str) -> PlannedRequest:
        """The same request continued: the invalid reply, then a request to fix it."""
        turns = [{"role": "assistant", "content": reply}] if reply.strip() else []
        messages = [
            *request.messages,
            *turns,
            {"role": "user", "content": self.spec.correction(problem)},
        ]
        again = self.build(request.id, messages, attempt=request.attempt + 1)
        return replace(again, rows=request.rows)
