"""The Batch API (``/v1/batch/jobs``): create, get, list and cancel batch jobs.

    jobs = BatchJobs(client)                  # client: a MistralClient
    job = jobs.create(input_files=[uploaded.id], model="mistral-large-2407")
    job = jobs.get(job.id)                    # job.status, job.completed_requests, ...

A job runs request bodies from JSONL input files against one endpoint and one model, at
Mistral's batch price. It moves QUEUED -> RUNNING -> SUCCESS (or FAILED, TIMEOUT_EXCEEDED,
CANCELLATION_REQUESTED -> CANCELLED); results are JSONL files (``output_file``,
``error_file``) read with :class:`~mistral_magic.api.files.Files`. La Plateforme only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from .errors import (
    BatchJobNotFoundError,
    BatchUnavailableError,
    InvalidRequestError,
    ResponseFormatError,
)
from .rest import path_id, request_json, with_query

if TYPE_CHECKING:
    from .client import MistralClient

CHAT_ENDPOINT = "/v1/chat/completions"
STILL_MOVING = frozenset({"QUEUED", "RUNNING", "CANCELLATION_REQUESTED"})
FINISHED = frozenset({"SUCCESS", "FAILED", "TIMEOUT_EXCEEDED", "CANCELLED"})

T = TypeVar("T")


@dataclass
class BatchJob:
    """A batch job as ``/v1/batch/jobs`` describes it. Counters stay 0 until the input has
    been validated, so never divide by ``total_requests`` unguarded."""

    id: str
    status: str
    model: str | None = None
    endpoint: str = CHAT_ENDPOINT
    input_files: list[str] = field(default_factory=list)
    output_file: str | None = None
    error_file: str | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)
    total_requests: int = 0
    completed_requests: int = 0
    succeeded_requests: int = 0
    failed_requests: int = 0
    created_at: int = 0
    started_at: int | None = None
    completed_at: int | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def finished(self) -> bool:
        """True once the job has stopped (unknown future statuses count as still moving)."""
        return self.status in FINISHED

    @classmethod
    def from_wire(cls, data: Any) -> BatchJob:
        if not isinstance(data, Mapping) or not isinstance(data.get("id"), str):
            raise ResponseFormatError("The server's answer is not a batch job (no `id`).")

        def count(key: str) -> int:
            value = data.get(key)
            return value if isinstance(value, int) and not isinstance(value, bool) else 0

        def opt(key: str) -> Any:
            return data.get(key) if data.get(key) not in ("", None) else None

        errors = data.get("errors")
        metadata = data.get("metadata")
        inputs = data.get("input_files")
        return cls(
            id=data["id"],
            status=str(data.get("status") or ""),
            model=opt("model"),
            endpoint=str(data.get("endpoint") or CHAT_ENDPOINT),
            input_files=[str(f) for f in inputs] if isinstance(inputs, list) else [],
            output_file=opt("output_file"),
            error_file=opt("error_file"),
            errors=[e for e in errors if isinstance(e, Mapping)]
            if isinstance(errors, list)
            else [],
            metadata=dict(metadata) if isinstance(metadata, Mapping) else {},
            total_requests=count("total_requests"),
            completed_requests=count("completed_requests"),
            succeeded_requests=count("succeeded_requests"),
            failed_requests=count("failed_requests"),
            created_at=count("created_at"),
            started_at=opt("started_at"),
            completed_at=opt("completed_at"),
            raw=dict(data),
        )


class BatchJobs:
    """``/v1/batch/jobs`` through a :class:`MistralClient` (its key, base URL, retries)."""

    def __init__(self, client: MistralClient) -> None:
        self.client = client

    def create(
        self,
        *,
        input_files: Sequence[str],
        model: str,
        endpoint: str = CHAT_ENDPOINT,
        metadata: Mapping[str, str] | None = None,
        timeout_hours: int | None = None,
    ) -> BatchJob:
        """``POST /batch/jobs``: the job starts QUEUED with all counters at 0."""
        body: dict[str, Any] = {
            "input_files": list(input_files),
            "endpoint": endpoint,
            "model": model,
        }
        if metadata:
            body["metadata"] = dict(metadata)
        if timeout_hours is not None:
            body["timeout_hours"] = timeout_hours
        answer = self._api(lambda: request_json(self.client, "POST", "/batch/jobs", body=body))
        return BatchJob.from_wire(answer)

    def get(self, job_id: str) -> BatchJob:
        """``GET /batch/jobs/{id}``."""
        return BatchJob.from_wire(self._job(job_id, "GET", f"/batch/jobs/{path_id(job_id)}"))

    def cancel(self, job_id: str) -> BatchJob:
        """``POST /batch/jobs/{id}/cancel``: usually CANCELLATION_REQUESTED, later CANCELLED."""
        path = f"/batch/jobs/{path_id(job_id)}/cancel"
        return BatchJob.from_wire(self._job(job_id, "POST", path))

    def list(
        self,
        *,
        status: str | Sequence[str] | None = None,
        model: str | None = None,
        metadata: Mapping[str, str] | None = None,
        page: int = 0,
        page_size: int = 100,
    ) -> list[BatchJob]:
        """One page of ``GET /batch/jobs``, newest first. ``metadata`` filters by key/value."""
        query: dict[str, Any] = {"page": page, "page_size": page_size, "model": model}
        if status is not None:
            query["status"] = [status] if isinstance(status, str) else list(status)
        query.update(metadata or {})
        answer = self._api(
            lambda: request_json(self.client, "GET", with_query("/batch/jobs", query))
        )
        data = answer.get("data") if isinstance(answer, Mapping) else None
        if not isinstance(data, list):
            raise ResponseFormatError("The server's batch job list has no `data` array.")
        return [BatchJob.from_wire(item) for item in data]

    # -- errors that mean something specific here ------------------------------------------
    def _api(self, call: Callable[[], T]) -> T:
        try:
            return call()
        except InvalidRequestError as error:
            if error.status == 404:
                raise self._unavailable(error) from None
            raise

    def _job(self, job_id: str, method: str, path: str) -> Any:
        try:
            return request_json(self.client, method, path)
        except InvalidRequestError as error:
            if error.status != 404:
                raise
            raise BatchJobNotFoundError(
                f"The server at {self.client.display_url} knows no batch job {job_id!r} (HTTP "
                "404). Job ids are per workspace: check that MISTRAL_API_KEY belongs to the "
                "workspace that created it (and that the server is La Plateforme, which has "
                "the Batch API).",
                status=404,
                code=error.code,
                error_type=error.error_type,
                request_id=error.request_id,
            ) from None

    def _unavailable(self, error: InvalidRequestError) -> BatchUnavailableError:
        return BatchUnavailableError(
            f"The server at {self.client.display_url} has no Batch API (HTTP 404 on its batch "
            "and files endpoints). Mistral's Batch API exists only on La Plateforme "
            "(https://api.mistral.ai/v1); a self-hosted vLLM server does not offer it. Run "
            "the job without batch=True there: the concurrent path works with any server.",
            status=404,
            code=error.code,
            error_type=error.error_type,
            request_id=error.request_id,
        )


def unavailable_files_error(
    client: MistralClient, error: InvalidRequestError
) -> InvalidRequestError:
    """The same clear message for a 404 from ``/files`` (see :class:`BatchJobs`)."""
    if error.status != 404:
        return error
    return BatchJobs(client)._unavailable(error)
