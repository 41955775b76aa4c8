"""La Plateforme's Files and Batch APIs on the stub (protocol notes §10).

Importing this module adds the routes to every ``StubServer``:

    POST   /v1/files                      multipart ``file`` + ``purpose`` -> File object
    GET    /v1/files                      {object: "list", data, total}, newest first
    GET    /v1/files/{file_id}            File object + ``deleted``
    DELETE /v1/files/{file_id}            {id, object: "file", deleted: true}
    GET    /v1/files/{file_id}/content    the bytes (application/octet-stream)
    POST   /v1/batch/jobs                 -> BatchJob, QUEUED, counters 0
    GET    /v1/batch/jobs                 {object: "list", data, total}, newest first
    GET    /v1/batch/jobs/{job_id}        BatchJob
    POST   /v1/batch/jobs/{job_id}/cancel BatchJob (CANCELLATION_REQUESTED)

A job's life is simulated from the clock, lazily, whenever a job is read: QUEUED for
``queue_seconds``, then RUNNING at ``seconds_per_request`` per line (each line validated and
answered exactly like ``POST /v1/chat/completions``, through ``stub.responder`` when set),
then SUCCESS with output/error JSONL files. ``timeout_hours`` is scaled by
``seconds_per_hour`` (-> TIMEOUT_EXCEEDED); cancel -> CANCELLATION_REQUESTED, and after
``cancel_seconds`` CANCELLED. Finished lines of a stopped job still get their files (the
docs leave that open; own choice). Tune per test with ``batch_of(stub)``.

The vLLM dialect has no such endpoints: they answer 404 like any unknown route.
"""

from __future__ import annotations

import json
import math
import random
import threading
import time
import uuid
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tests.stub import schema as s
from tests.stub import validate
from tests.stub.errors import ApiError, mistral_error, mistral_validation_error
from tests.stub.replies import completion_body, plan
from tests.stub.tokens import count_prompt_tokens
from tests.stub.transport import RecordedRequest, Response

if TYPE_CHECKING:
    from tests.stub.server import StubServer

FILE_PURPOSES = ("fine-tune", "batch", "ocr")
ENDPOINTS = (
    "/v1/chat/completions",
    "/v1/embeddings",
    "/v1/fim/completions",
    "/v1/moderations",
    "/v1/chat/moderations",
)
MAX_INLINE_REQUESTS = 10_000
OCTET_STREAM = "application/octet-stream"


# ------------------------------------------------------------------------------- state


@dataclass
class StoredFile:
    meta: dict[str, Any]
    content: bytes


@dataclass
class SimulatedJob:
    wire: dict[str, Any]  # the BatchJob object as sent
    lines: list[Any] = field(default_factory=list)  # parsed input lines, or the raw bad text
    created: float = field(default_factory=time.monotonic)
    started: float | None = None
    cancel_requested: float | None = None
    timeout_seconds: float = 24 * 3600.0
    outputs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@dataclass
class BatchBackend:
    """Files and jobs of one stub, plus the knobs of the simulation."""

    queue_seconds: float = 0.05
    seconds_per_request: float = 0.0
    seconds_per_hour: float = 3600.0
    cancel_seconds: float = 0.05
    shuffle_output: bool = False
    fail_jobs_with: str | None = None  # every new job ends FAILED with this message
    files: dict[str, StoredFile] = field(default_factory=dict)
    jobs: dict[str, SimulatedJob] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock)

    def reset(self) -> None:
        """Forget every file and job; knobs back to their defaults."""
        fresh = BatchBackend()
        with self.lock:
            for name in _KNOBS:
                setattr(self, name, getattr(fresh, name))
            self.files.clear()
            self.jobs.clear()


_KNOBS = ("queue_seconds", "seconds_per_request", "seconds_per_hour", "cancel_seconds",
          "shuffle_output", "fail_jobs_with")  # fmt: skip


_BACKENDS: weakref.WeakKeyDictionary[StubServer, BatchBackend] = weakref.WeakKeyDictionary()
_BACKENDS_LOCK = threading.Lock()


def batch_of(stub: StubServer) -> BatchBackend:
    """The Files/Batch state and simulation knobs of ``stub`` (created on first use)."""
    with _BACKENDS_LOCK:
        backend = _BACKENDS.get(stub)
        if backend is None:
            backend = _BACKENDS[stub] = BatchBackend()
            stub.on_reset(backend.reset)
        return backend


