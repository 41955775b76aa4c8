"""Files and Batch API: the client classes against the stub's §10 endpoints, over sockets."""

from __future__ import annotations

import json
import time

import pytest

from mistral_magic.api.batch import (
    BatchJob,
    BatchJobNotFoundError,
    BatchJobs,
    BatchUnavailableError,
)
from mistral_magic.api.client import MistralClient
from mistral_magic.api.errors import InvalidRequestError, ModelNotFoundError
from mistral_magic.api.files import Files, encode_multipart
from tests.stub import Reply
from tests.stub.batch import batch_of, parse_multipart
from tests.stub.errors import mistral_error


@pytest.fixture
def client(stub):
    with MistralClient(
        api_key=stub.api_key, base_url=stub.base_url, dialect="mistral", backoff=0.01
    ) as c:
        yield c


def jsonl(*lines: dict) -> bytes:
    return ("\n".join(json.dumps(line) for line in lines) + "\n").encode()


def chat_line(custom_id: str, text: str, **params) -> dict:
    return {
        "custom_id": custom_id,
        "body": {"messages": [{"role": "user", "content": text}], **params},
    }


def wait_for(jobs: BatchJobs, job: BatchJob, ready, limit: float = 10.0) -> BatchJob:
    """Poll the job until ``ready(job)`` holds; the stub's jobs advance with its clock."""
    deadline = time.monotonic() + limit
    while not ready(job):
        assert time.monotonic() < deadline, job
        time.sleep(0.02)
        job = jobs.get(job.id)
    return job


def wait_until_finished(jobs: BatchJobs, job: BatchJob, limit: float = 10.0) -> BatchJob:
    return wait_for(jobs, job, lambda j: j.finished, limit)


def test_multipart_encoding_roundtrips_through_the_stubs_parser():
    content = b'{"a": 1}\r\n{"b": "\\r\\n--x"}\n'
    body, content_type = encode_multipart({"purpose": "batch"}, "file", 'we"ird.jsonl', content)
    parts = parse_multipart(content_type, body)
    assert parts["purpose"] == (None, b"batch")
    assert parts["file"][1] == content


def test_upload_describes_the_file_and_content_returns_the_bytes(stub, client):
    files = Files(client)
    data = jsonl(chat_line("0", "hi"), chat_line("1", "ho"))
    uploaded = files.upload(data, "rows.jsonl")
    assert uploaded.filename == "rows.jsonl" and uploaded.size == len(data)
    assert (uploaded.purpose, uploaded.sample_type, uploaded.source) == (
        "batch",
        "batch_request",
        "upload",
    )
    assert uploaded.num_lines == 2 and len(uploaded.id) == 36
    sent = stub.last_request
    assert sent.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert files.download(uploaded.id) == data
    assert files.get(uploaded.id).raw["deleted"] is False
    assert [f.id for f in files.list(purpose="batch")] == [uploaded.id]
    assert files.delete(uploaded.id) is True
    with pytest.raises(InvalidRequestError) as missing:
        files.get(uploaded.id)
    assert missing.value.status == 404


def test_a_bad_purpose_is_a_422_naming_the_field(client):
    with pytest.raises(InvalidRequestError, match="purpose") as refused:
        Files(client).upload(b"{}\n", "x.jsonl", purpose="training")
    assert refused.value.status == 422


def test_job_lifecycle_queued_running_success_with_counters_and_result_files(stub, client):
    backend = batch_of(stub)
    backend.queue_seconds = 0.1
    backend.seconds_per_request = 0.4  # slow enough that a poll sees it part-way

    def responder(body):
        text = body["messages"][-1]["content"]
        if text == "boom":
            raise mistral_error("Something about this line is wrong", "invalid_request_error", None)
        return Reply(text=f"re: {text}")

    stub.responder = responder
    lines = [chat_line(str(i), f"q{i}", max_tokens=20) for i in range(4)]
    lines.insert(2, chat_line("bad", "boom"))
    lines.append({"custom_id": "invalid", "body": {"messages": [], "nonsense": 1}})
    uploaded = Files(client).upload(jsonl(*lines), "in.jsonl")
    jobs = BatchJobs(client)

    job = jobs.create(input_files=[uploaded.id], model="mistral-large-2407", metadata={"run": "t1"})
    assert job.status == "QUEUED" and job.total_requests == 0 and job.errors == []
    assert job.output_file is None and job.error_file is None and job.metadata == {"run": "t1"}
    assert stub.last_request.body == {
        "input_files": [uploaded.id],
        "endpoint": "/v1/chat/completions",
        "model": "mistral-large-2407",
        "metadata": {"run": "t1"},
    }
    running = wait_for(jobs, job, lambda j: j.completed_requests > 0)
    assert running.status == "RUNNING" and running.total_requests == 6
    assert 0 < running.completed_requests < 6
    done = wait_until_finished(jobs, running)
    assert done.status == "SUCCESS" and done.completed_at is not None
    assert (done.total_requests, done.completed_requests) == (6, 6)
    assert (done.succeeded_requests, done.failed_requests) == (4, 2)

    files = Files(client)
    output = [json.loads(x) for x in files.download(done.output_file).splitlines()]
    assert [line["custom_id"] for line in output] == ["0", "1", "2", "3"]
    first = output[0]
    assert first["error"] is None and first["response"]["status_code"] == 200
    body = first["response"]["body"]
    assert body["model"] == "mistral-large-2407" and body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["content"] == "re: q0" and len(body["id"]) == 32
    assert first["id"].startswith(f"batch-{done.id[:8]}-1-")

    errors = {
        x["custom_id"]: x for x in map(json.loads, files.download(done.error_file).splitlines())
    }
    assert set(errors) == {"bad", "invalid"}
    assert errors["bad"]["response"]["status_code"] == 400
    assert "wrong" in errors["bad"]["error"]["message"]
    assert errors["invalid"]["response"]["status_code"] == 422  # validated like a chat request
    meta = files.get(done.output_file)
    assert (meta.sample_type, meta.source) == ("batch_result", "mistral")
    assert files.get(done.error_file).sample_type == "batch_error"


