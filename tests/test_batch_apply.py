"""apply(..., batch=True) and batch_results end to end: upload, job, poll, results in order,
failed lines, the cache, interrupt and resume (in a new process too), cancel."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from pydantic import BaseModel

import mistral_magic
from mistral_magic.api.batch import BatchUnavailableError
from mistral_magic.bulk import batch as batch_module
from mistral_magic.bulk.batch import BatchNotFinished
from mistral_magic.bulk.outcomes import ApplyError
from tests.stub import Reply
from tests.stub.batch import batch_of
from tests.stub.errors import mistral_error

ROOT = Path(__file__).resolve().parents[1]


def first_user_text(body: dict) -> str:
    return body["messages"][0]["content"]


def echo_or_fail(body: dict) -> Reply:
    text = first_user_text(body).split("\n\n")[0]
    if "poison" in text:
        raise mistral_error("This line cannot be served", "invalid_request_error", None)
    return Reply(text=f"re: {text}")


@pytest.fixture
def env(stub_env, tmp_path, monkeypatch):
    monkeypatch.setenv("MISTRAL_MAGIC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("MISTRAL_DIALECT", "mistral")
    monkeypatch.setattr(batch_module, "POLL_FIRST_SECONDS", 0.02)
    monkeypatch.setattr(batch_module, "POLL_MAX_SECONDS", 0.05)
    stub_env.responder = echo_or_fail
    backend = batch_of(stub_env)
    backend.queue_seconds = 0.02
    backend.shuffle_output = True  # results must be joined on custom_id, not line order
    return stub_env


@pytest.fixture
def interrupt_while_waiting(monkeypatch):
    """Arm a Ctrl-C for the next time apply starts waiting for its batch job: the wait is
    interrupted as it begins (the job is submitted and still running), once; later waits
    (a re-run, batch_results) are left alone."""
    real_wait = batch_module.wait_for

    def arm() -> None:
        def wait_for(*args, **kwargs):
            monkeypatch.setattr(batch_module, "wait_for", real_wait)  # one shot
            raise KeyboardInterrupt

        monkeypatch.setattr(batch_module, "wait_for", wait_for)

    return arm


def uploads(stub) -> list:
    return [r for r in stub.requests if r.method == "POST" and r.path == "/v1/files"]


def run(data, template="{}", **kwargs):
    kwargs.setdefault("progress", False)
    return mistral_magic.apply(data, template, batch=True, **kwargs)


def test_batch_results_come_back_in_order_with_failed_lines_as_errors(env, capsys):
    frame = pd.DataFrame({"text": [f"t{i}" for i in range(12)]}, index=list("abcdefghijkl"))
    frame.loc["e", "text"] = "poison"
    out = run(frame, "Say {text}", progress=True)
    assert isinstance(out, pd.Series) and list(out.index) == list("abcdefghijkl")
    assert out["a"] == "re: Say t0" and out["l"] == "re: Say t11"
    failed = out["e"]
    assert isinstance(failed, ApplyError) and failed.status == 400
    assert "cannot be served" in failed.message and "batch job" in failed.message
    assert env.chat_requests == []  # nothing went through the chat endpoint

    (upload,) = uploads(env)
    assert b'name="purpose"\r\n\r\nbatch\r\n' in upload.raw
    job_request = next(r for r in env.requests if r.path == "/v1/batch/jobs")
    assert job_request.body["endpoint"] == "/v1/chat/completions"
    assert job_request.body["model"] == "mistral-large-2407"
    text = capsys.readouterr().out
    assert "batch price (50% of the normal price)" in text and "Submitted batch job" in text


def test_batch_line_bodies_have_no_model_and_results_fill_the_cache(env):
    items = ["a", "b", "c"]
    assert run(items) == ["re: a", "re: b", "re: c"]
    (upload,) = uploads(env)
    line = json.loads(upload.raw.split(b"\r\n\r\n")[2].split(b"\n")[0])
    assert set(line) == {"custom_id", "body"} and "model" not in line["body"]
    assert line["body"]["temperature"] == 0.0
    # the same rows without batch: all from the cache, nothing sent
    assert mistral_magic.apply(items, "{}", progress=False) == ["re: a", "re: b", "re: c"]
    assert env.chat_requests == [] and len(uploads(env)) == 1


class Verdict(BaseModel):
    ok: bool


def test_json_schema_in_batch_and_the_correction_goes_through_chat(env):
    def replies(body):
        if len(body["messages"]) > 1:  # the correction turn
            return Reply(text='{"ok": false}')
        return Reply(text='{"ok": true}' if "good" in first_user_text(body) else "nope")

    env.responder = replies
    out = run(["good", "bad"], json_schema=Verdict)
    assert out == [Verdict(ok=True), Verdict(ok=False)]
    assert len(env.chat_requests) == 1  # only the correction


def test_interrupted_wait_leaves_the_job_running_and_a_rerun_picks_it_up(
    env, capsys, interrupt_while_waiting
):
    batch_of(env).seconds_per_request = 0.05
    items = [f"q{i}" for i in range(20)]
    interrupt_while_waiting()
    partial = run(items)
    assert all(isinstance(v, ApplyError) and v.kind == "interrupted" for v in partial)
    note = capsys.readouterr().err
    assert "goes on at Mistral" in note and "batch_results(" in note and "cancel_batch(" in note

    again = run(items, progress=True)
    assert again == [f"re: q{i}" for i in range(20)]
    assert len(uploads(env)) == 1  # picked up, not submitted twice
    assert "Picking up batch job" in capsys.readouterr().out


def test_batch_results_in_a_new_process_after_a_restart(env, interrupt_while_waiting):
    batch_of(env).seconds_per_request = 0.05
    series = pd.Series(["x", "y", "z"], index=[7, 8, 9], name="col")
    interrupt_while_waiting()
    run(series)
    (job_id,) = [j["id"] for j in _jobs(env)]
    code = (
        "import mistral_magic, mistral_magic.bulk.batch as b\n"
        "b.POLL_FIRST_SECONDS = b.POLL_MAX_SECONDS = 0.02\n"
        f"out = mistral_magic.batch_results({job_id!r}, progress=False)\n"
        "print(out.to_dict(), out.name)\n"
    )
    child = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert child.returncode == 0, child.stderr
    assert child.stdout.strip() == "{7: 're: x', 8: 're: y', 9: 're: z'} col"


def _jobs(stub) -> list[dict]:
    return batch_of(stub).jobs and [job.wire for job in batch_of(stub).jobs.values()]


def test_wait_false_on_a_running_job_and_cancel(env, interrupt_while_waiting):
    batch_of(env).seconds_per_request = 60  # still running whenever it is looked at
    interrupt_while_waiting()
    run([f"q{i}" for i in range(30)])
    (job_id,) = [j["id"] for j in _jobs(env)]
    with pytest.raises(BatchNotFinished, match=r"RUNNING|QUEUED"):
        mistral_magic.batch_results(job_id, wait=False, progress=False)
    assert mistral_magic.cancel_batch(job_id).status == "CANCELLATION_REQUESTED"
    out = mistral_magic.batch_results(job_id, progress=False)
    unfinished = [v for v in out if isinstance(v, ApplyError)]
    assert unfinished and all(v.kind == "batch" and "CANCELLED" in v.message for v in unfinished)


def test_a_server_without_batch_api_says_so(env):
    env.dialect = "vllm"
    with pytest.raises(BatchUnavailableError, match="without batch=True"):
        run(["a"])


def test_job_records_and_cache_never_hold_the_key(env, tmp_path):
    run(["a", "b"])
    stored = [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]
    assert any(p.suffix == ".json" for p in stored)  # the job record
    assert all(env.api_key.encode() not in p.read_bytes() for p in stored)
