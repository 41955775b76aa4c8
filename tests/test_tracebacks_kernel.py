"""Explain / fix and the error buttons through a real ipykernel, against the stub."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest

from mistral_magic.context.budget import count_tokens
from mistral_magic.engine.prompts import SYSTEM_PROMPT
from tests.kernel import Execution, stub_kernel
from tests.stub import Reply, StubServer
from tests.widget_comm import WIDGET_VIEW, click_widget, widget_displays, widget_values

ANSI = re.compile(r"\x1b\[[0-9;]*m")
FIX_REPLY = """`count` is 0, so `total / count` divides by zero in line 3.

```python
total = 10
count = 4
ratio = total / count
```
"""
DEEP_LIBRARY = """
def dive(n, message):
    if n == 0:
        raise ValueError(message)
    return dive(n - 1, message)
"""


@pytest.fixture(scope="module")
def stub():
    with StubServer() as server:
        yield server


@pytest.fixture(scope="module")
def site_packages(tmp_path_factory) -> Path:
    """A fake third-party package, so its frames count as library frames."""
    root = tmp_path_factory.mktemp("env") / "site-packages"
    (root / "deeplib").mkdir(parents=True)
    (root / "deeplib" / "__init__.py").write_text(DEEP_LIBRARY)
    return root


@pytest.fixture(scope="module")
def kernel(stub, site_packages):
    with stub_kernel(
        stub,
        "%load_ext mistral_magic\n%config Mistral.max_retries = 1",
        PYTHONPATH=str(site_packages),
    ) as k:
        yield k


@pytest.fixture(autouse=True)
def fresh(stub, kernel):
    stub.reset()
    kernel.execute("%mistral reset\n%mistral errors off\n%config Mistral.context_budget = 8000")
    yield


def system_text(stub: StubServer, index: int = 0) -> str:
    return stub.chat_requests[index].body["messages"][0]["content"]


def test_explain_sends_the_traceback_source_variables_and_versions(stub, kernel):
    failing = kernel.execute(
        "import pandas as pd\n"
        "sales = pd.DataFrame({'region': ['north', 'south'], 'revenue': [1.5, 2.5]})\n"
        "def total(frame):\n"
        "    return frame['profit'].sum()\n"
        "result = total(sales)"
    )
    assert failing.status == "error"
    stub.queue(Reply(text="`sales` has no `profit` column."))
    run = kernel.execute("%mistral explain")
    assert run.status == "ok", run.reply
    (request,) = stub.chat_requests
    system = system_text(stub)
    question = request.body["messages"][-1]["content"]
    assert question.startswith("Explain the error in In[")
    assert "KeyError" in system and "'profit'" in system
    assert "Failing line" in system and "return frame['profit'].sum()" in system
    assert "result = total(sales)" in system  # the failing cell's source
    assert "frame: pandas DataFrame" in system  # the local the failing line names, described
    assert "revenue" in system
    assert "pandas " in system and "Versions: Python" in system
    assert "library frames" in system
    assert run.markdown[-1].startswith("`sales` has no `profit` column.")
    assert run.next_input is None  # explain offers no cell


def test_fix_offers_the_corrected_code_as_a_new_cell(stub, kernel):
    assert kernel.execute("total = 10\ncount = 0\nratio = total / count").status == "error"
    stub.queue(Reply(text=FIX_REPLY))
    run = kernel.execute("%mistral fix")
    assert run.status == "ok"
    assert stub.chat_requests[0].body["messages"][-1]["content"].startswith("Fix the error")
    assert "ratio = total / count" in system_text(stub)
    assert run.next_input == "total = 10\ncount = 4\nratio = total / count"
    assert "corrected code added as a new cell below" in run.markdown[-1]


def test_explain_n_picks_that_cells_error(stub, kernel):
    first = kernel.execute("undefined_name_one + 1")
    count = first.reply["execution_count"]
    kernel.execute("undefined_name_two + 1")
    run = kernel.execute(f"%mistral explain {count}")
    assert run.status == "ok"
    error_section = system_text(stub).split(f"### error in [{count}]\n")[1].split("\n### ")[0]
    assert "undefined_name_one" in error_section and "undefined_name_two" not in error_section
    assert (
        stub.chat_requests[0]
        .body["messages"][-1]["content"]
        .startswith(f"Explain the error in In[{count}]")
    )


def test_explain_words_are_still_a_question(stub, kernel):
    stub.queue(Reply(text="A groupby splits, applies, combines."))
    kernel.execute("%mistral --no-context explain what a groupby does")
    content = stub.chat_requests[0].body["messages"][-1]["content"]
    assert content == "explain what a groupby does"


def test_syntax_and_indentation_errors_are_explained_with_their_line(stub, kernel):
    for source, kind in [("x = (1,\n", "SyntaxError"), ("if True:\nprint('x')", "Indentation")]:
        stub.reset()
        assert kernel.execute(source).status == "error"
        run = kernel.execute("%mistral explain")
        assert run.status == "ok", run.stderr
        system = system_text(stub)
        assert kind in system
        assert source.splitlines()[0].strip() in system


def test_chained_exceptions_send_both(stub, kernel):
    kernel.execute(
        "def load(path):\n"
        "    try:\n"
        "        open(path)\n"
        "    except FileNotFoundError as error:\n"
        "        raise RuntimeError('config missing') from error\n"
        "load('/nonexistent/config.toml')"
    )
    kernel.execute("%mistral explain")
    system = system_text(stub)
    assert "FileNotFoundError" in system and "RuntimeError" in system
    assert "direct cause" in system


def test_interrupts_and_mistral_errors_are_not_explained(stub, kernel):
    kernel.execute("%mistral errors on")
    bad = kernel.execute("%%mistral --temperature 9\nHi")  # a UsageError of %%mistral itself
    assert bad.status == "error"
    assert widget_displays(bad.messages) == []
    interrupted = []

    def interrupt(msg, k):
        if msg["msg_type"] == "stream" and not interrupted:
            interrupted.append(True)
            k.interrupt()

    run = kernel.execute(
        "import time\nprint('go', flush=True)\ntime.sleep(30)", on_message=interrupt
    )
    assert interrupted and "KeyboardInterrupt" in json.dumps([m["content"] for m in run.messages])
    assert widget_displays(run.messages) == []
    remembered = kernel.execute(
        "from mistral_magic.session import session_for\n"
        "log = session_for(get_ipython()).errors\n"
        "print({type(c.error).__name__ for c in log.errors.values()})"
    )
    assert "KeyboardInterrupt" not in remembered.stdout
    assert "UsageError" not in remembered.stdout


def shown_traceback(run: Execution) -> list[str]:
    """The traceback lines of the error message, ANSI-free, with cell numbers blanked."""
    (error,) = [m["content"] for m in run.messages if m["msg_type"] == "error"]
    return [re.sub(r"In\[\d+\]", "In[N]", ANSI.sub("", line)) for line in error["traceback"]]


def test_error_buttons_appear_under_the_traceback_and_go_away_on_unload(stub, kernel):
    plain = kernel.execute("values = [1, 2]\nvalues[5]")
    kernel.execute("%mistral errors on")
    run = kernel.execute("values = [1, 2]\nvalues[5]")
    assert shown_traceback(run) == shown_traceback(plain)  # exactly as IPython shows it
    kinds = [m["msg_type"] for m in run.messages]
    assert "error" in kinds
    (view,) = widget_displays(run.messages)
    # under the traceback, which is IPython's own and untouched
    error_at = kinds.index("error")
    display_at = next(
        i
        for i, m in enumerate(run.messages)
        if m["msg_type"] == "display_data" and WIDGET_VIEW in m["content"]["data"]
    )
    assert display_at > error_at
    assert "values[5]" in "\n".join(shown_traceback(run))
    # front ends without widgets show one line instead
    assert "%mistral explain" in view["text/plain"]
    # clicking Explain streams the answer into the widget, without re-running the cell
    stub.queue(Reply(text="The list has 2 items; index 5 is past its end."))
    click = kernel.execute(
        "from mistral_magic.faces.error_buttons import last_error_help\n"
        "from mistral_magic.session import session_for\n"
        "help_view = last_error_help(session_for(get_ipython()))\n"
        "help_view.explain_button.click()\n"
        "assert help_view.wait(30)\n"
        "print(help_view.reply.status, '|', help_view.reply.text)"
    )
    assert click.stdout.strip() == "done | The list has 2 items; index 5 is past its end."
    assert "values[5]" in system_text(stub)
    assert any("index 5 is past its end" in value for value in widget_values(click.messages))
    # unloading removes the hook
    kernel.execute("%unload_ext mistral_magic")
    try:
        gone = kernel.execute("values[7]")
        assert gone.status == "error" and widget_displays(gone.messages) == []
        hooks = kernel.execute(
            "print([getattr(f, '__qualname__', '') for f in "
            "get_ipython().events.callbacks['post_run_cell']])"
        )
        assert "ErrorLog" not in hooks.stdout
    finally:
        kernel.execute("%load_ext mistral_magic\n%config Mistral.max_retries = 1")


def test_fix_button_offers_the_code_to_insert(stub, kernel):
    kernel.execute("%mistral errors on")
    kernel.execute("total = 10\ncount = 0\nratio = total / count")
    stub.queue(Reply(text=FIX_REPLY))
    click = kernel.execute(
        "from mistral_magic.faces.error_buttons import last_error_help\n"
        "from mistral_magic.session import session_for\n"
        "help_view = last_error_help(session_for(get_ipython()))\n"
        "help_view.fix_button.click()\n"
        "assert help_view.wait(30)\n"
        "rows = [c for c in help_view.reply.children if hasattr(c, 'children')]\n"
        "button = rows[-1].children[0]\n"
        "print(button.description, button.model_id)"
    )
    description, model_id = click.stdout.strip().rsplit(" ", 1)
    assert description == "Insert fix as new cell"
    assert stub.chat_requests[0].body["messages"][-1]["content"].startswith("Fix the error")
    # the front end clicks (a comm message, outside any execution); without the labextension
    # the code waits for the next executed cell
    click_widget(kernel, model_id)
    nxt = kernel.execute("pass")
    assert nxt.next_input == "total = 10\ncount = 4\nratio = total / count"
    assert kernel.execute("pass").next_input is None


def test_huge_tracebacks_and_messages_stay_within_the_budget(stub, kernel):
    budget = 3000
    kernel.execute(f"%config Mistral.context_budget = {budget}\n%xmode Minimal")
    try:
        run = kernel.execute(
            "import sys, deeplib\nsys.setrecursionlimit(30000)\n"
            "deeplib.dive(10_000, 'bad value \\x1b[31mred\\x1b[0m ' + 'x' * 1_000_000 "
            "+ ' \\udcff\\udcfe end')",
            timeout=120,
        )
        assert run.status == "error"
        # Bounded by the execute timeout; cost figures live in benchmarks/bench_context.py.
        explain = kernel.execute("%mistral explain", timeout=60)
    finally:
        kernel.execute("%xmode Context")
    assert explain.status == "ok", explain.stderr
    system = system_text(stub)
    context = system[len(SYSTEM_PROMPT) :]
    assert count_tokens(context, "mistral-large-2407") <= budget
    assert "ValueError" in system and "bad value red" in system  # ANSI codes stripped
    assert "\x1b" not in system
    assert "library frames" in system  # 10,000 frames condensed to a few lines
    assert len(system) < 20_000


def test_non_utf8_messages_are_sent_as_escapes(stub, kernel):
    kernel.execute("import os\nos.listdir(os.fsdecode(b'/nonexistent/caf\\xe9'))")
    run = kernel.execute("%mistral explain")
    assert run.status == "ok", run.reply
    assert "caf\\udce9" in system_text(stub)


def test_terminal_ipython_gets_a_one_line_hint(tmp_path):
    import subprocess
    import sys

    code = textwrap.dedent(
        """
        from IPython.testing.globalipapp import start_ipython
        ip = start_ipython()
        ip.run_line_magic('load_ext', 'mistral_magic')
        ip.run_line_magic('config', 'Mistral.error_help = True')
        ip.run_cell('1/0')
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "Mistral can explain this error: run %mistral explain" in out.stdout, out