def test_cancel_goes_through_cancellation_requested(stub, client):
    backend = batch_of(stub)
    backend.seconds_per_request = 0.1
    backend.cancel_seconds = 0.1
    uploaded = Files(client).upload(jsonl(*(chat_line(str(i), "x") for i in range(40))), "a.jsonl")
    jobs = BatchJobs(client)
    job = jobs.create(input_files=[uploaded.id], model="mistral-large-2407")
    wait_for(jobs, job, lambda j: j.completed_requests > 0)
    cancelling = jobs.cancel(job.id)
    assert cancelling.status == "CANCELLATION_REQUESTED"
    done = wait_until_finished(jobs, cancelling)
    assert done.status == "CANCELLED"
    assert 0 < done.completed_requests < 40
    assert done.output_file is not None  # what ran before the cancel is kept (stub's choice)


def test_timeout_hours_end_a_slow_job(stub, client):
    backend = batch_of(stub)
    backend.seconds_per_hour = 0.2
    backend.seconds_per_request = 0.05
    uploaded = Files(client).upload(jsonl(*(chat_line(str(i), "x") for i in range(40))), "a.jsonl")
    jobs = BatchJobs(client)
    job = jobs.create(input_files=[uploaded.id], model="mistral-large-2407", timeout_hours=1)
    done = wait_until_finished(jobs, job)
    assert done.status == "TIMEOUT_EXCEEDED" and done.completed_requests < 40


def test_list_is_newest_first_and_filters(stub, client):
    uploaded = Files(client).upload(jsonl(chat_line("0", "x")), "a.jsonl")
    jobs = BatchJobs(client)
    first = jobs.create(input_files=[uploaded.id], model="mistral-large-2407", metadata={"k": "a"})
    second = jobs.create(input_files=[uploaded.id], model="mistral-large-2407", metadata={"k": "b"})
    assert [j.id for j in jobs.list()] == [second.id, first.id]
    assert [j.id for j in jobs.list(metadata={"k": "a"})] == [first.id]
    wait_until_finished(jobs, first)
    wait_until_finished(jobs, second)
    assert {j.id for j in jobs.list(status="SUCCESS")} == {first.id, second.id}


def test_create_validates_like_the_api(stub, client):
    jobs = BatchJobs(client)
    with pytest.raises(InvalidRequestError) as unknown:
        jobs.create(
            input_files=["4a0b0a6c-0000-0000-0000-000000000000"], model="mistral-large-2407"
        )
    assert unknown.value.status == 400 and "not found" in str(unknown.value)
    with pytest.raises(ModelNotFoundError):
        jobs.create(input_files=[], model="mistral-nonexistent")
    with pytest.raises(InvalidRequestError) as extra:
        jobs.create(input_files=[], model="mistral-large-2407", endpoint="/v1/nowhere")
    assert extra.value.status == 422


def test_unknown_job_and_a_server_without_batch_api(stub, client):
    with pytest.raises(BatchJobNotFoundError, match="knows no batch job"):
        BatchJobs(client).get("00000000-0000-0000-0000-000000000000")
    stub.dialect = "vllm"
    with pytest.raises(BatchUnavailableError, match="no Batch API"):
        BatchJobs(client).list()


def test_a_failed_job_reports_its_errors(stub, client):
    batch_of(stub).fail_jobs_with = "Input validation failed"
    uploaded = Files(client).upload(jsonl(chat_line("0", "x")), "a.jsonl")
    jobs = BatchJobs(client)
    done = wait_until_finished(
        jobs, jobs.create(input_files=[uploaded.id], model="mistral-large-2407")
    )
    assert done.status == "FAILED" and done.errors == [
        {"message": "Input validation failed", "count": 1}
    ]