def _platform_only(stub: StubServer) -> BatchBackend:
    if stub.dialect == "vllm":
        raise stub._not_found()
    return batch_of(stub)


def _not_found(what: str, ident: str) -> ApiError:
    # ⚠ The real 404 body for an unknown id is undocumented; the inference envelope is a guess.
    return mistral_error(f"{what} {ident} not found", "not_found_error", None, 404)


# ------------------------------------------------------------------------------- files


def parse_multipart(content_type: str, raw: bytes) -> dict[str, tuple[str | None, bytes]]:
    """``{field name: (filename or None, bytes)}`` of a multipart/form-data body."""
    boundary = None
    for param in content_type.split(";")[1:]:
        key, _, value = param.strip().partition("=")
        if key.lower() == "boundary":
            boundary = value.strip('"')
    if not content_type.lower().startswith("multipart/form-data") or not boundary:
        return {}
    fields: dict[str, tuple[str | None, bytes]] = {}
    delimiter = b"--" + boundary.encode()
    for chunk in raw.split(delimiter)[1:]:
        if chunk.startswith(b"--"):
            break
        head, _, body = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        body = body.removesuffix(b"\r\n")
        name = filename = None
        for line in head.decode("utf-8", "replace").split("\r\n"):
            key, _, value = line.partition(":")
            if key.strip().lower() != "content-disposition":
                continue
            for param in value.split(";")[1:]:
                pkey, _, pvalue = param.strip().partition("=")
                pvalue = pvalue.strip('"')
                if pkey == "name":
                    name = pvalue
                elif pkey == "filename":
                    filename = pvalue
        if name is not None:
            fields[name] = (filename, body)
    return fields


def _count_lines(content: bytes) -> int:
    return sum(1 for line in content.splitlines() if line.strip())


def _file_meta(
    filename: str, content: bytes, purpose: str, sample_type: str, source: str
) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "object": "file",
        "bytes": len(content),
        "created_at": int(time.time()),
        "filename": filename,
        "purpose": purpose,
        "sample_type": sample_type,
        "source": source,
        "num_lines": _count_lines(content),
    }


def _store(backend: BatchBackend, meta: dict[str, Any], content: bytes) -> str:
    backend.files[meta["id"]] = StoredFile(meta, content)
    return meta["id"]


def upload_file(stub: StubServer, request: RecordedRequest, params: dict[str, str]) -> Response:
    backend = _platform_only(stub)
    fields = parse_multipart(request.headers.get("content-type", ""), request.raw)
    errors: s.Errors = []
    upload = fields.get("file")
    if upload is None or upload[0] is None:
        s.error(errors, "missing", ("file",), "Field required", None)
    purpose_field = fields.get("purpose")
    # The spec's default purpose was fine-tune until 2025-01; clients must send "batch".
    purpose = purpose_field[1].decode("utf-8", "replace") if purpose_field else "fine-tune"
    s.literal(FILE_PURPOSES, kind="enum")(purpose, ("purpose",), errors)
    if errors:
        raise mistral_validation_error(errors)
    assert upload is not None and upload[0] is not None
    sample_type = {"batch": "batch_request", "ocr": "ocr_input"}.get(purpose, "instruct")
    meta = _file_meta(upload[0], upload[1], purpose, sample_type, "upload")
    with backend.lock:
        _store(backend, meta, upload[1])
    return Response(200, meta)


def list_files(stub: StubServer, request: RecordedRequest, params: dict[str, str]) -> Response:
    backend = _platform_only(stub)
    query = request.query
    with backend.lock:
        found = [f.meta for f in backend.files.values()]
    for key in ("purpose", "sample_type", "source"):
        wanted = query.get(key)
        if wanted is not None:
            allowed = wanted if isinstance(wanted, list) else [wanted]
            found = [m for m in found if m[key] in allowed]
    if query.get("search"):
        found = [m for m in found if str(query["search"]) in m["filename"]]
    return Response(200, _page(found, query))


def _page(items: list[dict[str, Any]], query: dict[str, Any]) -> dict[str, Any]:
    """One page of ``items`` (given oldest first), newest first unless ``order_by=created``."""
    page = s.as_int(query.get("page")) or 0
    size = s.as_int(query.get("page_size"))
    size = 100 if size is None else size
    ordered = items if query.get("order_by") == "created" else items[::-1]
    return {"object": "list", "data": ordered[page * size : (page + 1) * size], "total": len(items)}


def _stored(backend: BatchBackend, file_id: str) -> StoredFile:
    stored = backend.files.get(file_id)
    if stored is None:
        raise _not_found("File", file_id)
    return stored


