"""apply() inside a real ipykernel (whose asyncio loop is already running), and the helpers
the magics call: run_map_magic and cache_subcommand."""

from __future__ import annotations

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
            XDG_CACHE_HOME=str(tmp_path_factory.mktemp("cache")),
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
