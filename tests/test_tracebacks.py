"""Error capture and the context of an error, in an in-process IPython shell (fast)."""

from __future__ import annotations

import pytest
from IPython import get_ipython
from IPython.testing.globalipapp import start_ipython

from mistral_magic.context.fit import clean_text
from mistral_magic.engine.failures import (
    REMEMBERED_ERRORS,
    CapturedError,
    ErrorLog,
    error_items,
    is_offered,
    package_versions,
)
from mistral_magic.engine.prompts import error_question
from mistral_magic.faces.magic_line import is_subcommand
from mistral_magic.faces.magics import fixed_code
from mistral_magic.session import session_for


def capture_for(shell) -> ErrorLog | None:
    session = session_for(shell, create=False)
    return session.errors if session is not None else None


@pytest.fixture
def shell():
    ip = start_ipython() or get_ipython()  # one global test shell per process
    ip.run_line_magic("load_ext", "mistral_magic")
    yield ip
    ip.run_line_magic("unload_ext", "mistral_magic")


def run(shell, code: str) -> CapturedError | None:
    result = shell.run_cell(code, store_history=True)
    capture = capture_for(shell)
    return capture.errors.get(result.execution_count) if capture else None


def texts(items) -> dict[str, str]:
    return {item.key: item.text for item in items}


def test_clean_text_strips_ansi_and_controls_and_escapes_surrogates():
    text = "\x1b[31mred\x1b[0m \x1b]8;;http://x\x07link\x1b]8;;\x07 a\x00b\rc caf\udce9"
    cleaned = clean_text(text)
    assert cleaned == "red link a\\x00b\nc caf\\udce9"
    cleaned.encode("utf-8")  # valid UTF-8


def test_what_is_offered():
    assert is_offered(ValueError("x"), "1/0")
    assert not is_offered(KeyboardInterrupt(), "while True: pass")
    assert not is_offered(None, "")
    assert not is_offered(ValueError("x"), "%%mistral --temperature 9\nHi")
    assert not is_offered(ValueError("x"), "x = 1\n%mistral explain")
    assert not is_offered(ValueError("x"), "get_ipython().run_line_magic('mistral', 'x')")


def test_user_errors_are_captured_with_failing_line_and_variables(shell):
    captured = run(
        shell,
        "prices = {'apple': 1.5}\n"
        "def cost(item, quantity):\n"
        "    unit = prices[item]\n"
        "    return unit * quantity\n"
        "cost('pear', 3)",
    )
    assert isinstance(captured.error, KeyError)
    items = texts(error_items(shell, captured))
    error = items["error"]
    assert error.startswith("KeyError in In[")
    assert "Failing line (In[" in error and "unit = prices[item]" in error
    assert "cost('pear', 3)" in error  # the traceback
    assert "def cost(item, quantity)" in items[f"cell:{captured.count}"]
    # the failing line's names: the frame's local `item` and the notebook's `prices`
    assert "'pear'" in items["var:item"]
    assert "apple" in items["var:prices"]
    assert "var:quantity" not in items  # not on the failing line
    assert items["versions"].startswith("Versions: Python 3.")
    assert "IPython" not in items["versions"]  # the shell running the cell is not a suspect


def test_syntax_and_indentation_errors_have_no_frames_but_a_line(shell):
    syntax = run(shell, "total = (1 +\n")
    assert isinstance(syntax.error, SyntaxError)
    indentation = run(shell, "def f():\nreturn 1")
    assert isinstance(indentation.error, IndentationError)
    error = texts(error_items(shell, indentation))["error"]
    assert "IndentationError" in error and "return 1" in error


def test_interrupts_and_mistral_cells_are_not_captured(shell):
    before = dict(capture_for(shell).errors)
    assert run(shell, "raise KeyboardInterrupt") is None
    assert run(shell, "%mistral explain 99999") is None
    assert capture_for(shell).errors == before


def test_only_the_last_failing_cells_are_remembered(shell):
    for i in range(REMEMBERED_ERRORS + 3):
        run(shell, f"raise ValueError('number {i}')")
    capture = capture_for(shell)
    assert len(capture.errors) == REMEMBERED_ERRORS
    assert "number" in str(capture.find().error) and str(capture.find().error).endswith(
        str(REMEMBERED_ERRORS + 2)
    )


def test_chained_exceptions_keep_both_parts(shell):
    captured = run(
        shell,
        "try:\n    {}['missing']\n"
        "except KeyError as e:\n    raise RuntimeError('lookup failed') from e",
    )
    error = texts(error_items(shell, captured))["error"]
    assert "KeyError" in error and "RuntimeError" in error and "direct cause" in error


def test_secrets_on_the_failing_line_are_not_described_or_sent(shell):
    captured = run(
        shell,
        "api_token = 'sk-abcdefghijklmnopqrstuvwxyz123456'\n"
        "raise ValueError('bad token ' + api_token)",
    )
    items = texts(error_items(shell, captured))
    assert "var:api_token" not in items
    sent = "\n".join(items.values())
    assert "sk-abcdefghijklmnopqrstuvwxyz123456" not in sent and "[REDACTED]" in sent


def test_package_versions_name_the_libraries_in_the_traceback():
    pandas = pytest.importorskip("pandas")
    try:
        pandas.DataFrame({"a": [1]})["b"]
    except KeyError as error:
        versions = package_versions(error)
    assert any(v.startswith("pandas ") for v in versions)
    assert not any(v.split()[0] in ("json", "traceback", "IPython") for v in versions)


def test_prompts_and_fixed_code():
    assert error_question("fix", 4).startswith("Fix the error in In[4]")
    assert "```python" in error_question("fix", 4)
    assert error_question("explain", None).startswith("Explain the error:")
    reply = "Use this:\n```python\nx = 1\n```\nor finally:\n```python\nx = 2\n```"
    assert fixed_code(reply) == "x = 2"
    assert fixed_code("no code") is None


def test_subcommand_words_that_start_questions_stay_questions():
    assert is_subcommand(["explain"]) and is_subcommand(["explain", "12"])
    assert is_subcommand(["fix", "In[3]"]) and is_subcommand(["errors", "on"])
    assert is_subcommand(["chat"]) and is_subcommand(["errors"])
    assert not is_subcommand(["explain", "this", "groupby"])
    assert not is_subcommand(["fix", "the", "plot"])
    assert not is_subcommand(["chat", "about", "pandas"])
    assert not is_subcommand(["errors", "in", "my", "code"])


def test_unload_removes_the_hook():
    ip = start_ipython() or get_ipython()  # one global test shell per process
    ip.run_line_magic("load_ext", "mistral_magic")
    hook = capture_for(ip).post_run_cell
    assert hook in ip.events.callbacks["post_run_cell"]
    ip.run_line_magic("unload_ext", "mistral_magic")
    assert hook not in ip.events.callbacks["post_run_cell"]
    assert capture_for(ip) is None


def test_explain_without_an_error_says_so(shell, capsys):
    shell.run_line_magic("mistral", "explain 99999")
    assert "In[99999] raised no error" in capsys.readouterr().err