def get_file(stub: StubServer, request: RecordedRequest, params: dict[str, str]) -> Response:
    backend = _platform_only(stub)
    with backend.lock:
        return Response(200, {**_stored(backend, params["file_id"]).meta, "deleted": False})


def delete_file(stub: StubServer, request: RecordedRequest, params: dict[str, str]) -> Response:
    backend = _platform_only(stub)
    with backend.lock:
        _stored(backend, params["file_id"])
        del backend.files[params["file_id"]]
    return Response(200, {"id": params["file_id"], "object": "file", "deleted": True})


def file_content(stub: StubServer, request: RecordedRequest, params: dict[str, str]) -> Response:
    backend = _platform_only(stub)
    with backend.lock:
        content = _stored(backend, params["file_id"]).content
    return Response(200, content, content_type=OCTET_STREAM)


# -------------------------------------------------------------------------------- jobs


def _metadata(value: Any, loc: s.Loc, errors: s.Errors) -> None:
    if value is None:
        return
    if not isinstance(value, dict):
        s.error(errors, "dict_type", loc, "Input should be a valid dictionary", value)
        return
    for key, item in value.items():
        if not 1 <= len(key) <= 32:
            s.error(errors, "string_too_long", (*loc, key), "Key must be 1 to 32 characters", key)
        if not isinstance(item, str) or not 1 <= len(item) <= 512:
            msg = "Value must be a string of 1 to 512 characters"
            s.error(errors, "string_type", (*loc, key), msg, item)


_INLINE_REQUEST = s.model(
    {"custom_id": s.Field(s.string(True)), "body": s.Field(s.mapping(False), True)}
)
_CREATE_JOB = s.model(
    {
        "input_files": s.Field(s.list_of(s.string())),
        "requests": s.Field(s.list_of(_INLINE_REQUEST)),
        "endpoint": s.Field(s.literal(ENDPOINTS, kind="enum"), True),
        "model": s.Field(s.string(True)),
        "agent_id": s.Field(s.string(True)),
        "metadata": s.Field(_metadata),
        "timeout_hours": s.Field(s.integer(ge=1, le=168)),
    }
)


def create_job(stub: StubServer, request: RecordedRequest, params: dict[str, str]) -> Response:
    backend = _platform_only(stub)
    body = request.body
    errors: s.Errors = []
    if not isinstance(body, dict):
        msg = "Input should be a valid dictionary or object to extract fields from"
        s.error(errors, "model_attributes_type", (), msg, body)
    else:
        _CREATE_JOB(body, (), errors)
        if not errors and body.get("input_files") is None and body.get("requests") is None:
            s.error(errors, "missing", ("input_files",), "Field required", body)
        if len(body.get("requests") or []) > MAX_INLINE_REQUESTS:
            msg = f"List should have at most {MAX_INLINE_REQUESTS} items after validation"
            s.error(errors, "too_long", ("requests",), msg, "...")
    if errors:
        raise mistral_validation_error(errors)
    model = body.get("model")
    if model is None and body.get("agent_id") is None:
        raise mistral_error("A model or an agent_id is required", "invalid_request_error", None)
    if model is not None and model not in stub.models:
        # ⚠ Whether an unknown model fails here or later as a FAILED job is undocumented.
        raise mistral_error(f"Invalid model: {model}", "invalid_model", "1500")
    input_files = list(body.get("input_files") or [])
    with backend.lock:
        for file_id in input_files:
            stored = backend.files.get(file_id)
            if stored is None:
                # ⚠ Own choice: 400 (a 404 would read as "no Batch API here").
                raise mistral_error(f"Input file {file_id} not found", "invalid_request_file", None)
            if stored.meta["purpose"] != "batch":
                msg = f"Input file {file_id} has purpose {stored.meta['purpose']!r}, not 'batch'"
                raise mistral_error(msg, "invalid_request_file", None)
        job_id = str(uuid.uuid4())
        wire = {
            "id": job_id,
            "object": "batch",
            "input_files": input_files,
            "metadata": body.get("metadata"),
            "endpoint": body["endpoint"],
            "model": model,
            "agent_id": body.get("agent_id"),
            "output_file": None,
            "error_file": None,
            "errors": [],
            "status": "QUEUED",
            "created_at": int(time.time()),
            "total_requests": 0,
            "completed_requests": 0,
            "succeeded_requests": 0,
            "failed_requests": 0,
            "started_at": None,
            "completed_at": None,
        }
        job = SimulatedJob(wire)
        hours = s.as_int(body.get("timeout_hours")) or 24
        job.timeout_seconds = hours * backend.seconds_per_hour
        job.lines = [
            {"custom_id": r.get("custom_id"), "body": r["body"]} for r in body.get("requests") or []
        ]
        backend.jobs[job_id] = job
        return Response(200, dict(wire))


