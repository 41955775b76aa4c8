"""Inline completion in a real browser: a real ``jupyter lab`` (one per way of asking: Codestral
FIM, and the chat model) with the stub as the model, Debian's Chromium driven by Playwright,
in JupyterLab and in Notebook 7.

Ghost text appears after typing in a cell, Tab inserts it, Esc dismisses it, typing on
cancels the request in flight (the stub sees its connection closed), the columns of a data
frame the code names go with the request, and the toggle turns it all off.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from mistral_magic.engine.inline import CURSOR
from tests.lab_server import (
    ARTIFACTS,
    TIMEOUT_MS,
    TOKEN,
    LabServer,
    code_cell,
    python_notebook,
    running_lab,
)
from tests.stub import Reply, StubServer
from tests.stub.models import CODESTRAL_NAMES

GHOST = ".jp-GhostText"

pytestmark = pytest.mark.timeout(300)

NOTEBOOK = python_notebook(
    code_cell(
        "import pandas as pd\n"
        'sales = pd.DataFrame({"region": ["north", "south"], "amount": [120, 80]})',
        "load",
    ),
    code_cell("", "work"),
)
TYPED = "total = sales["
INSERTION = "'amount'].sum()"


@dataclass
class Setup:
    mode: str  # "fim" | "chat"
    stub: StubServer
    lab: LabServer
    api: httpx.Client

    def requests(self) -> list[Any]:
        return self.stub.fim_requests if self.mode == "fim" else self.stub.chat_requests

    def code_sent(self, request: Any) -> str:
        """The code (with the scope) a completion request carried."""
        body = request.body
        if self.mode == "fim":
            return body["prompt"] + CURSOR + body.get("suffix", "")
        return body["messages"][-1]["content"]


def answer(mode: str, insertion: str, **reply: Any) -> Reply:
    """What the model says for ``insertion``: Codestral only the middle; a chat model the
    whole line in a fence (cut to the insertion by the server)."""
    if mode == "fim":
        return Reply(chunks=[insertion[:5], insertion[5:]], **reply)
    return Reply(chunks=["```python\n" + TYPED + insertion[:5], insertion[5:] + "\n```"], **reply)


@pytest.fixture(scope="module", params=["fim", "chat"])
def setup(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Setup]:
    mode = request.param
    # codestral-latest's card says completion_fim: the server asks by FIM; a server that
    # lists no Codestral (by any name) gets the chat model's completions.
    without = () if mode == "fim" else CODESTRAL_NAMES
    with StubServer(without=without) as stub:
        home = tmp_path_factory.mktemp(f"inline-{mode}")
        headers = {"Authorization": f"token {TOKEN}"}
        with (
            running_lab(stub, home, log_name=f"lab-inline-{mode}.log", inline=True) as lab,
            httpx.Client(base_url=lab.base_url, headers=headers, timeout=30) as api,
        ):
            yield Setup(mode, stub, lab, api)


@pytest.fixture
def page(browser: Browser, setup: Setup) -> Iterator[Page]:
    """A fresh page, the stub answering only what a test scripts; no kernel left running."""
    setup.stub.reset()
    setup.stub.responder = lambda body: Reply("")  # unscripted completions: no ghost text
    context = browser.new_context(viewport={"width": 1300, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    # Errors of our bundle only: Notebook 7.6 with JupyterLab 4.6 raises two of its own at
    # start ("reading 'schema'" in its shortcuts plugin, filebrowser:open-path).
    page.on(
        "pageerror",
        lambda e: errors.append(f"{e}\n{e.stack}") if "mistral-magic" in (e.stack or "") else None,
    )
    try:
        yield page
        assert errors == [], errors
        assert setup.stub.api_key not in page.content()
    finally:
        context.close()
        for session in setup.api.get("api/sessions").json():
            setup.api.delete(f"api/sessions/{session['id']}")


def _write(setup: Setup, name: str) -> None:
    response = setup.api.put(
        f"api/contents/{name}", json={"type": "notebook", "format": "json", "content": NOTEBOOK}
    )
    assert response.status_code in (200, 201), response.text


def _open_lab(page: Page, setup: Setup, name: str) -> Locator:
    _write(setup, name)
    page.goto(setup.lab.url(f"lab/tree/{name}?reset"))
    cells = page.locator(".jp-NotebookPanel:visible .jp-Cell")
    expect(cells).to_have_count(len(NOTEBOOK["cells"]))
    expect(page.locator(".jp-StatusBar-Widget:has-text('| Idle')").first).to_be_visible()
    return cells


def _open_notebook7(page: Page, setup: Setup, name: str) -> Locator:
    _write(setup, name)
    page.goto(setup.lab.url(f"notebooks/{name}"))
    cells = page.locator(".jp-Notebook .jp-Cell")
    expect(cells).to_have_count(len(NOTEBOOK["cells"]))
    expect(page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']")).to_have_count(1)
    return cells


def _editor(cells: Locator, index: int) -> Locator:
    return cells.nth(index).locator(".cm-content")


def _type_in(page: Page, cells: Locator, index: int, text: str) -> None:
    _editor(cells, index).click()
    page.keyboard.type(text, delay=20)


def _when_typed(setup: Setup, insertion: str, **reply: Any) -> None:
    """Answer completions of TYPED with ``insertion`` (the rest get no ghost text)."""
    mode = setup.mode

    def responder(body: dict[str, Any]) -> Reply:
        code = body["prompt"] if mode == "fim" else body["messages"][-1]["content"]
        at_cursor = code if mode == "fim" else code.rsplit(CURSOR, 1)[0]
        if at_cursor.endswith(TYPED):
            return answer(mode, insertion, **reply)
        return Reply("")

    setup.stub.responder = responder


def _screenshot(page: Page, cells: Locator, path: Path) -> None:
    """The cells and the status bar's Mistral item (for README's picture)."""
    first, last = cells.first.bounding_box(), cells.last.bounding_box()
    assert first and last
    top = max(0, first["y"] - 12)
    left = max(0, first["x"] - 12)
    clip = {"x": left, "y": top, "width": first["width"] + 24}
    clip["height"] = last["y"] + last["height"] + 16 - top
    path.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(path), clip=clip)
    page.locator(".mm-InlineStatus").screenshot(path=str(path.with_name(path.stem + "-status.png")))


def _source(cells: Locator, index: int) -> str:
    return cells.nth(index).locator(".cm-content").inner_text()


# ----------------------------------------------------------------------------- the tests


def test_ghost_text_appears_after_typing_and_tab_inserts_it(page: Page, setup: Setup) -> None:
    cells = _open_lab(page, setup, f"tab-{setup.mode}.ipynb")
    _when_typed(setup, INSERTION)
    _type_in(page, cells, 1, TYPED)
    ghost = cells.nth(1).locator(GHOST)
    expect(ghost).to_have_text(INSERTION)
    page.keyboard.press("Tab")
    expect(ghost).to_have_count(0)
    expect(cells.nth(1).locator(".cm-content")).to_have_text(TYPED + INSERTION)
    sent = setup.code_sent(setup.requests()[-1])
    assert TYPED + CURSOR in sent and "import pandas as pd" in sent
    # this session's usage: in the Mistral sidebar and the status bar's tooltip
    page.locator(".jp-SideBar.jp-mod-right li[data-id='mistral-magic-sidebar']").click()
    usage = page.locator("#mistral-magic-sidebar .mm-InlineUsage")
    counted = re.compile(r"\d+ inline completions? this session: \d+ completion tokens.*\$")
    expect(usage).to_have_text(counted)
    expect(page.locator(".mm-InlineStatus")).to_have_attribute("title", re.compile("this session"))


def test_mistral_usage_in_the_kernel_counts_inline_completions(page: Page, setup: Setup) -> None:
    """The kernel never sees inline completions; the page passes the server's count along
    with its scope read after a run, and ``%mistral usage`` shows it (issue #13)."""
    if setup.mode != "fim":
        pytest.skip("the count is passed the same way for both paths")
    cells = _open_lab(page, setup, "usage-in-kernel.ipynb")
    _when_typed(setup, INSERTION)
    _type_in(page, cells, 1, TYPED)
    expect(cells.nth(1).locator(GHOST)).to_have_text(INSERTION)
    page.keyboard.press("Tab")
    expect(page.locator(".mm-InlineStatus")).to_have_attribute("title", re.compile("this session"))
    source = _editor(cells, 0)
    source.click()
    page.keyboard.press("Control+a")
    page.keyboard.type("%load_ext mistral_magic\n%mistral usage")
    prompt = cells.nth(0).locator(".jp-InputPrompt")
    output = cells.nth(0).locator(".jp-OutputArea-output")
    counted = re.compile(r"Inline completions \(ghost text.*\d+ requests?, \d+ completion tokens")
    # The first run loads the extension; the count arrives with the read after it (when the
    # kernel is idle again), so a later run shows it: each run waits for its own output.
    for run in range(1, 6):
        source.click()
        page.keyboard.press("Control+Enter")
        expect(prompt).to_have_text(re.compile(rf"\[{run}\]"))
        if counted.search(output.last.inner_text()):
            break
    expect(output.last).to_contain_text(counted)
    expect(output.last).to_contain_text("as of")


def test_escape_dismisses_the_ghost_text(page: Page, setup: Setup) -> None:
    cells = _open_lab(page, setup, f"esc-{setup.mode}.ipynb")
    _when_typed(setup, INSERTION)
    _type_in(page, cells, 1, TYPED)
    ghost = cells.nth(1).locator(GHOST)
    expect(ghost).to_have_text(INSERTION)
    page.keyboard.press("Escape")
    expect(ghost).to_have_count(0)
    assert _source(cells, 1) == TYPED


def test_typing_on_cancels_the_request_in_flight(page: Page, setup: Setup) -> None:
    cells = _open_lab(page, setup, f"cancel-{setup.mode}.ipynb")
    # the first text, then a model that stalls for a minute unless it is stopped
    _when_typed(setup, INSERTION, pause_after_first=60)
    _type_in(page, cells, 1, TYPED)
    expect(cells.nth(1).locator(GHOST)).to_contain_text(INSERTION[:5])
    stalled = next(r for r in setup.requests() if setup.code_sent(r).find(TYPED + CURSOR) >= 0)
    page.keyboard.type("'")
    assert stalled.client_left.wait(15), "the upstream request was not closed"


def test_a_named_frames_columns_go_with_the_request(page: Page, setup: Setup) -> None:
    cells = _open_lab(page, setup, f"scope-{setup.mode}.ipynb")
    cells.nth(0).locator(".jp-InputPrompt").click()
    page.keyboard.press("Shift+Enter")  # runs the cell creating `sales`; the next is active
    expect(cells.nth(0).locator(".jp-InputPrompt")).to_have_text(re.compile(r"\[1\]"))
    _when_typed(setup, INSERTION)
    _type_in(page, cells, 1, TYPED)
    expect(cells.nth(1).locator(GHOST)).to_have_text(INSERTION)
    _screenshot(page, cells, ARTIFACTS / f"inline-{setup.mode}.png")
    sent = setup.code_sent(setup.requests()[-1])
    assert "sales: pandas DataFrame, 2 rows × 2 columns" in sent
    assert "amount (int64)" in sent and "region (" in sent


INLINE_SETTINGS = "lab/api/settings/@jupyterlab/completer-extension:inline-completer"


def test_the_wait_for_the_kernel_scope_is_a_setting(page: Page, setup: Setup) -> None:
    if setup.mode != "fim":
        pytest.skip("the scope is read in the browser the same way for both paths")
    original = setup.api.get(INLINE_SETTINGS).json()["raw"]
    # The kernel gets no time to answer the silent read: completions go without its scope.
    raw = '{"providers": {"mistral-magic": {"scopeTimeout": 0}}}'
    assert setup.api.put(INLINE_SETTINGS, json={"raw": raw}).status_code == 204
    try:
        cells = _open_lab(page, setup, "scope-timeout.ipynb")
        cells.nth(0).locator(".jp-InputPrompt").click()
        page.keyboard.press("Shift+Enter")
        expect(cells.nth(0).locator(".jp-InputPrompt")).to_have_text(re.compile(r"\[1\]"))
        _when_typed(setup, INSERTION)
        _type_in(page, cells, 1, TYPED)
        expect(cells.nth(1).locator(GHOST)).to_have_text(INSERTION)
        sent = setup.code_sent(setup.requests()[-1])
        assert TYPED + CURSOR in sent and "sales: pandas DataFrame" not in sent
    finally:
        assert setup.api.put(INLINE_SETTINGS, json={"raw": original}).status_code == 204


def test_the_status_bar_toggle_turns_it_off(page: Page, setup: Setup) -> None:
    cells = _open_lab(page, setup, f"toggle-{setup.mode}.ipynb")
    toggle = page.locator(".mm-InlineStatus")
    expect(toggle).to_have_text("Mistral: on")
    toggle.click()
    expect(toggle).to_have_text("Mistral: off")
    asked: list[str] = []
    later = threading.Event()

    def responder(body: dict[str, Any]) -> Reply:
        code = body["prompt"] if setup.mode == "fim" else body["messages"][-1]["content"]
        asked.append(code)
        if TYPED + "'" in code:
            later.set()
        return Reply("")

    setup.stub.responder = responder
    _type_in(page, cells, 1, TYPED)
    expect(_editor(cells, 1)).to_have_text(TYPED)
    # Turned on again, one more character is completed: its request comes after the
    # debounce of the keystrokes typed while off, so any request of theirs came first.
    toggle.click()
    expect(toggle).to_have_text("Mistral: on")
    _editor(cells, 1).click()  # the click on the status bar took the focus away
    page.keyboard.press("End")
    page.keyboard.type("'")
    assert later.wait(30)
    assert all(TYPED + "'" in code for code in asked), asked
    expect(cells.nth(1).locator(GHOST)).to_have_count(0)


def test_notebook_7_gets_ghost_text_too(page: Page, setup: Setup) -> None:
    cells = _open_notebook7(page, setup, f"nb7-{setup.mode}.ipynb")
    _when_typed(setup, INSERTION)
    _type_in(page, cells, 1, TYPED)
    ghost = cells.nth(1).locator(GHOST)
    expect(ghost).to_have_text(INSERTION)
    page.keyboard.press("Tab")
    expect(cells.nth(1).locator(".cm-content")).to_have_text(TYPED + INSERTION)
