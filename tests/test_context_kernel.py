"""collect() and last_error() on a real in-process IPython shell."""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from mistral_magic.context.errors import last_error
from mistral_magic.context.guard import DescribeTimeout, time_limit
from mistral_magic.context.history import is_mistral_invocation
from mistral_magic.context.items import ContextItem
from mistral_magic.context.kernel import collect, prompt_references, user_variables
from mistral_magic.context.redact import REDACTED, Redactor

CONFIGURED_KEY = "configured-mistral-key-0123456789"


@pytest.fixture(scope="module")
def module_shell(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """An in-process shell for this module. If another test already started IPython's global
    test shell, that one is used; otherwise a plain ``InteractiveShell`` singleton is created
    (in-memory history, temporary IPYTHONDIR) and cleared again when the module is done, with
    the interpreter globals IPython touches restored, so later tests can start their own."""
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    if InteractiveShell.initialized():
        yield InteractiveShell.instance()
        return
    saved = (sys.modules.get("__main__"), sys.displayhook, sys.excepthook)
    saved_dir = os.environ.get("IPYTHONDIR")
    os.environ["IPYTHONDIR"] = str(tmp_path_factory.mktemp("ipython"))
    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    instance = InteractiveShell.instance(config=config)
    try:
        yield instance
    finally:
        instance.history_manager.end_session()
        InteractiveShell.clear_instance()
        sys.modules["__main__"], sys.displayhook, sys.excepthook = saved
        if saved_dir is None:
            os.environ.pop("IPYTHONDIR", None)
        else:
            os.environ["IPYTHONDIR"] = saved_dir


@pytest.fixture
def shell(module_shell: Any) -> Iterator[Any]:
    """The module's shell, reset, with a stand-in ``%%mistral`` magic; the previous magic and
    traceback mode come back afterwards."""
    instance = module_shell
    instance.reset(new_session=True)
    _forget_last_error()
    magics = instance.magics_manager.magics
    previous = {kind: magics[kind].get("mistral") for kind in ("line", "cell")}
    previous_mode = instance.InteractiveTB.mode
    instance.InteractiveTB.set_mode(mode="Minimal")  # IPython's own display only; faster

    def mistral(line: str, cell: str | None = None) -> str:  # stands in for the real magic
        return "answer"

    instance.register_magic_function(mistral, magic_kind="line_cell", magic_name="mistral")
    try:
        yield instance
    finally:
        for kind, function in previous.items():
            if function is None:
                magics[kind].pop("mistral", None)
            else:
                magics[kind]["mistral"] = function
        instance.InteractiveTB.set_mode(mode=previous_mode)
        _forget_last_error()


def _forget_last_error() -> None:
    for name in ("last_type", "last_value", "last_traceback", "last_exc"):
        if hasattr(sys, name):
            delattr(sys, name)


def found_first_frame_before_cells(items: list[ContextItem]) -> bool:
    first_cell = next(i for i, item in enumerate(items) if item.kind == "cell")
    return any(item.kind == "dataframe" for item in items[:first_cell])


def run(shell: Any, *cells: str) -> None:
    for cell in cells:
        shell.run_cell(cell, store_history=True)


def by_key(items: list[ContextItem]) -> dict[str, ContextItem]:
    return {item.key: item for item in items}


NOTEBOOK = [
    "import os, math\nimport pandas as pd\nimport numpy as np\nfrom math import sqrt",  # 1
    "sales = pd.DataFrame({'region': ['north', 'south'] * 50, 'amount': np.arange(100.0)})",  # 2
    "db_password = 'hunter2-very-secret'\nconfig = {'retries': 3}",  # 3
    "print('connecting with', db_password)\nsales.head(2)",  # 4
    "def ratio(a, b=1):\n    'Divide.'\n    return a // b",  # 5
    "customers = pd.DataFrame({'id': [1, 2, 3]})\ncounts = [1, 2, 3]",  # 6
    "%%mistral\nwhat is going on?",  # 7
    "ratio(sales.amount.size, 0)",  # 8: ZeroDivisionError
]


def test_collect_items_priorities_and_exclusions(shell):
    run(shell, *NOTEBOOK)
    items = collect(shell, "Why does {sales} fail in In[4]? also look at config")
    keys = [item.key for item in items]
    assert [item.priority for item in items] == sorted(item.priority for item in items)
    assert keys[:4] == ["var:sales", "var:config", "cell:4", "error"]
    assert [i.kind for i in items[:4]] == ["named", "named", "named", "error"]
    kinds = [item.kind for item in items]
    assert kinds == sorted(kinds, key=["named", "error", "dataframe", "cell", "variable"].index)
    assert found_first_frame_before_cells(items)
    found = by_key(items)
    assert found["var:customers"].kind == "dataframe"
    assert found["var:customers"].label == "customers · DataFrame 3×1"
    assert found["var:sales"].label == "sales · DataFrame 100×2"
    assert found["var:sales"].text.startswith("sales: pandas DataFrame, 100 rows × 2 columns")
    # recent cells newest first; the error's cell is in the error item, In[4] is named,
    # the %%mistral cell is skipped
    cells = [item.key for item in items if item.kind == "cell"]
    assert cells == ["cell:6", "cell:5", "cell:3", "cell:2", "cell:1"]
    assert found["cell:6"].label == "In[6]"
    assert "```python\ncustomers = pd.DataFrame" in found["cell:6"].text
    # user function with its signature; other variables
    assert found["var:ratio"].text == "ratio: function ratio(a, b=1)\n  Divide."
    assert found["var:counts"].kind == "variable"
    # no modules, library functions, IPython internals or secrets
    for excluded in ("os", "math", "pd", "np", "sqrt", "In", "Out", "exit", "quit", "_", "_i1"):
        assert f"var:{excluded}" not in found
    assert "var:db_password" not in found
    assert not any(key.startswith("var:_") for key in found)


def test_secret_values_are_redacted_everywhere(shell, monkeypatch):
    monkeypatch.setenv("MY_SERVICE_TOKEN", "env-token-value-123456")
    run(
        shell,
        *NOTEBOOK[:4],
        f"note = 'the key is {CONFIGURED_KEY}'",
        "print(os.environ['MY_SERVICE_TOKEN'])",
        "headers = {'Authorization': 'Bearer abcdefgh12345'}",
    )
    items = collect(shell, "{note} {headers}", redactor=Redactor([CONFIGURED_KEY]))
    everything = "\n".join(item.text + item.label for item in items)
    assert CONFIGURED_KEY not in everything
    assert "hunter2-very-secret" not in everything  # value of a secret-named variable
    assert "env-token-value-123456" not in everything  # secret-named environment variable
    assert "abcdefgh12345" not in everything  # pattern
    found = by_key(items)
    assert f"connecting with {REDACTED}" in found["cell:4"].text
    assert f"db_password = '{REDACTED}'" in found["cell:3"].text
    assert REDACTED in found["var:note"].text
    assert REDACTED in found["var:headers"].text


def test_named_references_in_prompts():
    refs = prompt_references(
        "Plot {sales} like `df.head()` in In[3], Out [4] and cell 7; is a x ok?"
    )
    assert refs.names.index("sales") < refs.names.index("df")
    assert "a" not in refs.names and "x" not in refs.names and "is" not in refs.names
    assert refs.cells == [3, 4, 7]


def test_last_error_details(shell):
    run(shell, *NOTEBOOK)
    info = last_error(shell)
    assert info is not None
    assert info.etype == "ZeroDivisionError"
    assert info.message == "integer division or modulo by zero"
    assert info.execution_count == 8
    assert info.cell_source == "ratio(sales.amount.size, 0)"
    assert "\x1b" not in info.traceback
    lines = info.traceback.splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    assert "  In[8], line 1, in <module>" in lines
    assert "  In[5], line 3, in ratio" in lines
    assert lines[-1] == "ZeroDivisionError: integer division or modulo by zero"
    assert "interactiveshell.py" not in info.traceback  # the shell's own exec() frame
    item = by_key(collect(shell))["error"]
    assert item.label == "error in [8]"
    assert item.text.startswith("ZeroDivisionError in In[8]: integer division or modulo by zero")
    assert "Source of the failing cell:\n```python\nratio(sales.amount.size, 0)\n```" in item.text


def test_only_recent_errors_are_context(shell):
    run(shell, "1 / 0", "a = 1", "b = 2", "%mistral explain")
    assert "error" in by_key(collect(shell))  # failing cell is among the last 3 (not %mistral)
    run(shell, "c = 3")
    assert "error" not in by_key(collect(shell))
    assert last_error(shell).execution_count == 1  # still known, just not recent


def test_syntax_error(shell):
    run(shell, "x = 1", "y = (1,\nz = 2")
    info = last_error(shell)
    assert info.etype == "SyntaxError"
    assert info.execution_count == 2
    assert info.cell_source == "y = (1,\nz = 2"
    assert "  In[2], line 1" in info.traceback
    assert "Traceback" not in info.traceback  # no frames for a cell that never ran
    assert info.traceback.splitlines()[-1].startswith("SyntaxError:")


def test_chained_errors_and_condensed_library_frames(shell):
    run(
        shell,
        "import pandas as pd\nframe = pd.DataFrame({'a': [1]})",
        "try:\n    frame['missing']\n"
        "except KeyError as error:\n    raise ValueError('no column') from error",
    )
    info = last_error(shell)
    assert info.etype == "ValueError" and info.message == "no column"
    text = info.traceback
    assert "KeyError: 'missing'" in text
    assert "The above exception was the direct cause of the following exception:" in text
    assert "library frames …]" in text
    assert "site-packages" not in text  # library paths are shortened
    assert '  File "pandas/core/frame.py"' in text


def test_keyboard_interrupt_is_not_an_error(shell):
    run(shell, "1 / 0", "raise KeyboardInterrupt")
    assert last_error(shell) is None
    assert "error" not in by_key(collect(shell))


def test_huge_error_messages_are_clipped(shell):
    run(shell, "raise RuntimeError('\\x1b[31mred\\x1b[0m ' + 'x' * 100_000)")
    info = last_error(shell)
    assert info.message.startswith("red xxx")
    assert len(info.message) <= 1000
    assert len(info.traceback) <= 3000
    assert "\x1b" not in info.message + info.traceback


def test_sources_select_what_is_collected(shell):
    run(shell, *NOTEBOOK)
    only_cells = collect(shell, "{sales} In[4]", sources=("cells",))
    assert {item.kind for item in only_cells} <= {"cell", "named"}
    assert not any(item.key.startswith("var:") for item in only_cells)
    assert "cell:4" in by_key(only_cells)
    only_error = collect(shell, "", sources=("error",))
    assert [item.key for item in only_error] == ["error"]
    assert collect(shell, "{sales}", sources=()) == []


def test_limits_on_cells_outputs_and_frames(shell):
    run(shell, "import pandas as pd")
    run(shell, *[f"frame_{i} = pd.DataFrame({{'v': range({i + 1})}})" for i in range(5)])
    run(shell, "print('y' * 50_000)")
    items = collect(shell, max_cells=3, cell_output_chars=500, max_described_frames=2)
    found = by_key(items)
    assert [item.key for item in items if item.kind == "cell"] == ["cell:7", "cell:6", "cell:5"]
    assert len(found["cell:7"].text) < 700 and "[… clipped …]" in found["cell:7"].text
    frames = [item for item in items if item.kind == "dataframe"]
    # most recently used first; the first two described in full, the rest briefly and
    # packed after the recent cells
    assert [item.key for item in frames] == [f"var:frame_{i}" for i in (4, 3, 2, 1, 0)]
    assert all("first " in item.text for item in frames[:2])
    assert all("columns: v (int64)" in item.text for item in frames[2:])
    last_cell = max(item.priority for item in items if item.kind == "cell")
    assert frames[1].priority < found["cell:7"].priority
    assert all(item.priority > last_cell for item in frames[2:])


def test_running_cell_is_skipped(shell):
    def grab(line: str) -> None:
        shell.user_ns["grabbed"] = collect(shell)

    shell.register_magic_function(grab, magic_kind="line", magic_name="grab")
    run(shell, "a = 1", "%grab")
    grabbed_keys = [item.key for item in shell.user_ns["grabbed"]]
    assert "cell:1" in grabbed_keys and "cell:2" not in grabbed_keys


class SlowRepr:
    """A repr that only ends when the test lets it: a describer's bound is what stops waiting."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.finished = False

    def __repr__(self) -> str:
        while not self.release.wait(0.01):  # short waits so the bound's trace/alarm can fire
            pass
        self.finished = True
        return "finally"


class BrokenRepr:
    def __repr__(self) -> str:
        raise ValueError("broken")


@pytest.mark.timeout(60, method="thread")  # leave SIGALRM to the code under test
def test_slow_and_broken_values_do_not_break_collection(shell):
    run(shell, "a_number = 42")
    slow = SlowRepr()
    shell.user_ns.update(slow=slow, broken=BrokenRepr())
    try:
        items = collect(shell, value_time_limit=0.3)
        assert not slow.finished  # the bound ended the wait, not the repr
    finally:
        slow.release.set()
    found = by_key(items)
    assert "could not describe: took longer than" in found["var:slow"].text
    assert found["var:broken"].text.endswith("<could not describe: ValueError>")
    assert found["var:a_number"].text == "a_number: int = 42"


def test_slow_values_are_bounded_without_alarms_too(shell):
    # Under pytest-timeout's signal method SIGALRM is taken: the trace fallback must step in.
    slow = SlowRepr()
    shell.user_ns.update(slow=slow)
    try:
        found = by_key(collect(shell, value_time_limit=0.3))
        assert not slow.finished
    finally:
        slow.release.set()
    assert "could not describe: took longer than" in found["var:slow"].text


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="no setitimer on this platform")
@pytest.mark.timeout(60, method="thread")
def test_alarm_limit_on_the_main_thread():
    with pytest.raises(DescribeTimeout), time_limit(0.05, allow_tracing=False) as how:
        assert how == "alarm"
        SlowRepr().__repr__()
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)  # nothing left armed


@pytest.mark.skipif(sys.gettrace() is not None, reason="a tracer (coverage, debugger) is active")
def test_trace_limit_off_the_main_thread():
    outcome: list[str] = []

    def work() -> None:
        try:
            with time_limit(0.05) as how:
                outcome.append(how)
                SlowRepr().__repr__()
        except DescribeTimeout:
            outcome.append("stopped")

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(5)
    assert outcome == ["trace", "stopped"]
    assert sys.gettrace() is None


def test_total_time_budget_lists_the_rest_by_label(shell):
    run(shell, "import pandas as pd", "frame = pd.DataFrame({'a': [1]})", "x = 1\ny = [1, 2]")
    items = collect(shell, "{x}", time_budget=0)
    found = by_key(items)
    assert found["var:x"].text == "x · int"  # named, but only labelled
    assert found["var:frame"].text == "frame · DataFrame 1×1"
    assert found["vars:more"].text == "Other variables: y · list (2 items)"


def test_user_variables_follow_who_rules(shell):
    run(shell, "import json\nfrom os.path import join\nclass Mine: pass\nvalue = 1\n_private = 2")
    names = set(user_variables(shell))
    assert names == {"Mine", "value"}


def test_mistral_invocations():
    assert is_mistral_invocation("%%mistral\nhi")
    assert is_mistral_invocation("  %mistral explain the error")
    assert is_mistral_invocation("get_ipython().run_cell_magic('mistral', '', 'hi')")
    assert not is_mistral_invocation("%mistralx")
    assert not is_mistral_invocation("x = 1  # %mistral")
