"""apply() inside a real ipykernel (whose asyncio loop is already running), and the helpers
the magics call: run_map_magic and cache_subcommand."""

from __future__ import annotations

import threading
from collections import Counter

import pytest

from tests.kernel import stub_kernel
from tests.stub import Reply


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    from tests.stub import StubServer

    with StubServer() as stub:
        stub.responder = lambda body: Reply(text="re: " + body["messages"][-1]["content"])
        with stub_kernel(
            stub,
            "import pandas as pd, mistral_magic\n"
            "df = pd.DataFrame({'text': ['good', 'bad']}, index=[5, 6])\n",
            MISTRAL_MAGIC_CACHE_DIR=str(tmp_path_factory.mktemp("cache")),
        ) as k:
            yield k, stub


def test_apply_runs_inside_the_kernels_event_loop(kernel):
    k, _ = kernel
    run = k.execute("out = mistral_magic.apply(df.text, 'Rate: {}')\nprint(out.to_dict())")
    assert run.status == "ok", run.reply
    assert "{5: 're: Rate: good', 6: 're: Rate: bad'}" in run.stdout
    assert "2 requests to mistral-large-2407" in run.stdout
    assert "Done in" in run.stdout


def test_run_map_magic_appends_the_item_and_caches_only_when_asked(kernel):
    k, stub = kernel
    before = len(stub.chat_requests)
    code = (
        "from mistral_magic.bulk.magic import run_map_magic, cache_subcommand\n"
        "r = run_map_magic(get_ipython(), 'df.text', 'Classify this review:\\n', "
        "cache=True, progress=False)\n"
        "print(r.tolist())\n"
        "print(cache_subcommand('info'))\n"
    )
    run = k.execute(code)
    assert run.status == "ok", run.reply
    assert (
        "['re: Classify this review:\\n\\ngood', 're: Classify this review:\\n\\nbad']"
        in run.stdout
    )
    assert "| entries |" in run.stdout
    assert len(stub.chat_requests) == before + 2
    again = k.execute(code)
    assert again.status == "ok" and len(stub.chat_requests) == before + 2  # from the cache
    cleared = k.execute("print(cache_subcommand('clear'))")
    assert "Removed" in cleared.stdout and "cached responses" in cleared.stdout


def test_map_magic_usage_errors_are_one_paragraph(kernel):
    k, _ = kernel
    run = k.execute(
        "from mistral_magic.bulk.magic import run_map_magic\n"
        "run_map_magic(get_ipython(), 'nope.text', 'Q: {}')"
    )
    assert run.status == "error"
    assert run.reply["ename"] == "UsageError"
    assert "--map nope.text" in run.reply["evalue"] and "NameError" in run.reply["evalue"]


def test_ctrl_c_in_the_kernel_keeps_the_answers_in_flight(kernel):
    """A real interrupt (SIGINT to the kernel) while four requests are in flight: they
    finish and are kept, so a resume sends only the rest, each prompt once in all."""
    k, stub = kernel
    arrived: list[str] = []
    interrupted = threading.Event()

    def holding_four(body):
        prompt = body["messages"][-1]["content"]
        arrived.append(prompt)
        if len(arrived) == 12:
            k.interrupt()
            interrupted.set()
        elif len(arrived) > 8:
            interrupted.wait(10)  # in flight when the interrupt comes
        return Reply(text="re: " + prompt)

    before = len(stub.chat_requests)
    stub.responder = holding_four
    try:
        run = k.execute(
            "items = [f'ctrl-c {i}' for i in range(40)]\n"
            "out = mistral_magic.apply(items, '{}', concurrency=4, progress=False)\n"
            "print(sum(1 for v in out if v))"
        )
    finally:
        stub.responder = lambda body: Reply(text="re: " + body["messages"][-1]["content"])
    assert run.status == "ok", run.reply
    first_run = stub.chat_requests[before:]
    assert int(run.stdout.strip()) == len(first_run) >= 12  # nothing sent was thrown away
    assert "Stopping: the" in run.stderr and "Interrupted after" in run.stderr
    resumed = k.execute("out = mistral_magic.apply(items, '{}', concurrency=4, progress=False)")
    assert resumed.status == "ok", resumed.reply
    sent = Counter(r.body["messages"][-1]["content"] for r in stub.chat_requests[before:])
    assert sent == Counter(f"ctrl-c {i}" for i in range(40))
