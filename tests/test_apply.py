"""mistral_magic.apply / map against the stub, over real sockets: order, shapes, templates,
partial failures, 429/5xx handling, JSON modes, confirmation, interrupt and resume."""

from __future__ import annotations

import _thread
import asyncio
import dataclasses
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from pydantic import BaseModel

import mistral_magic
import mistral_magic.bulk.run as bulk_run
from mistral_magic.api.errors import AuthenticationError, ModelNotFoundError, RateLimitError
from mistral_magic.api.retry import RetryPolicy
from mistral_magic.bulk.outcomes import ApplyCancelled, ApplyError, ApplyFailed
from mistral_magic.bulk.pool import Throttle
from mistral_magic.bulk.template import TemplateError
from tests.stub import Fault, Reply
from tests.stub.errors import mistral_error

ROOT = Path(__file__).resolve().parents[1]


def user_text(body: dict) -> str:
    return body["messages"][-1]["content"]


def echo(body: dict) -> Reply:
    return Reply(text="re: " + user_text(body).split("\n\n")[0])


@pytest.fixture
def env(stub_env, tmp_path, monkeypatch):
    """The stub (echoing each prompt), a private cache folder, quiet settings."""
    monkeypatch.setenv("MISTRAL_MAGIC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("MISTRAL_DIALECT", "mistral")
    stub_env.responder = echo
    return stub_env


def run(data, template="{}", **kwargs):
    kwargs.setdefault("progress", False)
    return mistral_magic.apply(data, template, **kwargs)


# ------------------------------------------------------------------------ shapes, order


def test_list_in_list_out_in_input_order_despite_shuffled_completion(env):
    def slow_echo(body):
        time.sleep(random.uniform(0, 0.03))  # replies finish out of order
        return echo(body)

    env.responder = slow_echo
    items = [f"item {i}" for i in range(40)]
    out = run(items, "Say {}", concurrency=8)
    assert out == [f"re: Say item {i}" for i in range(40)]
    sent = env.chat_requests
    assert len(sent) == 40
    assert sent[0].body["temperature"] == 0.0  # apply's default: repeatable


def test_series_keeps_its_index_and_name(env):
    s = pd.Series(["a", "b", "c"], index=[30, 10, 20], name="text")
    out = run(s, "Q: {}")
    assert isinstance(out, pd.Series)
    assert list(out.index) == [30, 10, 20] and out.name == "text"
    assert out.tolist() == ["re: Q: a", "re: Q: b", "re: Q: c"]


def test_dataframe_template_names_columns_and_missing_rows_are_skipped(env):
    df = pd.DataFrame(
        {"title": ["Bug", None, "Idea"], "body": ["crash", None, "dark mode"], "n": [1, None, 3]},
        index=["x", "y", "z"],
    )
    out = run(df, "{title}: {body} (#{n:.0f})")
    assert out.to_dict() == {
        "x": "re: Bug: crash (#1)",
        "y": None,
        "z": "re: Idea: dark mode (#3)",
    }
    assert len(env.chat_requests) == 2  # the all-missing row is not sent


def test_list_of_dicts_and_the_map_alias(env):
    assert run([{"q": "one"}, {"q": "two"}], "{q}?") == ["re: one?", "re: two?"]
    assert mistral_magic.map(["hi"], progress=False) == ["re: hi"]


def test_literal_braces_are_escaped_like_str_format(env):
    out = run(["spam"], 'Label {} as {{"label": "..."}}')
    assert out == ['re: Label spam as {"label": "..."}']


def test_template_mistakes_get_one_clear_paragraph(env):
    with pytest.raises(TemplateError, match=r"double.*\{\{"):
        run(["x"], 'Reply like {"label": 1}: {}')
    with pytest.raises(TemplateError, match=r"not a column.*'title', 'body'"):
        run(pd.DataFrame({"title": ["a"], "body": ["b"]}), "{titel}")
    with pytest.raises(TemplateError, match="no \\{\\} field"):
        run(["x"], "The same for all")
    with pytest.raises(TypeError, match="many items"):
        run("just one string")
    assert env.chat_requests == []


# ----------------------------------------------------------------------- failures


def test_one_bad_row_becomes_an_error_value_and_the_others_survive(env):
    def picky(body):
        if "poison" in user_text(body):
            raise mistral_error("Prompt contains a forbidden word", "invalid_request_error", None)
        return echo(body)

    env.responder = picky
    out = run(["a", "poison", "c"], "{}")
    assert out[0] == "re: a" and out[2] == "re: c"
    error = out[1]
    assert isinstance(error, ApplyError) and not error
    assert error.kind == "request" and error.status == 400 and error.row == 1
    assert "forbidden word" in repr(error) and repr(error).startswith("ApplyError(row 1, request:")
    assert len(env.chat_requests) == 3  # a 400 is not retried

    with pytest.raises(ApplyFailed) as raised:
        run(["a", "poison", "c"], "{}", errors="raise", cache=False)
    assert raised.value.results[0] == "re: a" and len(raised.value.errors) == 1
    assert "1 of 3 rows failed" in str(raised.value)


def test_server_errors_are_retried_per_item(env):
    env.queue(Fault(503), Fault(500), Fault(502))
    out = run([f"q{i}" for i in range(6)], "{}", concurrency=2)
    assert out == [f"re: q{i}" for i in range(6)]
    assert len(env.chat_requests) == 9


def test_a_429_pauses_the_pool_for_its_retry_after_then_the_run_completes(env):
    in_flight = {"now": 0, "most": 0}
    lock = threading.Lock()

    def counting(body):
        with lock:
            in_flight["now"] += 1
            in_flight["most"] = max(in_flight["most"], in_flight["now"])
        try:
            return echo(body)
        finally:
            with lock:
                in_flight["now"] -= 1

    env.responder = counting
    env.queue(Fault(429, headers={"Retry-After": "0.5"}))
    out = run([f"q{i}" for i in range(40)], "{}", concurrency=8)
    assert out == [f"re: q{i}" for i in range(40)]
    requests = env.chat_requests
    assert len(requests) == 41  # 40 + the one that got the 429
    asked = Counter(user_text(r.body) for r in requests)
    [twice] = [text for text, times in asked.items() if times > 1]
    refused, again = [r for r in requests if user_text(r.body) == twice]
    # Both stamps are the stub's clock. The pool read the 429 after the stub received the
    # request, and waits Retry-After from then: a lower bound the code guarantees.
    assert again.received_at - refused.received_at >= 0.5
    assert in_flight["most"] <= 8


def rate_limited(retry_after: float) -> RateLimitError:
    return RateLimitError("429", status=429, retry_after=retry_after)


def test_the_throttle_halves_once_per_congestion_event_pauses_and_widens_again():
    """The pool's limiter on its own (its clock is the event loop's): what the run above
    cannot show without timing its requests."""

    async def scenario() -> None:
        throttle = Throttle(8, RetryPolicy())
        started = [await throttle.acquire() for _ in range(8)]
        assert throttle.allowed == 8 and throttle.active == 8
        before = time.monotonic()
        await throttle.release(started[0], ok=False, rate_limited=rate_limited(0.5))
        after = time.monotonic()
        assert throttle.allowed == 4
        assert before + 0.5 <= throttle.resume_at <= after + 0.5
        # A second 429 for a request sent before the cut is the same congestion event.
        await throttle.release(started[1], ok=False, rate_limited=rate_limited(0.5))
        assert throttle.allowed == 4
        # Successes widen the pool again, by about one per round of the pool.
        for start in started[2:]:
            await throttle.release(start, ok=True)
        assert throttle.allowed == 5 and throttle.active == 0
        # Nobody starts before the pause is over.
        assert await throttle.acquire() >= throttle.resume_at
        # A 429 for a request sent after the cut is a new event: halved again.
        resumed = await throttle.acquire()
        await throttle.release(resumed, ok=False, rate_limited=rate_limited(0.0))
        assert throttle.allowed == 2
        # Widening stops at the ceiling.
        for _ in range(200):
            await throttle.release(await throttle.acquire(), ok=True)
        assert throttle.allowed == 8

    asyncio.run(scenario())


def test_a_refused_key_stops_the_run_with_the_clients_message(env, monkeypatch):
    monkeypatch.setenv("MISTRAL_API_KEY", "wrong-key")
    with pytest.raises(AuthenticationError, match="MISTRAL_API_KEY"):
        run([f"q{i}" for i in range(20)], "{}", concurrency=2)
    assert len(env.requests) <= 2  # stopped at once, not once per row


def test_an_unknown_model_stops_the_run(env):
    with pytest.raises(ModelNotFoundError):
        run(["a", "b"], "{}", model="mistral-nonexistent")


def test_missing_key_is_reported_before_any_estimate(env, monkeypatch, capsys):
    monkeypatch.delenv("MISTRAL_API_KEY")
    with pytest.raises(Exception, match="No Mistral API key"):
        run(["a"], "{}", progress=True)
    assert "requests to" not in capsys.readouterr().out
    assert env.chat_requests == []  # (GET /models may have been asked, for the dialect)


# ------------------------------------------------------------------------ JSON modes


class Label(BaseModel):
    label: str
    score: float


@dataclasses.dataclass
class Point:
    x: int
    y: int


def test_json_true_parses_and_asks_for_json(env):
    env.responder = lambda body: Reply(text='```json\n{"ok": true}\n```')
    assert run(["a"], "{}", json=True) == [{"ok": True}]
    body = env.chat_requests[0].body
    assert body["response_format"] == {"type": "json_object"}
    assert body["messages"][-1]["content"].endswith("Answer with one JSON object and nothing else.")


def test_pydantic_model_gives_instances_and_puts_the_schema_in_the_prompt(env):
    env.responder = lambda body: Reply(text='{"label": "pos", "score": 0.9}')
    out = run(pd.Series(["great"]), "Classify: {}", json_schema=Label)
    assert out[0] == Label(label="pos", score=0.9)
    prompt = user_text(env.chat_requests[0].body)
    assert '"score"' in prompt and "JSON Schema" in prompt


def test_dataclass_and_dict_schemas(env):
    env.responder = lambda body: Reply(text='{"x": 1, "y": 2}')
    assert run(["p"], "{}", json_schema=Point) == [Point(1, 2)]
    schema = {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]}
    assert run(["p"], "{}", json_schema=schema, cache=False) == [{"x": 1, "y": 2}]


