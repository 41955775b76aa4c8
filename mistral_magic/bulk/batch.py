"""Big jobs through Mistral's Batch API: ``apply(..., batch=True)`` and ``batch_results``.

The pending requests go up as one JSONL file (``purpose=batch``), one job is created for
``/v1/chat/completions`` and the job's model, and the job is polled with a progress bar.
Results (output and error files) are joined back on ``custom_id`` (the order of result
lines is not guaranteed), parsed like any reply, stored in the response cache, and invalid
JSON replies get their one correction through the normal concurrent path.

Every job apply submits is remembered in ``<Mistral.cache_dir>/batch-jobs/<job id>.json``
(which rows went as which ``custom_id``, the index of the input, the output mode; no key,
no prompts: those are in the job's input file at Mistral). So:

* ``mistral_magic.batch_results(job_id)`` gives the results in input order in any later
  process, e.g. after a kernel restart;
* re-running the same ``apply(..., batch=True)`` while its job is unfinished picks the job up
  instead of submitting (and paying for) it twice.

Price: batch requests cost ``Mistral.batch_price_factor`` of the normal price (50%: Mistral's
docs since 2025-07; 25% was announced at launch in 2024-11). La Plateforme only: a vLLM
server has no Batch API.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..api.errors import APIConnectionError, MistralError, RateLimitError, ServerError
from ..engine.cache import default_cache_dir
from .outcomes import Failure

if TYPE_CHECKING:
    from ..api.batch import BatchJob, BatchJobs
    from ..api.client import MistralClient
    from ..api.types import Completion
    from ..config import Mistral
    from .progress import Progress
    from .requests import PlannedRequest
    from .run import BulkRun

POLL_FIRST_SECONDS = 2.0
POLL_MAX_SECONDS = 30.0
POLL_GROWTH = 1.5
RECORDS_FOLDER = "batch-jobs"
RECORD_VERSION = 1


class BatchNotFinished(MistralError):
    """``batch_results(job_id, wait=False)`` on a job that is still running."""


# ------------------------------------------------------------------------- job records


@dataclass
class JobRecord:
    """What a new process needs to map a job's results back onto the input rows."""

    job_id: str
    base_url: str
    model: str
    created: float
    rows: int
    shape: dict[str, Any] | None  # OutputShape.to_record(); None: results come as a list
    mode: str  # OutputSpec.mode
    schema: dict[str, Any] | None
    params: dict[str, Any]  # every chat parameter, model included
    fingerprint: str  # of the job's requests, to pick the job up again instead of resubmitting
    row_requests: list[int | None]  # per row: its request id (None: empty row, not sent)
    answered: dict[str, str] = field(default_factory=dict)  # request id -> reply text (cache)
    failed: dict[str, list[Any]] = field(default_factory=dict)  # request id -> [kind, message]
    collected: bool = False
    version: int = RECORD_VERSION


def records_dir(settings: Mistral) -> Path:
    return Path(settings.cache_dir or default_cache_dir()) / RECORDS_FOLDER


def save_record(settings: Mistral, record: JobRecord) -> None:
    folder = records_dir(settings)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = folder / f"{record.job_id}.json"
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    temporary.write_text(json.dumps(asdict(record), ensure_ascii=False), encoding="utf-8")
    os.replace(temporary, path)


def load_record(settings: Mistral, job_id: str) -> JobRecord | None:
    path = records_dir(settings) / f"{Path(job_id).name}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return JobRecord(**data)
    except (OSError, ValueError, TypeError):
        return None


def find_resumable(settings: Mistral, base_url: str, fingerprint: str) -> JobRecord | None:
    """The newest uncollected job this machine submitted for exactly these requests."""
    folder = records_dir(settings)
    if not folder.is_dir():
        return None
    paths = sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    for path in paths:
        record = load_record(settings, path.stem)
        if (
            record is not None
            and not record.collected
            and record.fingerprint == fingerprint
            and record.base_url == base_url
        ):
            return record
    return None