def _read_input(backend: BatchBackend, job: SimulatedJob) -> str | None:
    """Parse the job's input files into ``job.lines``; a job-level problem as text."""
    for file_id in job.wire["input_files"]:
        stored = backend.files.get(file_id)
        if stored is None:
            return f"Input file {file_id} was deleted before the job started"
        for raw in stored.content.splitlines():
            if not raw.strip():
                continue
            try:
                job.lines.append(json.loads(raw))
            except ValueError:
                job.lines.append(raw.decode("utf-8", "replace"))
    return None


def _answer(stub: StubServer, body: dict[str, Any]) -> dict[str, Any]:
    """What ``POST /v1/chat/completions`` would answer to ``body`` (validation included)."""
    dialect = "mistral"
    validate.check_schema(body, dialect)
    validate.check_model(body, dialect, stub.models)
    validate.check_options(body, dialect)
    validate.check_conversation(body, dialect)
    prompt_tokens = count_prompt_tokens(body)
    validate.check_context(prompt_tokens, body, dialect, validate.CONTEXT_LENGTH)
    if s.as_bool(body.get("stream")):
        raise mistral_error(
            "Streaming is not available in batch mode", "invalid_request_error", None
        )
    responder = getattr(stub, "responder", None)
    reply = responder(body) if responder is not None else None
    return completion_body(plan(reply, body, dialect, prompt_tokens, stub.default_reply))


def _error_message(error: ApiError) -> str:
    body = error.body
    if isinstance(body, dict):
        message = body.get("message", body.get("detail"))
        if isinstance(message, dict) and isinstance(message.get("detail"), list):
            return "; ".join(str(d.get("msg")) for d in message["detail"])
        return str(message)
    return str(body)


def _run_line(stub: StubServer, job: SimulatedJob, number: int, line: Any) -> None:
    line_id = f"batch-{job.wire['id'][:8]}-{number + 1}-{uuid.uuid4()}"
    custom_id = line.get("custom_id") if isinstance(line, dict) else None
    try:
        if not isinstance(line, dict) or not isinstance(line.get("body"), dict):
            raise mistral_error(
                "Each line must be a JSON object with a `custom_id` and a `body` object",
                "invalid_request_error",
                None,
            )
        if job.wire["endpoint"] != "/v1/chat/completions":
            message = f"The stub only simulates /v1/chat/completions, not {job.wire['endpoint']}"
            raise mistral_error(message, "invalid_request_error", None)
        body = dict(line["body"])
        if body.get("model") is None:
            body["model"] = job.wire["model"]  # the job's model applies
        answer = _answer(stub, body)
    except ApiError as error:
        record = {
            "id": line_id,
            "custom_id": custom_id,
            "response": {"status_code": error.status, "body": error.body},
            "error": {"message": _error_message(error), "code": str(error.status)},
        }
        job.errors.append(json.dumps(record, ensure_ascii=False))
        job.wire["failed_requests"] += 1
    else:
        record = {
            "id": line_id,
            "custom_id": custom_id,
            "response": {"status_code": 200, "body": answer},
            "error": None,
        }
        job.outputs.append(json.dumps(record, ensure_ascii=False))
        job.wire["succeeded_requests"] += 1
    job.wire["completed_requests"] += 1


def _finish(backend: BatchBackend, job: SimulatedJob, status: str) -> None:
    wire = job.wire
    for kind, lines in (("output", job.outputs), ("error", job.errors)):
        if not lines:
            continue
        if backend.shuffle_output:
            lines = random.sample(lines, len(lines))
        content = ("\n".join(lines) + "\n").encode()
        name = f"{wire['id']}_{kind}.jsonl"
        sample_type = "batch_result" if kind == "output" else "batch_error"
        meta = _file_meta(name, content, "batch", sample_type, "mistral")
        wire[f"{kind}_file"] = _store(backend, meta, content)
    wire["status"] = status
    wire["completed_at"] = int(time.time())


def _lines_due(backend: BatchBackend, job: SimulatedJob, at: float) -> int:
    assert job.started is not None
    if backend.seconds_per_request <= 0:
        return len(job.lines)
    return min(len(job.lines), math.floor((at - job.started) / backend.seconds_per_request))