def test_an_invalid_reply_is_corrected_once(env):
    replies = iter(['{"label": "pos"}', '{"label": "pos", "score": 1}'])
    env.responder = lambda body: Reply(text=next(replies))
    out = run(["a"], "{}", json_schema=Label)
    assert out == [Label(label="pos", score=1.0)]
    retry = env.chat_requests[1].body["messages"]
    assert [m["role"] for m in retry] == ["user", "assistant", "user"]
    assert "score" in retry[-1]["content"] and "Field required" in retry[-1]["content"]
    assert run(["a"], "{}", json_schema=Label) == out  # the correction is cached too
    assert len(env.chat_requests) == 2


def test_a_reply_invalid_twice_is_reported_per_row(env):
    def replies(body):
        bad = "bad" in body["messages"][0]["content"]
        return Reply(text="not json" if bad else '{"label": "x", "score": 0}')

    env.responder = replies
    out = run(["good", "bad"], "{}", json_schema=Label)
    assert out[0] == Label(label="x", score=0)
    assert isinstance(out[1], ApplyError) and out[1].kind == "invalid_reply"
    assert "not valid JSON" in out[1].message and out[1].reply == "not json"
    assert len(env.chat_requests) == 3


# -------------------------------------------------------------- estimate and confirmation


def test_the_estimate_counts_exact_prompt_tokens(env, capsys):
    run(["a", "b"], "{}", progress=True)
    out = capsys.readouterr().out
    assert "2 requests to mistral-large-2407" in out and "(exact)" in out
    from mistral_magic.context.budget import count_request_tokens

    expected = sum(
        count_request_tokens(r.body["messages"], "mistral-large-2407") for r in env.chat_requests
    )
    assert f"{expected:,} prompt tokens" in out
    assert "Done in" in out and "2 rows answered" in out


