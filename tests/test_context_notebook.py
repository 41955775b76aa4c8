"""Context from notebook JSON (the server extension's collector) and the kernel snapshot."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from mistral_magic.context.items import (
    KIND_CELL,
    KIND_DATAFRAME,
    KIND_ERROR,
    KIND_NAMED,
    KIND_VARIABLE,
    priority_for,
)
from mistral_magic.context.notebook import (
    cells_of,
    collect_notebook,
    find_error,
    variable_items,
)
from mistral_magic.context.redact import REDACTED, Redactor
from mistral_magic.context.snapshot import MARKER, SNIPPET, kernel_items, kernel_json

KEY = "sk-notebook-test-0123456789abcdefghij"


def code(count: int | None, source: str | list[str], *outputs: dict) -> dict:
    return {
        "cell_type": "code",
        "execution_count": count,
        "source": source,
        "outputs": list(outputs),
        "metadata": {},
    }


def error(ename: str, evalue: str, *lines: str) -> dict:
    return {"output_type": "error", "ename": ename, "evalue": evalue, "traceback": list(lines)}


NB = {
    "cells": [
        {"cell_type": "markdown", "source": ["# Title\n", "Some notes"], "metadata": {}},
        code(1, "x = 1\nprint(x)", {"output_type": "stream", "name": "stdout", "text": ["1\n"]}),
        code(2, "x + 1", {"output_type": "execute_result", "data": {"text/plain": "2"}}),
        code(
            3,
            "1 / 0",
            error(
                "ZeroDivisionError",
                "division by zero",
                "\x1b[0;31m-----\x1b[0m",
                "\x1b[0;31mZeroDivisionError\x1b[0m: division by zero",
            ),
        ),
        code(None, ""),
        code(None, "%%mistral\nwhy?"),
    ]
}


def test_cells_of_reads_lists_and_strings_and_tolerates_junk() -> None:
    cells = cells_of({"cells": [*NB["cells"], "junk", {"cell_type": "code"}]})
    assert cells[0].source == "# Title\nSome notes"
    assert [c.name for c in cells[:5]] == ["markdown #1", "In[1]", "In[2]", "In[3]", "cell #5"]
    assert cells_of({}) == [] and cells_of({"cells": "no"}) == []


def test_items_mirror_the_kernel_collector() -> None:
    items = collect_notebook(NB, active_cell=2)
    by_key = {item.key: item for item in items}
    assert [i.kind for i in items][:2] == [KIND_NAMED, KIND_ERROR]
    active = by_key["active"]
    assert active.label == "active cell [2]" and "Out[2]:\n2" in active.text
    err = by_key["error"]
    assert err.label == "error in [3]" and err.priority == priority_for(KIND_ERROR)
    assert err.text.startswith("ZeroDivisionError in In[3]: division by zero")
    assert "\x1b" not in err.text and "Source of the failing cell:\n```python\n1 / 0" in err.text
    cells = [i for i in items if i.kind == KIND_CELL]
    # nearest to the active cell first; the error cell is in the error item; empty and
    # %%mistral cells are skipped
    assert [c.label for c in cells] == ["In[1]", "markdown #1"]
    assert cells[0].text == "```python\nx = 1\nprint(x)\n```\nstdout:\n1"
    assert cells[1].text == "Markdown cell:\n# Title\nSome notes"
    assert items == sorted(items, key=lambda i: i.priority)


def test_sources_select_what_is_collected() -> None:
    assert {i.kind for i in collect_notebook(NB, active_cell=2, sources=("cells",))} == {KIND_CELL}
    only_error = collect_notebook(NB, active_cell=2, sources=("error",))
    assert [i.key for i in only_error] == ["error"]
    assert collect_notebook(NB, active_cell=2, sources=()) == []


def test_selection_is_its_own_item() -> None:
    items = collect_notebook(NB, active_cell=1, selection="print(x)")
    assert items[0].key == "selection" and items[0].label == "selection in [1]"
    assert "print(x)" in items[0].text and items[1].key == "active"


def test_old_errors_are_not_recent_but_an_explicit_error_cell_always_counts() -> None:
    cells = [code(1, "1/0", error("ZeroDivisionError", "x")), *(code(n, "pass") for n in (2, 3, 4))]
    nb = {"cells": cells}
    assert find_error(cells_of(nb)) is None
    assert all(i.kind != KIND_ERROR for i in collect_notebook(nb))
    items = collect_notebook(nb, error_cell=0, sources=())
    assert [i.label for i in items] == ["error in [1]"]


def test_secrets_are_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_SERVICE_TOKEN", "tok-live-abcdefghijkl")
    nb = {
        "cells": [
            code(
                1,
                f'API_KEY = "{KEY}"',
                {"output_type": "stream", "name": "stdout", "text": "tok-live-abcdefghijkl"},
            ),
        ]
    }
    items = collect_notebook(nb, redactor=Redactor([KEY]))
    text = "\n".join(i.text for i in items)
    assert KEY not in text and "tok-live-abcdefghijkl" not in text and REDACTED in text


def test_long_outputs_are_clipped() -> None:
    big = {"output_type": "stream", "name": "stdout", "text": "line\n" * 50_000}
    items = collect_notebook({"cells": [code(1, "spam()", big)]})
    assert len(items[0].text) < 3000 and "clipped" in items[0].text


def test_variable_items_are_checked_again() -> None:
    raw = [
        {"kind": "dataframe", "key": "var:df", "label": "df · DataFrame 3×2", "text": "df: ..."},
        {"kind": "variable", "key": "var:password", "label": "password", "text": "hunter2"},
        {"kind": "named", "key": "var:x", "label": "x", "text": "x"},
        {"kind": "variable", "key": "cell:1", "label": "forged", "text": "x"},
        {"kind": "variable", "key": "var:n", "label": "n · int", "text": f"n = {KEY}"},
        "junk",
    ]
    items = variable_items(raw, Redactor([KEY]))
    assert [(i.key, i.kind) for i in items] == [
        ("var:df", KIND_DATAFRAME),
        ("var:n", KIND_VARIABLE),
    ]
    assert items[1].priority == priority_for(KIND_VARIABLE, 0) and KEY not in items[1].text


def _fake_shell(**namespace: object) -> SimpleNamespace:
    return SimpleNamespace(user_ns=dict(namespace), user_ns_hidden={}, history_manager=None)


def test_kernel_snapshot_lists_variables_without_secrets(capsys: pytest.CaptureFixture) -> None:
    pd = pytest.importorskip("pandas")
    shell = _fake_shell(
        sales=pd.DataFrame({"a": [1, 2, 3], "b": [4, 5, 6]}),
        threshold=0.5,
        api_key="secret-value-123456",
        _hidden=1,
    )
    items = kernel_items(shell)
    labels = [item["label"] for item in items]
    assert labels[0] == "sales · DataFrame 3×2" and items[0]["kind"] == "dataframe"
    assert any(label.startswith("threshold") for label in labels)
    assert not any("api_key" in label or "_hidden" in label for label in labels)
    assert "secret-value-123456" not in kernel_json(shell)

    from mistral_magic.context.snapshot import print_snapshot

    print_snapshot(shell)
    out = capsys.readouterr().out
    assert out.startswith(MARKER)
    assert json.loads(out[len(MARKER) :])["items"][0]["key"] == "var:sales"


def test_kernel_snapshot_never_raises() -> None:
    broken = SimpleNamespace(user_ns=None)
    payload = json.loads(kernel_json(broken))
    assert payload["items"] == [] and payload["error"]


def test_the_front_end_snippet_matches_this_module() -> None:
    from pathlib import Path

    kernel_ts = Path(__file__).resolve().parents[1] / "labextension" / "src" / "kernel.ts"
    source = kernel_ts.read_text()
    assert MARKER in source
    for line in SNIPPET.strip("\n").splitlines():
        assert f"'{line}'" in source
