"""Trust, through a real kernel and the stub: every reply's provenance in its output's
metadata (the server's usage, the SHA-256 of the body the stub received), ``%mistral audit``
after two answers, ``%mistral replay`` (from the cache: nothing sent; else the same bytes),
the cost guard (a ``session_budget`` refusal and a ``confirm_above`` Cancel send nothing,
counted by the requests the stub received), and project instructions (``AGENTS.md`` beside
the notebook, ``Mistral.instructions``) in the system message and in ``--dry-run``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mistral_magic.engine.provenance import code_hash
from tests.kernel import Kernel, stub_kernel
from tests.stub import Reply, StubServer
from tests.widget_comm import click_widget

USAGE = {"prompt_tokens": 1200, "completion_tokens": 300, "total_tokens": 1500}
CODE_REPLY = "Here:\n```python\ntotal = sales['revenue'].sum()\n```\n"
AGENTS_TEXT = "Answer in French. Prefer polars to pandas."


@pytest.fixture(scope="module")
def stub() -> Iterator[StubServer]:
    with StubServer() as server:
        yield server


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project folder: the notebook's folder holds an AGENTS.md (and .git: the top)."""
    folder = tmp_path_factory.mktemp("project")
    (folder / ".git").mkdir()
    (folder / "AGENTS.md").write_text(AGENTS_TEXT, encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def kernel(stub: StubServer, project: Path) -> Iterator[Kernel]:
    setup = (
        "%load_ext mistral_magic\n"
        "%config Mistral.max_retries = 0\n"
        f"%config Mistral.cache_dir = {str(project / 'cache')!r}\n"
        "import pandas as pd\n"
        "sales = pd.DataFrame({'region': ['north', 'south'], 'revenue': [1.5, 2.5]})\n"
    )
    # Jupyter tells a kernel its notebook's path this way (``__session__``).
    with stub_kernel(stub, setup, JPY_SESSION_NAME=str(project / "analysis.ipynb")) as k:
        yield k


@pytest.fixture
def fresh(stub: StubServer, kernel: Kernel) -> Iterator[None]:
    stub.reset()
    for line in (
        "%mistral reset",
        "%config Mistral.session_budget = None",
        "%config Mistral.confirm_above = None",
        "%config Mistral.instructions = ''",
    ):
        ok(kernel, line)
    yield


def ok(kernel: Kernel, code: str) -> Any:
    run = kernel.execute(code, timeout=60)
    assert run.status == "ok", run.reply
    return run


def provenance_of(run: Any) -> dict[str, Any]:
    """The ``metadata["mistral"]`` of the answer's output (its last display)."""
    found = [
        m["content"]["metadata"]["mistral"]
        for m in run.messages
        if m["msg_type"] in ("display_data", "update_display_data")
        and "mistral" in (m["content"].get("metadata") or {})
    ]
    assert found, "no output carries provenance"
    return found[-1]


def sha256(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


# ------------------------------------------------------------------------------ provenance


def test_the_answer_output_carries_its_provenance(stub, kernel, fresh):
    stub.queue(Reply(text=CODE_REPLY, usage=USAGE))
    run = ok(kernel, "%%mistral --context vars\nWhat is the total revenue?")
    [posted] = stub.chat_requests
    record = provenance_of(run)
    assert record["body_sha256"] == sha256(posted.raw)
    assert record["usage"] == {"prompt_tokens": 1200, "completion_tokens": 300}
    assert record["model"] == "mistral-large-2407" and record["dialect"] == "mistral"
    assert record["parameters"]["max_tokens"] == posted.body["max_tokens"]
    assert record["request_id"] and record["timestamp"]
    assert record["question"] == "What is the total revenue?"
    assert any(label.startswith("sales") for label in record["context"])
    assert "instructions · AGENTS.md" in record["context"]
    # mistral-large-2407: $2 / $6 per 1M tokens in the prices table, a secondary source
    assert record["cost_usd"] == pytest.approx((1200 * 2 + 300 * 6) / 1e6)
    assert record["price"]["secondary"] is True and record["price"]["date"]
    assert record["code_sha256"] == code_hash("total = sales['revenue'].sum()")
    assert run.next_input == "total = sales['revenue'].sum()"
    saved = json.dumps(record)
    assert stub.api_key not in saved and "messages" not in saved


def test_audit_lists_two_answers_and_marks_the_edited_code(stub, kernel, fresh):
    stub.queue(
        Reply(text="```python\nfirst = 1 + 1\n```\n"),
        Reply(text="```python\nsecond = [x * 2 for x in range(3)]\n```\n"),
    )
    first = ok(kernel, "%%mistral --no-context\nAdd one and one.")
    second = ok(kernel, "%%mistral --no-context\nDouble a range.")
    # The code offered as new cells, run as the user would: the first as inserted, the
    # second edited first.
    ran = ok(kernel, first.next_input).reply["execution_count"]
    ok(kernel, second.next_input.replace("range(3)", "range(5)"))
    report = ok(kernel, "%mistral audit").markdown[-1]
    rows = {line.split(" | ")[-1].rstrip(" |"): line for line in report.splitlines()}
    # (answers of other tests in this kernel may be listed too)
    added = rows["Add one and one."]
    assert f"| In[{ran}] | as inserted |" in added
    assert "`mistral-large-2407`" in added
    doubled = rows["Double a range."]
    assert "**edited since insertion**" in doubled
    assert "edited since insertion)" in report.splitlines()[0]
    assert len(stub.chat_requests) == 2  # an audit sends nothing


# -------------------------------------------------------------------------------- replay


def _asked_in(run: Any) -> int:
    asked_in = provenance_of(run)["asked_in"]
    assert asked_in == run.reply["execution_count"]  # the In[n] the user sees
    return asked_in


def test_replay_from_the_cache_sends_nothing(stub, kernel, fresh):
    stub.queue(Reply(text="Forty-two."))
    first = ok(kernel, "%%mistral --cache --no-context\nThe answer to everything, cached?")
    assert len(stub.chat_requests) == 1
    replay = ok(kernel, f"%mistral replay {_asked_in(first)}")
    assert len(stub.chat_requests) == 1
    record = provenance_of(replay)
    assert record["cached"] is True and record["cost_usd"] in (0.0, None)
    assert record["body_sha256"] == provenance_of(first)["body_sha256"]
    assert "the same request" in replay.markdown[-1] and "the same reply" in replay.markdown[-1]


def test_replay_without_the_cache_posts_the_same_bytes(stub, kernel, fresh):
    stub.queue(Reply(text="One."), Reply(text="Two."))
    first = ok(kernel, "%%mistral --no-context\nCount to one.")
    replay = ok(kernel, f"%mistral replay {_asked_in(first)}")
    original, again = stub.chat_requests
    assert again.raw == original.raw
    assert provenance_of(replay)["replay_of"] == _asked_in(first)
    assert "the same request" in replay.markdown[-1] and "a different reply" in replay.markdown[-1]


# ---------------------------------------------------------------------------- cost guard


def test_a_request_past_the_session_budget_is_refused_and_not_sent(stub, kernel, fresh):
    ok(kernel, "%config Mistral.session_budget = 0.0001")
    run = ok(kernel, "%%mistral --no-context --max-tokens 1000\nA costly question?")
    assert stub.chat_requests == []
    shown = run.stdout + run.stderr + "".join(run.markdown)
    assert "Not sent" in shown and "Mistral.session_budget" in shown
    # a cheap enough request still goes
    ok(kernel, "%config Mistral.session_budget = 1.0")
    ok(kernel, "%%mistral --no-context --max-tokens 50\nA cheap question?")
    assert len(stub.chat_requests) == 1


def test_apply_obeys_the_session_budget(stub, kernel, fresh):
    ok(kernel, "%config Mistral.session_budget = 0.0001")
    run = kernel.execute(
        "import mistral_magic\n"
        "mistral_magic.apply(['a', 'b', 'c'], 'Say {}', max_tokens=500, progress=False)",
        timeout=60,
    )
    assert run.status == "error" and run.reply["ename"] == "CostRefused"
    assert "Mistral.session_budget" in run.reply["evalue"]
    assert stub.chat_requests == []


def _confirmation_buttons(kernel: Kernel) -> tuple[str, str]:
    run = ok(
        kernel,
        "from mistral_magic.session import session_for\n"
        "from mistral_magic.faces.magics import PENDING_CONFIRMATION\n"
        "_row = session_for(get_ipython()).kept(PENDING_CONFIRMATION).children[0]\n"
        "print(_row.send_button.model_id, _row.cancel_button.model_id)",
    )
    send, cancel = run.stdout.split()
    return send, cancel


def test_confirm_above_cancel_sends_nothing_and_send_sends_once(stub, kernel, fresh):
    ok(kernel, "%config Mistral.confirm_above = 0.0")
    asked = ok(kernel, "%%mistral --no-context --max-tokens 100\nIs this worth it?")
    assert stub.chat_requests == []
    assert "Mistral.confirm_above" in json.dumps(asked.messages, default=str)
    _, cancel = _confirmation_buttons(kernel)
    click_widget(kernel, cancel)
    assert stub.chat_requests == []

    ok(kernel, "%%mistral --no-context --max-tokens 100\nAnd this one?")
    send, _ = _confirmation_buttons(kernel)
    stub.queue(Reply(text="Worth it."))
    click_widget(kernel, send)
    done = ok(
        kernel,
        "_box = session_for(get_ipython()).kept(PENDING_CONFIRMATION)\n"
        "print(_box.children[-1].wait(30), _box.children[-1].status)",
    )
    assert done.stdout.split() == ["True", "done"]
    assert len(stub.chat_requests) == 1


# -------------------------------------------------------------------------- instructions


def test_agents_md_and_the_setting_reach_the_system_message(stub, kernel, fresh):
    ok(kernel, "%config Mistral.instructions = 'Keep answers under five lines.'")
    ok(kernel, "%%mistral --no-context\nHello?")
    system = stub.chat_requests[0].body["messages"][0]["content"]
    assert AGENTS_TEXT in system and "Keep answers under five lines." in system
    assert system.index("Keep answers") < system.index(AGENTS_TEXT)
    dry = ok(kernel, "%%mistral --dry-run --no-context\nHello?").markdown[-1]
    assert "Instructions sent" in dry and "AGENTS.md" in dry and "Mistral.instructions" in dry
    assert len(stub.chat_requests) == 1
