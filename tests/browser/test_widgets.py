"""The chat panel and the error buttons in a real JupyterLab, in Debian's Chromium (Playwright):
Enter sends, Shift+Enter makes a new line, the reply renders, Copy reaches the clipboard,
Insert as new cell puts the cell below at once (the labextension's ``mistral_magic`` comm
target), in JupyterLab and in Notebook 7, also after a page reload.

One ``jupyter lab`` for the module. The first tests share one page and run in file order;
the tests after them open their own page and notebook.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.lab_server import ARTIFACTS, TIMEOUT_MS, TOKEN, running_lab
from tests.stub import Reply, StubServer

pytestmark = pytest.mark.timeout(300)

FIX_REPLY = """The list has two items; take the last one:

```python
values = [1, 2]
values[-1]
```"""

REPLY = """Rows per region:

```python
sales.groupby("region").size()
```

Done."""


def _cell(source: str) -> dict:
    return {
        "cell_type": "code",
        "metadata": {},
        "execution_count": None,
        "outputs": [],
        "source": source,
    }


NOTEBOOK = {
    "nbformat": 4,
    "nbformat_minor": 4,
    "metadata": {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
    },
    "cells": [
        _cell(
            "import mistral_magic, pandas as pd\n"
            "sales = pd.DataFrame({'region': ['north', 'south', 'north']})\n"
            "panel = mistral_magic.chat()"
        ),
        _cell("x = 1"),
        _cell("%load_ext mistral_magic\n%mistral errors on"),
        _cell("values = [1, 2]\nvalues[5]"),
    ],
}


@pytest.fixture(scope="module")
def lab(lab_stub: StubServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("widgets-lab")
    with running_lab(lab_stub, home, {"chat.ipynb": NOTEBOOK}, log_name="lab-widgets.log") as lab:
        yield lab.base_url


@pytest.fixture(scope="module")
def page(lab: str, browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1300, "height": 1000})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=lab.rstrip("/"))
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.goto(f"{lab}lab/tree/chat.ipynb?token={TOKEN}")
    expect(page.locator(".jp-Notebook .jp-Cell")).to_have_count(
        len(NOTEBOOK["cells"]), timeout=TIMEOUT_MS
    )
    idle = page.locator(".jp-StatusBar-Widget:has-text('| Idle')").first
    expect(idle).to_be_visible(timeout=TIMEOUT_MS)
    try:
        yield page
    finally:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "chat-panel.png"), full_page=True)
        context.close()


def _run_cell(page: Page, index: int) -> None:
    page.locator(".jp-Notebook .jp-Cell").nth(index).locator(".jp-InputPrompt").click()
    page.keyboard.press("Control+Enter")


def test_enter_sends_and_shift_enter_makes_a_new_line(page: Page, lab_stub: StubServer) -> None:
    _run_cell(page, 0)
    box = page.locator(".mm-chat .mm-input textarea")
    expect(box).to_be_visible()
    expect(box).to_have_attribute(
        "placeholder", "Message Mistral · Enter sends, Shift+Enter new line"
    )
    lab_stub.queue(Reply(text=REPLY))
    lab_stub.token_delay = 0.02
    box.click()
    box.type("first line")
    box.press("Shift+Enter")
    box.type("second line")
    box.press("Enter")
    reply = page.locator(".mm-chat .mm-reply").last
    expect(reply).to_contain_text("Done.", timeout=TIMEOUT_MS)
    expect(reply).to_contain_text("mistral-large-2407")  # the footer line
    assert lab_stub.chat_requests[-1].body["messages"][-1]["content"] == "first line\nsecond line"
    user = page.locator(".mm-chat .mm-user").last
    assert user.inner_text() == "first line\nsecond line"
    expect(box).to_have_value("")
    expect(reply.locator(".mm-code pre span").first).to_be_visible()  # highlighted code


def test_copy_puts_the_code_on_the_clipboard(page: Page) -> None:
    reply = page.locator(".mm-chat .mm-reply").last
    reply.locator("button.mm-copy").click()
    expect(reply.locator("button.mm-copy")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == 'sales.groupby("region").size()'


def test_insert_puts_the_cell_below_at_once(page: Page) -> None:
    cells = page.locator(".jp-Notebook .jp-Cell")
    before = cells.count()
    page.locator(".mm-chat .mm-reply").last.get_by_role("button", name="Insert as new cell").click()
    expect(page.locator(".mm-chat")).to_contain_text("Inserted as a new cell")
    expect(cells).to_have_count(before + 1)  # nothing was run for it
    inserted = cells.nth(1)  # right below the panel's cell
    expect(inserted.locator(".jp-InputArea-editor")).to_contain_text("groupby")
    expect(inserted.locator(".jp-InputPrompt")).to_have_text("[ ]:")
    expect(page.locator(".mm-chat")).not_to_contain_text("Queued")


def test_error_buttons_render_under_the_traceback(page: Page, lab_stub: StubServer) -> None:
    _run_cell(page, 3)  # the %mistral errors on cell (index shifted by the inserted cell)
    _run_cell(page, 4)
    failing = page.locator(".jp-Notebook .jp-Cell").nth(4)
    explain = failing.locator(".mm-error-help button", has_text="Explain")
    expect(explain).to_be_visible(timeout=TIMEOUT_MS)
    expect(failing.locator(".jp-OutputArea")).to_contain_text("IndexError")
    # one set of buttons: the sidebar adds none where the kernel shows its own
    expect(failing.locator(".mm-ErrorActions")).to_have_count(0)
    lab_stub.queue(Reply(text="Index 5 is past the end of a 2-item list."))
    explain.click()
    expect(failing.locator(".mm-reply")).to_contain_text("past the end", timeout=TIMEOUT_MS)


def test_insert_fix_puts_the_fix_below_at_once(page: Page, lab_stub: StubServer) -> None:
    cells = page.locator(".jp-Notebook .jp-Cell")
    failing = cells.nth(4)
    expect(failing.locator(".mm-error-help button", has_text="Fix")).to_be_visible()
    before = cells.count()
    lab_stub.queue(Reply(text=FIX_REPLY))
    failing.locator(".mm-error-help button", has_text="Fix").click()
    insert = failing.get_by_role("button", name="Insert fix as new cell")
    expect(insert).to_be_visible()
    failing.locator(".jp-InputPrompt").click()  # the fix goes below the active cell
    insert.click()
    expect(failing).to_contain_text("Inserted as a new cell")
    expect(cells).to_have_count(before + 1)
    expect(cells.nth(5).locator(".jp-InputArea-editor")).to_contain_text("values[-1]")
    expect(cells.nth(5).locator(".jp-InputPrompt")).to_have_text("[ ]:")


def test_insert_is_at_once_after_a_page_reload(page: Page) -> None:
    """The kernel's comm belonged to the page that went away: the new page takes it over."""
    cells = page.locator(".jp-Notebook .jp-Cell")
    saved = cells.count()
    page.keyboard.press("Control+s")  # the reloaded page shows the saved outputs (the panel)
    expect(page.locator(".lm-TabBar-tab.jp-mod-dirty")).to_have_count(0)
    page.reload()
    expect(cells).to_have_count(saved)
    reply = page.locator(".mm-chat .mm-reply").last
    insert = reply.get_by_role("button", name="Insert as new cell")
    expect(insert).to_be_visible()
    before = saved
    cells.first.locator(".jp-InputPrompt").click()
    insert.click()
    expect(cells).to_have_count(before + 1)
    expect(cells.nth(1).locator(".jp-InputArea-editor")).to_contain_text("groupby")


