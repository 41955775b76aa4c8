"""The example notebooks run top to bottom in a real kernel against the stub."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbclient import NotebookClient

from tests.stub import Reply, ToolCallSpec

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"

PLOT_REPLY = """Here is a grouped bar chart of monthly revenue per region:

```python
sales.pivot_table(index="month", columns="region", values="revenue", aggfunc="sum").plot.bar()
```
"""


def run_notebook(name: str) -> nbformat.NotebookNode:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    return nb


def markdown_outputs(cell) -> str:
    return "\n".join(
        o["data"]["text/markdown"]
        for o in cell.get("outputs", [])
        if o.get("output_type") in ("display_data", "execute_result")
        and "text/markdown" in o.get("data", {})
    )


def test_quickstart(stub_env, monkeypatch):
    monkeypatch.setenv("MISTRAL_DIALECT", "mistral")
    stub_env.queue(Reply(text=PLOT_REPLY))
    nb = run_notebook("quickstart.ipynb")
    cells = [c for c in nb.cells if c.cell_type == "code"]
    ask, dry_run, usage = cells[2], cells[3], cells[4]
    (request,) = stub_env.chat_requests  # the dry run sent nothing
    system = request.body["messages"][0]["content"]
    assert "region" in system and "revenue" in system
    assert "pivot_table" in markdown_outputs(ask)
    assert "code added as a new cell below" in markdown_outputs(ask)
    assert "Dry run" in markdown_outputs(dry_run)
    assert "mistral-large-2407" in markdown_outputs(usage)
    for cell in cells:
        assert not [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]


def test_tools(stub_env, monkeypatch):
    monkeypatch.setenv("MISTRAL_DIALECT", "mistral")
    stub_env.queue(
        Reply(
            tool_calls=[
                ToolCallSpec("column_stats", {"name": "sales", "column": "revenue"}),
                ToolCallSpec("region_target", {"region": "north"}),
                ToolCallSpec("region_target", {"region": "south"}),
            ]
        ),
        Reply(text="North made 392.75 of its 400.0 target; south 296.25 of 320.0: south."),
    )
    nb = run_notebook("tools.ipynb")
    cells = [c for c in nb.cells if c.cell_type == "code"]
    ask, listing = cells[3], cells[4]
    shown = markdown_outputs(ask)
    assert 'region_target(region="north")' in shown and "column_stats(" in shown
    assert "south 296.25 of 320.0" in shown and "3 tool calls" in shown
    first, second = stub_env.chat_requests
    assert {t["function"]["name"] for t in first.body["tools"]} >= {"region_target", "get_cell"}
    results = [m["content"] for m in second.body["messages"] if m["role"] == "tool"]
    assert '"target": 400.0' in results[1] and '"target": 320.0' in results[2]
    assert "`region_target` | yours" in markdown_outputs(listing)
    for cell in cells:
        assert not [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
