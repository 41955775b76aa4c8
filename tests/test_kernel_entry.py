"""The kernel side of the sidebar's tools (``mistral_magic.kernel_entry``), in an IPython
shell: the definitions the model is offered and one call run as ``--tools all`` runs it."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from IPython import get_ipython
from IPython.testing.globalipapp import start_ipython

from mistral_magic.kernel_entry import MARKER, SNIPPET, respond, serve
from mistral_magic.tools.core import BUILTIN_NAMES, registry, tool

SECRET = "sk-proj-KERNELENTRYSECRET1234567890"


@pytest.fixture(scope="module")
def shell() -> Any:
    ip = start_ipython() or get_ipython()
    before = set(ip.user_ns)
    ip.run_cell(
        "import pandas as pd\n"
        "sales = pd.DataFrame({'region': ['north', 'south'], 'amount': [120, 80]})\n"
        f"api_token = {SECRET!r}\n"
        f"note = 'the token is {SECRET}'\n"
    )
    yield ip
    for name in set(ip.user_ns) - before:
        ip.user_ns.pop(name, None)


@pytest.fixture
def user_tools() -> Any:
    @tool
    def double(x: int) -> int:
        """Twice x."""
        return 2 * x

    @tool(confirm=True)
    def send_email(to: str) -> str:
        """Send an email."""
        return f"sent to {to}"

    yield
    registry.remove("double")
    registry.remove("send_email")


def _ask(shell: Any, **request: Any) -> dict[str, Any]:
    encoded = base64.b64encode(json.dumps(request).encode()).decode()
    return json.loads(respond(encoded, shell))


def test_definitions_are_the_notebook_tools_and_the_kernels_own(
    shell: Any, user_tools: Any
) -> None:
    answer = _ask(shell, op="definitions")
    names = [t["function"]["name"] for t in answer["tools"]]
    assert names[: len(BUILTIN_NAMES)] == list(BUILTIN_NAMES)
    assert "double" in names
    assert "send_email" not in names and answer["not_offered"] == ["send_email"]
    double = next(t for t in answer["tools"] if t["function"]["name"] == "double")
    assert double["function"]["parameters"]["properties"]["x"]["type"] == "integer"


def test_a_call_runs_as_the_magic_runs_it(shell: Any, user_tools: Any) -> None:
    described = _ask(shell, op="run", name="describe_variable", arguments='{"name": "sales"}')
    assert described["status"] == "ok"
    assert "DataFrame" in described["result"] and "north" in described["result"]
    assert _ask(shell, op="run", name="double", arguments={"x": 21})["result"] == "42"
    # redacted like every tool result of the magic
    shown = _ask(shell, op="run", name="describe_variable", arguments={"name": "note"})
    assert SECRET not in json.dumps(shown)


def test_failures_are_results_for_the_model(shell: Any, user_tools: Any) -> None:
    unknown = _ask(shell, op="run", name="rm_rf", arguments={})
    assert unknown["status"] == "error" and "no tool named 'rm_rf'" in unknown["result"]
    wrong = _ask(shell, op="run", name="double", arguments={"x": "many"})
    assert wrong["status"] == "error" and "invalid arguments" in wrong["result"]
    broken = _ask(shell, op="run", name="double", arguments="{not json")
    assert broken["status"] == "error"
    asked = _ask(shell, op="run", name="send_email", arguments={"to": "a@b.c"})
    assert asked["status"] == "declined" and "no way to ask" in asked["result"]
    garbage = json.loads(respond("%%%", shell))
    assert garbage["status"] == "error" and garbage["version"] == 1


def test_results_are_cut_to_what_the_server_asks(shell: Any) -> None:
    shell.user_ns["long_text"] = "word " * 5000
    try:
        cut = _ask(
            shell,
            op="run",
            name="describe_variable",
            arguments={"name": "long_text"},
            max_chars=300,
        )
    finally:
        shell.user_ns.pop("long_text")
    assert len(cut["result"]) <= 300 and "cut" in cut["result"]


def test_serve_prints_one_marked_line(shell: Any, capsys: pytest.CaptureFixture[str]) -> None:
    serve(base64.b64encode(b'{"op": "definitions"}').decode(), shell)
    out = capsys.readouterr().out
    assert out.startswith(MARKER) and out.count("\n") == 1
    assert json.loads(out[len(MARKER) :])["tools"]


def test_the_front_end_snippet_matches_this_module() -> None:
    kernel_ts = Path(__file__).resolve().parents[1] / "labextension" / "src" / "kernel.ts"
    source = kernel_ts.read_text()
    assert MARKER in source
    for line in SNIPPET.strip("\n").splitlines():
        assert f"'{line}'" in source


def test_inline_usage_from_the_page_shows_in_mistral_usage(shell: Any) -> None:
    """Inline completions are the Jupyter server's; the page passes their count along with
    its scope read, and ``%mistral usage`` shows it, with when it was passed (issue #13)."""
    from mistral_magic.engine.usage import INLINE_USAGE
    from mistral_magic.session import end_session, session_for

    usage = {"requests": 3, "prompt_tokens": 1200, "completion_tokens": 45, "cost": 0.00042}
    end_session(shell)
    # without a loaded extension there is no session to keep it in: nothing is created
    assert _ask(shell, op="inline_usage", usage=usage)["status"] == "declined"
    assert session_for(shell, create=False) is None
    shell.run_line_magic("load_ext", "mistral_magic")
    try:
        assert _ask(shell, op="inline_usage", usage=usage)["status"] == "ok"
        shown = session_for(shell).kept(INLINE_USAGE).summary()
        assert "3 requests, 45 completion tokens, 1,200 prompt tokens" in shown
        assert "$0.0004" in shown and "as of" in shown
        # what is not a count is refused, and the last good count stays
        for bad in ({**usage, "requests": "3<img>"}, {**usage, "cost": -1}, ["x"]):
            assert _ask(shell, op="inline_usage", usage=bad)["status"] == "error"
        assert session_for(shell).kept(INLINE_USAGE).requests == 3
    finally:
        shell.run_line_magic("unload_ext", "mistral_magic")