def fingerprint_of(base_url: str, requests: Iterable[PlannedRequest]) -> str:
    """Same server, same requests under the same custom ids: the same job."""
    material = "\n".join([base_url, *(f"{r.batch_id} {r.key}" for r in requests)])
    return hashlib.sha256(material.encode()).hexdigest()


# ----------------------------------------------------------------------------- the job


def input_jsonl(requests: Iterable[PlannedRequest]) -> bytes:
    """One line per request: ``{"custom_id", "body"}``, the body without ``model`` (the
    job's model applies)."""
    lines = []
    for request in requests:
        body = {k: v for k, v in request.body.items() if k != "model"}
        line = {"custom_id": request.batch_id, "body": body}
        lines.append(json.dumps(line, ensure_ascii=False))
    return ("\n".join(lines) + "\n").encode("utf-8")


def submit(client: MistralClient, run: BulkRun, pending: list[PlannedRequest]) -> BatchJob:
    from ..api.batch import BatchJobs, unavailable_files_error
    from ..api.errors import InvalidRequestError
    from ..api.files import Files

    name = f"mistral-magic-{time.strftime('%Y%m%d-%H%M%S')}-{len(pending)}.jsonl"
    try:
        uploaded = Files(client).upload(input_jsonl(pending), name, purpose="batch")
    except InvalidRequestError as error:
        raise unavailable_files_error(client, error) from None
    return BatchJobs(client).create(
        input_files=[uploaded.id],
        model=run.model,
        metadata={"created_by": "mistral-magic", "rows": str(len(run.rows))},
    )


def wait_for(jobs: BatchJobs, job: BatchJob, bar: Progress) -> BatchJob:
    """Poll until the job stops; Ctrl-C propagates (the job goes on at Mistral)."""
    interval = POLL_FIRST_SECONDS
    bar.tick(done=job.completed_requests, status=job.status)
    while not job.finished:
        time.sleep(interval)
        interval = min(POLL_MAX_SECONDS, interval * POLL_GROWTH)
        try:
            job = jobs.get(job.id)
        except (ServerError, APIConnectionError, RateLimitError) as error:
            bar.tick(status=f"polling failed, retrying ({type(error).__name__})")
            interval = POLL_MAX_SECONDS
            continue
        bar.tick(done=job.completed_requests, status=job.status)
    return job


def read_results(
    client: MistralClient, job: BatchJob
) -> tuple[dict[str, Completion], dict[str, Failure]]:
    """Replies and failures by ``custom_id`` from the job's output and error files."""
    from ..api.files import Files

    replies: dict[str, Completion] = {}
    failures: dict[str, Failure] = {}
    files = Files(client)
    for file_id in (job.output_file, job.error_file):
        if not file_id:
            continue
        for raw in files.download(file_id).splitlines():
            if not raw.strip():
                continue
            try:
                line = json.loads(raw)
            except ValueError:
                continue
            if not isinstance(line, dict) or line.get("custom_id") is None:
                continue
            custom_id = str(line["custom_id"])
            outcome = _line_outcome(client, job, line)
            if isinstance(outcome, Failure):
                failures.setdefault(custom_id, outcome)
            else:
                replies[custom_id] = outcome
                failures.pop(custom_id, None)
    return replies, failures


def _line_outcome(
    client: MistralClient, job: BatchJob, line: dict[str, Any]
) -> Completion | Failure:
    from ..api.errors import error_from_response
    from ..api.wire import ResponseFormatError, parse_completion

    response = line.get("response") if isinstance(line.get("response"), dict) else {}
    status = response.get("status_code")
    body = response.get("body")
    error = line.get("error")
    if error is None and status == 200 and isinstance(body, dict):
        try:
            return parse_completion(body)
        except ResponseFormatError as exc:
            return Failure("batch", f"Batch job {job.id}: {exc}", status=status)
    if isinstance(status, int) and status >= 400:
        raw = json.dumps(body) if isinstance(body, (dict, list)) else str(body or "")
        explained = error_from_response(
            status, raw, model=job.model, base_url=client.base_url, scrubber=client.scrubber
        )
        message = str(explained)
    else:
        message = error.get("message") if isinstance(error, dict) else str(error or "no reply")
        message = f"The request failed ({client.scrubber.quote(str(message), 300)})."
    return Failure("request", f"In batch job {job.id}: {message}", status=status)


