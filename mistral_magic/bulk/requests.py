"""The exact request of every row: messages, parameters, the wire body and its cache key,
built by the engine's request builder (:func:`mistral_magic.engine.prepare.prepare`), like
every other request.

Rows whose requests are identical share one request when ``dedupe`` is on (it is whenever
the cache is: the same request would get the same cached reply anyway).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ..api.request import Dialect
from ..engine.prepare import PreparedRequest, WireTarget, prepare
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
    prepared: PreparedRequest | None = field(default=None, repr=False)  # None: from a job file

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

    @property
    def target(self) -> WireTarget:
        return WireTarget(self.base_url, self.dialect)

    def first(self, request_id: int, prompt: str) -> PlannedRequest:
        """The request of one row: its prompt (with the JSON instructions), no context, the
        run's parameters and ``system`` message, not streamed."""
        params = dict(self.params)
        model = params.pop("model")
        prepared = prepare(
            self.spec.prompt(prompt),
            model=model,
            target=self.target,
            params=params,
            defaults=False,  # the run's parameters are complete (apply's own defaults)
            system=self.system or None,
            stream=False,
        )
        return self._planned(request_id, prepared, attempt=0)

    def _planned(self, request_id: int, prepared: PreparedRequest, attempt: int) -> PlannedRequest:
        return PlannedRequest(
            id=request_id,
            messages=prepared.messages,
            params=dict(self.params),
            body=prepared.body,
            key=prepared.cache_key,
            attempt=attempt,
            prepared=prepared,
        )

    def plan(self, prompts: Sequence[str | None], *, dedupe: bool) -> list[PlannedRequest]:
        """One request per prompt (None prompts get none); identical ones merged if ``dedupe``."""
        planned: list[PlannedRequest] = []
        by_key: dict[str, PlannedRequest] = {}
        for position, prompt in enumerate(prompts):
            if prompt is None:
                continue
            request = self.first(len(planned), prompt)
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
        base = request.prepared or self._restored(request)
        again = self._planned(request.id, base.follow_up(messages), request.attempt + 1)
        return replace(again, rows=request.rows)

    def _restored(self, request: PlannedRequest) -> PreparedRequest:
        """A request read back from a batch job's input file, as the engine's request."""
        params = {k: v for k, v in self.params.items() if k != "model"}
        return PreparedRequest(
            prompt="",
            model=self.params["model"],
            messages=request.messages,
            params=params,
            body=request.body,
            target=self.target,
        )
