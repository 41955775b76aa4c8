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
    """The question's own path (the connection layer included) is imported by the load on
    purpose; data libraries, widgets and the tokenizer are not."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from IPython.testing.globalipapp import start_ipython\n"
        "ip = start_ipython()\n"
        # the background warm-up loads the tokenizer after the first answer, or once nobody
        # asked for a while: not while this looks
        "import mistral_magic.session as a\n"
        "a.TOKENIZER_WARM_UP_AFTER = 3600\n"
        "before = set(sys.modules)\n"
        "ip.run_line_magic('load_ext', 'mistral_magic')\n"
        "new = {m.split('.')[0] for m in set(sys.modules) - before}\n"
        "heavy = {'pandas', 'numpy', 'mistral_common', 'sentencepiece', 'ipywidgets'}\n"
        "print(sorted(heavy & new), 'httpx' in new)\n"
    )
    env = {**os.environ, "MISTRAL_BASE_URL": "http://127.0.0.1:9/v1", "MISTRAL_API_KEY": "k"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.stdout.strip() == "[] True", out.stdout + out.stderr


# Records which modules the main thread imports, and passes each import on.
_IMPORT_RECORDER = """
import sys, threading
class Recorder:
    def __init__(self): self.names = []
    def find_spec(self, name, path=None, target=None):
        if threading.current_thread() is threading.main_thread(): self.names.append(name)
        return None
recorder = Recorder()
"""


def test_a_question_right_after_load_ext_imports_nothing_of_its_path(stub_env):
    """%load_ext pays the imports a question goes through (issue #12): a notebook run top to
    bottom sends its first question the moment %load_ext returns, before any background
    thread could have imported them. The question then imports nothing of ours nor of the
    connection layer (the tokenizer comes later, in the background)."""
    import subprocess
    import sys

    code = (
        _IMPORT_RECORDER + "from IPython.testing.globalipapp import start_ipython\n"
        "ip = start_ipython()\n"
        "ip.run_line_magic('load_ext', 'mistral_magic')\n"
        "sys.meta_path.insert(0, recorder)\n"
        "ip.run_cell('%%mistral --new --no-insert\\nSay hello in one short sentence.')\n"
        "sys.meta_path.remove(recorder)\n"
        "ours = ('mistral_magic', 'httpx', 'httpcore', 'h11')\n"
        "print('IMPORTED', sorted({n for n in recorder.names if n.startswith(ours)}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ)
    )
    assert "stub's reply" in out.stdout, out.stdout + out.stderr  # the answer arrived
    assert "IMPORTED []" in out.stdout, out.stdout + out.stderr


def test_question_mark_transform_only_touches_mistral_lines():
    assert keep_question_marks(["%mistral what is x?\n"]) == [
        "get_ipython().run_line_magic('mistral', 'what is x?')\n"
    ]
    assert keep_question_marks(["len?\n"]) == ["len?\n"]
    cell = ["%%mistral\n", "%mistral inside a cell?\n"]
    assert keep_question_marks(cell) == cell