def test_above_the_threshold_it_asks_and_no_means_nothing_is_sent(env, monkeypatch):
    monkeypatch.setattr("builtins.input", lambda prompt: "n")
    with pytest.raises(ApplyCancelled, match="confirm=False"):
        run(["a", "b"], "{}", confirm=0.000001)
    assert env.chat_requests == []
    monkeypatch.setattr("builtins.input", lambda prompt: "y")
    assert run(["a"], "{}", confirm=True) == ["re: a"]
    # no stdin at all (a script, nbclient): not confirmed
    monkeypatch.setattr("builtins.input", lambda prompt: (_ for _ in ()).throw(EOFError))
    with pytest.raises(ApplyCancelled):
        run(["b"], "{}", confirm=True)
    assert run(["b"], "{}", confirm=False) == ["re: b"]


# ------------------------------------------------------------ cache, interrupt, resume


def test_a_rerun_is_answered_from_the_cache(env, capsys):
    items = [f"q{i}" for i in range(10)]
    first = run(items, "{}")
    assert len(env.chat_requests) == 10
    again = run(items, "{}", progress=True)
    assert again == first
    assert len(env.chat_requests) == 10  # nothing sent: every answer came from the cache
    assert "10 from the cache" in capsys.readouterr().out


def test_cache_is_off_by_default_when_sampling(env):
    run(["a"], "{}", temperature=0.7)
    run(["a"], "{}", temperature=0.7)
    assert len(env.chat_requests) == 2
    run(["a"], "{}", temperature=0.7, seed=3)
    run(["a"], "{}", temperature=0.7, seed=3)
    assert len(env.chat_requests) == 3
    assert env.chat_requests[-1].body["random_seed"] == 3


def test_identical_rows_share_one_request(env):
    assert run(["same", "same", "other", "same"], "{}") == ["re: same"] * 2 + [
        "re: other",
        "re: same",
    ]
    assert len(env.chat_requests) == 2