def apply_results(
    client: MistralClient, run: BulkRun, job: BatchJob, requests: dict[str, PlannedRequest]
) -> list[PlannedRequest]:
    """Record every request's result; the corrections still to run."""
    replies, failures = read_results(client, job)
    problems = client.scrubber.quote(
        "; ".join(str(e.get("message")) for e in job.errors if e.get("message")), 500
    )
    missing = Failure(
        "batch",
        f"Batch job {job.id} ended {job.status} without a result for this row"
        + (f" ({problems})." if problems else "."),
    )
    corrections = []
    for custom_id, request in requests.items():
        if custom_id in replies:
            correction = run.outcomes.accept(request, replies[custom_id])
            if correction is not None:
                corrections.append(correction)
        else:
            run.outcomes.fail(request, failures.get(custom_id, missing))
    return corrections


# ------------------------------------------------------------------ apply(batch=True)

Interruption = tuple[str, Failure]


def run_as_batch(run: BulkRun, pending: list[PlannedRequest]) -> Interruption | None:
    """Submit (or pick up) the job for ``pending``, wait, and record the results in ``run``.
    Returns the note and row failure to report if the wait was interrupted."""
    from ..api.batch import BatchJobs
    from .session import sync_client

    fingerprint = fingerprint_of(run.base_url, pending)
    with sync_client(run.settings, run.model) as client:
        jobs = BatchJobs(client)
        record = find_resumable(run.settings, run.base_url, fingerprint)
        job = _resumable_job(jobs, record)
        if job is not None:
            if run.show_progress:
                print(
                    f"Picking up batch job {job.id} ({job.status}), submitted earlier for "
                    "exactly these requests, instead of paying for them twice."
                )
        else:
            job = submit(client, run, pending)
            record = _record(run, job.id, fingerprint)
            save_record(run.settings, record)
            if run.show_progress:
                print(f"Submitted batch job {job.id}.")
        assert record is not None
        bar = run.progress(total=len(pending), initial=0, unit="request", description="batch")
        try:
            job = wait_for(jobs, job, bar)
        except KeyboardInterrupt:
            return _stopped_waiting(job.id)
        finally:
            bar.close(done=job.completed_requests)
        corrections = apply_results(client, run, job, {r.batch_id: r for r in pending})
        record.collected = True
        save_record(run.settings, record)
    if corrections:
        bar = run.progress()
        try:
            run.run_concurrently(corrections, bar)
        except KeyboardInterrupt:
            return run.interrupted_note("Interrupted while correcting invalid replies"), Failure(
                "interrupted", "Not run: interrupted while correcting the reply."
            )
        finally:
            bar.close()
    return None


def _resumable_job(jobs: BatchJobs, record: JobRecord | None) -> BatchJob | None:
    from ..api.batch import BatchJobNotFoundError

    if record is None:
        return None
    try:
        job = jobs.get(record.job_id)
    except BatchJobNotFoundError:  # another workspace (key), or gone
        return None
    return None if job.status in ("FAILED", "CANCELLED", "TIMEOUT_EXCEEDED") else job


