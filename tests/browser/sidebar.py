"""The sidebar as a user drives it, for the browser tests: open a notebook and the sidebar,
ask, read the answer, run cells, act on the kernel; and the demo notebook most tests use.

Imported as a module (``from tests.browser import sidebar as ui``) so that its short names
never clash with a test's local variables.
"""

from __future__ import annotations

import httpx
from playwright.sync_api import Locator, Page, expect

from tests.lab_server import SIDEBAR, LabServer, code_cell, python_notebook
from tests.stub import Reply, StubServer

NOTEBOOK = python_notebook(
    {"cell_type": "markdown", "id": "intro", "metadata": {}, "source": "# Sales demo"},
    code_cell(
        "import pandas as pd\n"
        'sales = pd.DataFrame({"region": ["north", "south", "east"], '
        '"amount": [120, 80, 95]})\n'
        "print(sales.shape)",
        "load",
    ),
    code_cell('ratio = int(sales["amount"].sum()) / 0', "fail"),
)

CODE = "sales['share'] = sales['amount'] / sales['amount'].sum()\nsales"
FIRST_REPLY = [
    "Here is the share ",
    "of each region:\n\n",
    "```python\n",
    CODE + "\n",
    "```\n",
    "It divides by the total.",
]


def open_notebook(page: Page, lab: LabServer, api: httpx.Client, name: str, notebook: dict) -> None:
    """Write ``name`` afresh and open it alone (``?reset``: no tabs from earlier tests); the
    kernel is up when the status bar says idle."""
    response = api.put(
        f"api/contents/{name}", json={"type": "notebook", "format": "json", "content": notebook}
    )
    assert response.status_code in (200, 201), response.text
    page.goto(lab.url(f"lab/tree/{name}?reset"))
    shown = page.locator(".jp-NotebookPanel:visible .jp-Cell")
    expect(shown).to_have_count(len(notebook["cells"]))
    expect(page.locator(".jp-StatusBar-Widget:has-text('| Idle')").first).to_be_visible()


def open_sidebar(page: Page) -> None:
    page.wait_for_function("() => window.jupyterapp !== undefined")
    page.evaluate("() => window.jupyterapp.restored")  # the layout is back: no more toggling
    sidebar = page.locator(SIDEBAR)
    if not sidebar.is_visible():
        page.locator(f".jp-SideBar.jp-mod-right li[data-id='{SIDEBAR[1:]}']").click()
    expect(sidebar).to_be_visible()
    expect(page.locator(f"{SIDEBAR} .mm-Model")).not_to_be_empty()


def ask(page: Page, question: str) -> None:
    box = page.locator(f"{SIDEBAR} textarea.mm-Input-text")
    box.fill(question)
    box.press("Enter")


def last_answer(page: Page) -> Locator:
    return page.locator(f"{SIDEBAR} .mm-Message-assistant").last


def wait_done(page: Page) -> None:
    expect(page.locator(f"{SIDEBAR} .mm-Message.mm-mod-streaming")).to_have_count(0)
    expect(page.locator(f"{SIDEBAR} .mm-Stop")).to_be_hidden()


def cells(page: Page) -> Locator:
    return page.locator(".jp-NotebookPanel:visible .jp-Cell")


def run_cell(page: Page, index: int, output: str | None = None) -> None:
    """Run cell ``index``; with ``output``, wait until the cell shows it."""
    cells(page).nth(index).locator(".jp-InputPrompt").click()
    page.keyboard.press("Control+Enter")
    if output is not None:
        expect(cells(page).nth(index).locator(".jp-OutputArea")).to_contain_text(output)


def cell_sources(page: Page) -> list[str]:
    return cells(page).locator(".jp-InputArea-editor").all_inner_texts()


def system_message(stub: StubServer) -> str:
    return stub.chat_requests[-1].body["messages"][0]["content"]


def chip(page: Page, chip_id: str) -> Locator:
    return page.locator(f"{SIDEBAR} .mm-Chip[data-chip-id='{chip_id}']")


def ask_for_code(page: Page, stub: StubServer) -> Locator:
    stub.queue(Reply(chunks=FIRST_REPLY))
    ask(page, "What share of the total does each region have?")
    answer = last_answer(page)
    expect(answer).to_contain_text("It divides by the total.")
    wait_done(page)
    return answer


def cell_counts(page: Page) -> dict[str, int]:
    """Cells per open notebook, from JupyterLab's own models."""
    return page.evaluate(
        """() => {
          const counts = {};
          for (const w of window.jupyterapp.shell.widgets('main')) {
            if (w.content && w.content.model && w.context) {
              counts[w.context.path] = w.content.model.sharedModel.cells.length;
            }
          }
          return counts;
        }"""
    )


def kernel_action(page: Page, action: str) -> None:
    """What the Kernel menu does to the visible notebook's kernel (without its dialogs):
    ``interrupt``, ``restart`` or ``shutdown``."""
    page.evaluate(
        """async action => {
          const panel = window.jupyterapp.shell.currentWidget;
          const context = panel.sessionContext;
          if (action === 'shutdown') { await context.shutdown(); return; }
          await context.session.kernel[action]();
        }""",
        action,
    )
