"""The README's Agent mode walkthrough: screenshots of one scripted agent task.

    python docs/make_screenshots.py

A real ``jupyter lab`` with the stub (tests/stub) as the model, so nothing reaches
api.mistral.ai; Debian's Chromium driven by Playwright; a live Python kernel with pandas.
The stub's replies are the task: a plan with an inserted cell, a run that fails, an edit that
fixes it, the run again, the answer. The page is clicked like a user would (Approve on each
card, then Undo), and each stage is saved as a small PNG under docs/ (checked < 150 KB).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.lab_server import (  # noqa: E402
    CHROMIUM,
    SIDEBAR,
    code_cell,
    python_notebook,
    sidebar_page,
)
from tests.stub import Reply, StubServer, ToolCallSpec  # noqa: E402

DOCS = ROOT / "docs"
MAX_BYTES = 150_000
VIEWPORT = {"width": 1280, "height": 760}
SIDEBAR_WIDTH = 430

DATA = """import pandas as pd

sales = pd.DataFrame({
    "date": ["2024-01-05", "2024-01-20", "2024-02-03", "2024-02-17", "2024-03-09"],
    "region": ["North", "South", "North", "South", "North"],
    "revenue": [1200, 950, 1430, 1010, 1610],
})
sales.head()"""

FIRST = """monthly = (
    sales.groupby([sales["date"].dt.to_period("M"), "region"])["revenue"]
    .sum()
    .unstack()
)
monthly"""

FIXED = """sales["date"] = pd.to_datetime(sales["date"])
monthly = (
    sales.groupby([sales["date"].dt.to_period("M"), "region"])["revenue"]
    .sum()
    .unstack()
)
monthly"""

PLAN = (
    "Plan:\n\n"
    "1. Add a cell that sums `revenue` per month and region.\n"
    "2. Run it; if the dates are text, parse them first and run again."
)

NOTEBOOK = python_notebook(code_cell(DATA, "data"))


def _task() -> list[Reply]:
    return [
        Reply(PLAN, tool_calls=[ToolCallSpec("insert_cell", {"index": 1, "source": FIRST})]),
        Reply(tool_calls=[ToolCallSpec("run_cell", {"index": 1})]),
        Reply(
            "The dates are strings, so `.dt` fails: I parse them first.",
            tool_calls=[ToolCallSpec("edit_cell", {"index": 1, "source": FIXED})],
        ),
        Reply(tool_calls=[ToolCallSpec("run_cell", {"index": 1})]),
        Reply(
            "Done: `monthly` has the revenue per month (rows) and region (columns); "
            "`sales['date']` is now a datetime column."
        ),
    ]


def _save(page: Any, name: str) -> None:
    path = DOCS / name
    page.screenshot(path=str(path))
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise RuntimeError(f"{name} is {size} bytes, over {MAX_BYTES}")
    print(f"{path.relative_to(ROOT)}: {size // 1000} KB")


def shoot(page: Any, stub: StubServer) -> None:
    sidebar = page.locator(SIDEBAR)
    cells = page.locator(".jp-NotebookPanel:visible .jp-Cell")
    answer = page.locator(f"{SIDEBAR} .mm-Message-assistant").last

    def card(number: int) -> Any:
        return answer.locator(".mm-Approval").nth(number)

    # the user's cell has run: the data frame is in the kernel
    cells.nth(0).locator(".jp-InputPrompt").click()
    page.keyboard.press("Control+Enter")
    cells.nth(0).locator(".jp-OutputArea").get_by_text("North").first.wait_for()
    sidebar.locator("select.mm-Mode").select_option("agent")
    stub.queue(*_task())
    box = sidebar.locator("textarea.mm-Input-text")
    box.fill("Compute the monthly revenue per region from sales")
    box.press("Enter")

    card(0).locator(".mm-Approval-approve").wait_for()
    _save(page, "agent-1-run.png")  # plan, inserted cell, the run waiting for a click
    card(0).locator(".mm-Approval-approve").click()

    card(1).locator(".mm-Diff").wait_for()
    _save(page, "agent-2-edit.png")  # the error read back, the fix as a diff
    card(1).locator(".mm-Approval-approve").click()
    card(2).locator(".mm-Approval-approve").click()

    answer.get_by_text("Done:").wait_for()
    page.wait_for_selector(f"{SIDEBAR} .mm-Stop", state="hidden")
    cells.nth(1).locator(".jp-OutputArea").get_by_text("South").first.wait_for()
    cells.nth(1).scroll_into_view_if_needed()
    answer.locator(".mm-AgentBar").scroll_into_view_if_needed()
    _save(page, "agent-3-done.png")  # the table, the badge, the totals, Undo

    answer.locator(".mm-Undo").click()
    answer.get_by_text("Agent changes undone").wait_for()
    _save(page, "agent-4-undone.png")  # the notebook as it was before the task


def _widen_sidebar(page: Any, width: int) -> None:
    """Drag the handle left of the right side panel until the sidebar is ``width`` wide."""
    box = page.locator(SIDEBAR).bounding_box()
    handle = page.locator("#jp-main-split-panel > .lm-SplitPanel-handle:visible").last
    grip = handle.bounding_box()
    x, y = grip["x"] + grip["width"] / 2, grip["y"] + grip["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x - (width - box["width"]), y, steps=5)
    page.mouse.up()


def main() -> None:
    if not Path(CHROMIUM).exists():
        sys.exit(f"no Chromium at {CHROMIUM}: apt-get install chromium")
    # the current large model (the tests' default, 2407, carries a deprecation note)
    model = {"MISTRAL_MODEL": "mistral-large-latest"}
    with (
        StubServer() as stub,
        sidebar_page(stub, NOTEBOOK, name="sales.ipynb", viewport=VIEWPORT, env=model) as (
            page,
            _api,
        ),
    ):
        # the file browser closed: the notebook and the sidebar share the width
        page.evaluate("() => window.jupyterapp.shell.collapseLeft()")
        _widen_sidebar(page, SIDEBAR_WIDTH)
        shoot(page, stub)


if __name__ == "__main__":
    main()