def _record(run: BulkRun, job_id: str, fingerprint: str) -> JobRecord:
    row_requests: list[int | None] = [None] * len(run.rows)
    for request in run.requests:
        for position in request.rows:
            row_requests[position] = request.id
    outcomes = run.outcomes
    return JobRecord(
        job_id=job_id,
        base_url=run.base_url,
        model=run.model,
        created=time.time(),
        rows=len(run.rows),
        shape=run.rows.shape.to_record(),
        mode=run.spec.mode,
        schema=run.spec.schema,
        params=run.params,
        fingerprint=fingerprint,
        row_requests=row_requests,
        answered={str(i): text for i, text in outcomes.texts.items()},
        failed={str(i): [f.kind, f.message] for i, f in outcomes.failures.items()},
    )


def _stopped_waiting(job_id: str) -> Interruption:
    note = (
        f"Stopped waiting for batch job {job_id}; the job goes on at Mistral (it is not "
        "cancelled). Run the same call again to pick it up (it is not submitted twice), or "
        f"get its results with mistral_magic.batch_results({job_id!r}), also after a kernel "
        f"restart. To stop the job: mistral_magic.cancel_batch({job_id!r})."
    )
    return note, Failure("interrupted", f"Not collected yet: still in batch job {job_id}.")


# --------------------------------------------------------- batch_results / cancel_batch


def batch_results(
    job_id: str,
    *,
    wait: bool = True,
    json_schema: Any = None,
    errors: str = "value",
    cache: Any = None,
    progress: bool = True,
) -> Any:
    """The results of a batch job, in input order, in any process (after a kernel restart
    too): a list, or a Series on the input's index when ``apply`` got pandas data (and the
    index could be saved as JSON: a RangeIndex, strings or numbers; else a list in order).

    Jobs submitted by ``apply(..., batch=True)`` on this machine come back exactly as apply
    would have returned them (JSON modes parsed and validated; pass ``json_schema=`` again to
    get model instances rather than dicts). Other jobs give one value per line of their input
    file, in file order. ``wait=False`` raises BatchNotFinished if the job is still running.
    """
    from ..api.batch import BatchJobs
    from .session import current_settings, sync_client

    settings = current_settings()
    record = load_record(settings, job_id)
    with sync_client(settings, record.model if record else settings.model) as client:
        jobs = BatchJobs(client)
        job = jobs.get(job_id)
        run = _restored_run(settings, client, job, record, json_schema, cache, progress)
        try:
            if not job.finished and not wait:
                raise BatchNotFinished(
                    f"Batch job {job.id} is {job.status}: {job.completed_requests:,} of "
                    f"{job.total_requests or '?'} requests done. Call "
                    f"mistral_magic.batch_results({job.id!r}) to wait for it, or try later."
                )
            started = time.monotonic()
            bar = run.progress(
                total=len(run.requests), initial=0, unit="request", description="batch"
            )
            try:
                job = wait_for(jobs, job, bar)
            except KeyboardInterrupt:
                note, unfinished = _stopped_waiting(job.id)
                return run.finish(errors=errors, started=started, note=note, unfinished=unfinished)
            finally:
                bar.close(done=job.completed_requests)
            pending = [r for r in run.requests if not run.outcomes.is_resolved(r.id)]
            corrections = apply_results(client, run, job, {r.batch_id: r for r in pending})
            if record is not None:
                record.collected = True
                save_record(settings, record)
            note = None
            if corrections:
                bar = run.progress()
                try:
                    run.run_concurrently(corrections, bar)
                except KeyboardInterrupt:
                    note = run.interrupted_note("Interrupted while correcting invalid replies")
                finally:
                    bar.close()
            return run.finish(errors=errors, started=started, note=note)
        finally:
            run.close()


def _input_lines(client: MistralClient, job: BatchJob) -> list[dict[str, Any]]:
    from ..api.files import Files

    lines: list[dict[str, Any]] = []
    for file_id in job.input_files:
        for raw in Files(client).download(file_id).splitlines():
            if raw.strip():
                line = json.loads(raw)
                lines.append(line if isinstance(line, dict) else {})
    return lines