@pytest.fixture
def stop_said(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """Set once apply has reacted to Ctrl-C (the pool told to stop, the user told what
    happens). A simulated Ctrl-C is only seen when the main thread next wakes: replies held
    until this is set are in flight when it reacts, however late a loaded machine lets it.

    Ctrl-C raises KeyboardInterrupt here, as in a kernel or IPython: a test run started in
    the background (``pytest &``) inherits SIGINT ignored, and then a simulated Ctrl-C does
    nothing at all."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    said = threading.Event()
    original = bulk_run.run_in_thread

    def observed(*args: Any, on_stop: Any = None, **kwargs: Any) -> None:
        def told() -> None:
            if on_stop is not None:
                on_stop()
            said.set()

        original(*args, on_stop=told, **kwargs)

    monkeypatch.setattr(bulk_run, "run_in_thread", observed)
    yield said
    signal.signal(signal.SIGINT, previous)


def test_interrupt_keeps_finished_rows_and_a_rerun_finishes_the_rest(env, capsys, stop_said):
    answered = []

    def interrupting(body):
        answered.append(body)
        if len(answered) == 12:  # Ctrl-C while the pool is busy
            _thread.interrupt_main()
        elif len(answered) > 12:
            stop_said.wait(30)  # bounded: if apply never reacts, the asserts below say so
        return echo(body)

    env.latency = 0.05
    env.responder = interrupting
    items = [f"q{i}" for i in range(60)]
    partial = run(items, "{}", concurrency=4)
    env.responder = echo
    done = [v for v in partial if not isinstance(v, ApplyError)]
    stopped = [v for v in partial if isinstance(v, ApplyError)]
    assert done and stopped and len(done) + len(stopped) == 60
    assert all(v.kind == "interrupted" for v in stopped)
    assert all(partial[i] == f"re: q{i}" for i in range(60) if partial[i])
    note = capsys.readouterr().err
    assert "Interrupted after" in note and "run the same call again" in note
    sent_before = len(env.chat_requests)

    env.latency = 0.0
    full = run(items, "{}", concurrency=4)
    assert full == [f"re: q{i}" for i in range(60)]
    resent = len(env.chat_requests) - sent_before
    assert resent == len(stopped)  # finished rows (in flight at Ctrl-C too) came from the cache


def test_answers_in_flight_at_ctrl_c_are_kept_not_asked_again(env, capsys, stop_said):
    """Ctrl-C lets the requests already sent finish: their answers (billed anyway) come back
    and are cached, so the interrupted run plus a resume ask each prompt exactly once."""
    arrived = []

    def interrupting(body):
        arrived.append(body)
        if len(arrived) == 12:  # Ctrl-C with requests 9 to 12 in flight
            _thread.interrupt_main()
        elif len(arrived) > 8:
            stop_said.wait(30)  # bounded: if apply never reacts, the asserts below say so
        return echo(body)

    env.latency = 0.05
    env.responder = interrupting
    items = [f"q{i}" for i in range(60)]
    partial = run(items, "{}", concurrency=4)
    sent_before = len(env.chat_requests)
    answered = [i for i, v in enumerate(partial) if not isinstance(v, ApplyError)]
    assert sent_before >= 12 and len(answered) == sent_before  # every request sent came back
    assert all(partial[i] == f"re: q{i}" for i in answered)
    assert "Stopping: the" in capsys.readouterr().err

    env.latency = 0.0
    env.responder = echo
    full = run(items, "{}", concurrency=4)
    assert full == [f"re: q{i}" for i in range(60)]
    sent = Counter(user_text(r.body) for r in env.chat_requests)
    assert sent == Counter(items)  # each prompt asked once, across both runs


def test_cache_hits_across_processes(env, tmp_path):
    script = (
        "import mistral_magic\n"
        "out = mistral_magic.apply(['p1', 'p2', 'p3'], 'Tell me {}', progress=False)\n"
        "print(out)\n"
    )

    def child():
        return subprocess.run(
            [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60
        )

    first = child()
    assert first.returncode == 0, first.stderr
    assert len(env.chat_requests) == 3
    second = child()
    assert second.returncode == 0, second.stderr
    assert second.stdout == first.stdout
    assert len(env.chat_requests) == 3  # the second process sent nothing
    assert run(["p1"], "Tell me {}") == ["re: Tell me p1"]
    assert len(env.chat_requests) == 3


def test_import_is_light():
    code = (
        "import sys, mistral_magic\n"
        "mistral_magic.apply, mistral_magic.batch_results\n"
        "heavy = [m for m in ('pandas', 'httpx', 'tqdm', 'pydantic', 'jsonschema') "
        "if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.stdout.strip() == "[]", out.stderr