def test_insert_is_at_once_in_notebook_7(lab: str, browser: Browser, lab_stub: StubServer) -> None:
    """Notebook 7 loads the same labextension: the panel's Insert needs no run either."""
    name = "nb7.ipynb"
    response = httpx.put(
        f"{lab}api/contents/{name}",
        json={"type": "notebook", "format": "json", "content": NOTEBOOK},
        headers={"Authorization": f"token {TOKEN}"},
    )
    assert response.status_code in (200, 201), response.text
    context = browser.new_context(viewport={"width": 1300, "height": 1000})
    try:
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(f"{lab}notebooks/{name}?token={TOKEN}")
        cells = page.locator(".jp-Notebook .jp-Cell")
        expect(cells).to_have_count(len(NOTEBOOK["cells"]))
        # Notebook 7's kernel indicator: named and idle once the kernel is connected
        expect(page.locator(".jp-KernelName")).to_have_text("Python 3 (ipykernel)")
        expect(page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']")).to_have_count(1)
        _run_cell(page, 0)
        box = page.locator(".mm-chat .mm-input textarea")
        expect(box).to_be_visible()
        lab_stub.queue(Reply(text=REPLY))
        box.click()
        box.type("rows?")
        box.press("Enter")
        reply = page.locator(".mm-chat .mm-reply").last
        expect(reply).to_contain_text("Done.")
        before = cells.count()
        cells.first.locator(".jp-InputPrompt").click()
        reply.get_by_role("button", name="Insert as new cell").click()
        expect(page.locator(".mm-chat")).to_contain_text("Inserted as a new cell")
        expect(cells).to_have_count(before + 1)
        expect(cells.nth(1).locator(".jp-InputArea-editor")).to_contain_text("groupby")
        expect(cells.nth(1).locator(".jp-InputPrompt")).to_have_text("[ ]:")
    finally:
        context.close()