def _requests_from_input(
    lines: list[dict[str, Any]], model: str, base_url: str, numbered: bool
) -> list[PlannedRequest]:
    """The job's requests as apply planned them (same bodies, so the same cache keys).
    ``numbered``: the custom ids are apply's request ids."""
    from ..engine.cache import request_key
    from .requests import PlannedRequest

    requests = []
    for position, line in enumerate(lines):
        custom_id = line.get("custom_id")
        custom_id = str(position) if custom_id is None else str(custom_id)
        body = {**(line.get("body") or {}), "model": model}
        request_id = int(custom_id) if numbered and custom_id.isdigit() else position
        requests.append(
            PlannedRequest(
                id=request_id,
                messages=list(body.get("messages") or []),
                params={k: v for k, v in body.items() if k != "messages"},
                body=body,
                key=request_key(base_url, body),
                custom_id=custom_id,
            )
        )
    return requests


def _restored_run(
    settings: Mistral,
    client: MistralClient,
    job: BatchJob,
    record: JobRecord | None,
    json_schema: Any,
    cache: Any,
    progress: bool,
) -> BulkRun:
    """A BulkRun over the job's input lines, shaped like the original rows when this
    machine has the job's record, else one row per input line."""
    from .inputs import OutputShape, Rows
    from .requests import PlannedRequest
    from .run import BulkRun
    from .structured import OutputSpec, output_spec

    model = job.model or (record.model if record else settings.model)
    requests = _requests_from_input(
        _input_lines(client, job), model, client.base_url, record is not None
    )
    if record is not None:
        shape = OutputShape.from_record(record.shape)
        spec = OutputSpec(record.mode, record.schema)
        params = dict(record.params)
        row_requests = record.row_requests
        by_id = {r.id: r for r in requests}
        for key in [*record.answered, *record.failed]:  # answered before the job was sent
            by_id.setdefault(int(key), PlannedRequest(int(key), [], params, {}, ""))
        for position, request_id in enumerate(row_requests):
            if request_id is not None and request_id in by_id:
                by_id[request_id].rows.append(position)
        requests = sorted(by_id.values(), key=lambda r: r.id)
    else:
        shape = OutputShape()
        spec = OutputSpec()
        params = dict(requests[0].params) if requests else {"model": model}
        row_requests = list(range(len(requests)))
        for position, request in enumerate(requests):
            request.rows.append(position)
    if json_schema is not None:
        spec = output_spec(False, json_schema)
    labels = list(shape.index) if shape.kind == "series" else list(range(len(row_requests)))
    prompts: list[str | None] = ["" if r is not None else None for r in row_requests]
    run = BulkRun(
        settings,
        Rows(prompts, labels, shape),
        spec,
        model=model,
        params={k: v for k, v in params.items() if k not in ("model", "response_format")},
        cache=cache,
        system=None,
        concurrency=8,
        price_factor=settings.batch_price_factor,
        show_progress=progress,
        requests=requests,
    )
    if record is not None:
        _replay_answers(run, record)
    return run


def _replay_answers(run: BulkRun, record: JobRecord) -> None:
    """Values and failures the original run had before it submitted the job."""
    from ..api.types import Choice, Completion

    by_id = {r.id: r for r in run.requests}
    for key, text in record.answered.items():
        request = by_id.get(int(key))
        if request is not None:
            completion = Completion(choices=[Choice(content=text, finish_reason="stop")])
            run.outcomes.accept(request, completion, from_cache=True)
    for key, (kind, message) in record.failed.items():
        request = by_id.get(int(key))
        if request is not None:
            run.outcomes.fail(request, Failure(kind, message))


def cancel_batch(job_id: str) -> BatchJob:
    """Ask Mistral to stop a batch job; returns it (usually CANCELLATION_REQUESTED, then
    CANCELLED). Requests that already ran are billed and their results can still be read
    with ``batch_results``."""
    from ..api.batch import BatchJobs
    from .session import current_settings, sync_client

    settings = current_settings()
    with sync_client(settings, settings.model) as client:
        return BatchJobs(client).cancel(job_id)
