"""Loading and unloading the extension in an in-process IPython shell."""

from __future__ import annotations

import os

import pytest
from IPython import get_ipython  # globalipapp's own get_ipython returns None once started
from IPython.testing.globalipapp import start_ipython

from mistral_magic.faces.magics import keep_question_marks


@pytest.fixture
def shell():
    ip = start_ipython() or get_ipython()  # None once another test module started it
    yield ip
    ip.run_line_magic("unload_ext", "mistral_magic")


def test_load_registers_magics_and_settings_and_unload_removes_them(shell):
    shell.run_line_magic("load_ext", "mistral_magic")
    assert "mistral" in shell.magics_manager.magics["cell"]
    assert "mistral" in shell.magics_manager.magics["line"]
    assert any(type(c).__name__ == "Mistral" for c in shell.configurables)
    shell.run_line_magic("config", "Mistral.temperature = 0.2")
    shell.run_line_magic("unload_ext", "mistral_magic")
    assert "mistral" not in shell.magics_manager.magics["cell"]
    assert keep_question_marks not in shell.input_transformers_cleanup
    assert not any(type(c).__name__ == "Mistral" for c in shell.configurables)
    shell.run_line_magic("load_ext", "mistral_magic")  # and back again
    assert "mistral" in shell.magics_manager.magics["cell"]


def test_load_ext_imports_nothing_heavy():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from IPython.testing.globalipapp import start_ipython\n"
        "ip = start_ipython()\n"
        # the background warm-up loads the tokenizer on purpose; only the load itself counts
        "import mistral_magic.session as a\n"
        "a.Session.warm_up = lambda self, *also: None\n"
        "before = set(sys.modules)\n"
        "ip.run_line_magic('load_ext', 'mistral_magic')\n"
        "heavy = {'pandas', 'numpy', 'mistral_common', 'sentencepiece', 'ipywidgets', 'httpx'}\n"
        "print(sorted(heavy & {m.split('.')[0] for m in set(sys.modules) - before}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_warm_up_imports_what_the_first_question_goes_through():
    """A question typed after %load_ext finds its modules imported by the background warm-up
    (issue #12): the context collectors, the answer loop, the magic's display code."""
    import subprocess
    import sys

    code = (
        "import sys, threading\n"
        "from IPython.testing.globalipapp import start_ipython\n"
        "ip = start_ipython()\n"
        "ip.run_line_magic('load_ext', 'mistral_magic')\n"
        "[t.join(60) for t in threading.enumerate() if t.name == 'mistral-magic-warm-up']\n"
        "wanted = ['mistral_magic.context.kernel', 'mistral_magic.engine.answer',\n"
        "          'mistral_magic.faces.markdown_stream', 'mistral_magic.faces.magic_line']\n"
        "print([m for m in wanted if m not in sys.modules])\n"
    )
    env = {**os.environ, "MISTRAL_BASE_URL": "http://127.0.0.1:9/v1", "MISTRAL_API_KEY": "k"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_question_mark_transform_only_touches_mistral_lines():
    assert keep_question_marks(["%mistral what is x?\n"]) == [
        "get_ipython().run_line_magic('mistral', 'what is x?')\n"
    ]
    assert keep_question_marks(["len?\n"]) == ["len?\n"]
    cell = ["%%mistral\n", "%mistral inside a cell?\n"]
    assert keep_question_marks(cell) == cell
