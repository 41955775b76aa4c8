"""The kernel side of inline completion: the names in scope and the data frames' columns and
dtypes, read by the front end's silent snippet (the same describers and redaction as the
sidebar's variable chips)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mistral_magic.context.snapshot import SCOPE_MARKER, SCOPE_SNIPPET, scope_json
from tests.kernel import Kernel

SECRET = "sk-live-0123456789abcdefSECRET"


@pytest.fixture(scope="module")
def kernel():
    kernel = Kernel({"MISTRAL_API_KEY": "test-key"})
    try:
        yield kernel
    finally:
        kernel.shutdown()


def test_the_snippet_prints_names_and_frame_columns_without_secrets(kernel):
    setup = kernel.execute(
        "import pandas as pd\n"
        "sales = pd.DataFrame({'region': ['north', 'south'], 'amount': [120, 80],"
        " 'note': ['" + SECRET + "', 'x']})\n"
        "threshold = 0.5\n"
        "api_key = '" + SECRET + "'\n"
        "def helper(x): return x\n"
    )
    assert setup.status == "ok", setup.reply
    run = kernel.execute(SCOPE_SNIPPET)
    assert run.status == "ok", run.reply
    line = next(x for x in run.stdout.splitlines() if x.startswith(SCOPE_MARKER))
    payload = json.loads(line[len(SCOPE_MARKER) :])
    names = payload["names"]
    assert "sales · DataFrame 2×3" in names
    assert "pd · module pandas" in names
    assert any(n.startswith("threshold") for n in names)
    assert any(n.startswith("helper") for n in names)
    assert not any("api_key" in n for n in names)
    frame = payload["frames"]["sales"]
    assert "region (object)" in frame or "region (str" in frame
    assert "amount (int64)" in frame
    assert SECRET not in json.dumps(payload)
    # the snippet leaves nothing behind in the user's namespace
    leftover = kernel.execute("print('_mistral_magic_snapshot' in dir())")
    assert leftover.stdout.strip() == "False"


def test_most_recently_used_names_come_first(kernel):
    kernel.execute("old = 1\nnewer = 2")
    kernel.execute("print(old)")
    run = kernel.execute(SCOPE_SNIPPET)
    line = next(x for x in run.stdout.splitlines() if x.startswith(SCOPE_MARKER))
    names = [n.split(" · ")[0] for n in json.loads(line[len(SCOPE_MARKER) :])["names"]]
    assert names.index("old") < names.index("newer")


def test_a_broken_namespace_gives_an_empty_scope():
    class Broken:
        user_ns = None

    payload = json.loads(scope_json(Broken()))
    assert (payload["names"], payload["frames"]) == ([], {}) and payload["error"]


def test_the_front_end_snippet_matches_this_module():
    source = (Path(__file__).resolve().parents[1] / "labextension/src/inlineScope.ts").read_text()
    assert SCOPE_MARKER in source
    for line in SCOPE_SNIPPET.strip("\n").splitlines():
        assert f"'{line}'" in source