def advance(stub: StubServer, backend: BatchBackend, job: SimulatedJob) -> None:
    """Bring ``job`` to where the clock says it is."""
    now = time.monotonic()
    wire = job.wire
    if wire["status"] not in ("QUEUED", "RUNNING", "CANCELLATION_REQUESTED"):
        return
    if job.started is None:
        if (
            job.cancel_requested is not None
            and now >= job.cancel_requested + backend.cancel_seconds
        ):
            _finish(backend, job, "CANCELLED")
            return
        if now < job.created + backend.queue_seconds:
            return
        problem = backend.fail_jobs_with or _read_input(backend, job)
        if problem:
            wire["errors"] = [{"message": problem, "count": 1}]
            _finish(backend, job, "FAILED")
            return
        job.started = job.created + backend.queue_seconds
        wire["started_at"] = wire["created_at"] + int(backend.queue_seconds)
        wire["total_requests"] = len(job.lines)
        if wire["status"] == "QUEUED":
            wire["status"] = "RUNNING"
    stop_at, final = now, "SUCCESS"
    deadline = job.created + job.timeout_seconds
    if job.cancel_requested is not None:
        cancel_at = job.cancel_requested + backend.cancel_seconds
        if now >= cancel_at:
            stop_at, final = cancel_at, "CANCELLED"
    if now >= deadline and deadline <= stop_at:
        stop_at, final = deadline, "TIMEOUT_EXCEEDED"
    due = _lines_due(backend, job, stop_at)
    while wire["completed_requests"] < due:
        number = wire["completed_requests"]
        _run_line(stub, job, number, job.lines[number])
    if final != "SUCCESS" and stop_at <= now:
        _finish(backend, job, final)
    elif wire["completed_requests"] == len(job.lines):
        _finish(backend, job, "SUCCESS")


def _job(stub: StubServer, backend: BatchBackend, job_id: str) -> SimulatedJob:
    job = backend.jobs.get(job_id)
    if job is None:
        raise _not_found("Batch job", job_id)
    advance(stub, backend, job)
    return job


def get_job(stub: StubServer, request: RecordedRequest, params: dict[str, str]) -> Response:
    backend = _platform_only(stub)
    with backend.lock:
        return Response(200, dict(_job(stub, backend, params["job_id"]).wire))


def cancel_job(stub: StubServer, request: RecordedRequest, params: dict[str, str]) -> Response:
    backend = _platform_only(stub)
    with backend.lock:
        job = _job(stub, backend, params["job_id"])
        if job.wire["status"] in ("QUEUED", "RUNNING"):
            job.cancel_requested = time.monotonic()
            job.wire["status"] = "CANCELLATION_REQUESTED"
        return Response(200, dict(job.wire))


_LIST_KEYS = {"page", "page_size", "model", "agent_id", "status", "created_after",
              "created_by_me", "order_by"}  # fmt: skip


def list_jobs(stub: StubServer, request: RecordedRequest, params: dict[str, str]) -> Response:
    backend = _platform_only(stub)
    query = request.query
    with backend.lock:
        for job in backend.jobs.values():
            advance(stub, backend, job)
        found = [dict(job.wire) for job in backend.jobs.values()]
    if query.get("model"):
        found = [j for j in found if j["model"] == query["model"]]
    if query.get("status"):
        wanted = query["status"] if isinstance(query["status"], list) else [query["status"]]
        found = [j for j in found if j["status"] in wanted]
    for key, value in query.items():  # metadata filters: one query parameter per key
        if key not in _LIST_KEYS:
            found = [j for j in found if (j["metadata"] or {}).get(key) == value]
    return Response(200, _page(found, query))


def register() -> None:
    from tests.stub.server import StubServer

    for method, pattern, handler in (
        ("POST", "/v1/files", upload_file),
        ("GET", "/v1/files", list_files),
        ("GET", "/v1/files/{file_id}", get_file),
        ("DELETE", "/v1/files/{file_id}", delete_file),
        ("GET", "/v1/files/{file_id}/content", file_content),
        ("POST", "/v1/batch/jobs", create_job),
        ("GET", "/v1/batch/jobs", list_jobs),
        ("GET", "/v1/batch/jobs/{job_id}", get_job),
        ("POST", "/v1/batch/jobs/{job_id}/cancel", cancel_job),
    ):
        StubServer.register_route(method, pattern, handler)


register()
