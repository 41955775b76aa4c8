"""The JupyterLab sidebar in a real browser: a real ``jupyter lab`` (one per module) with the
stub as the model, Debian's Chromium driven by Playwright.

The tests share one page and run in file order: ask -> insert -> explain an error -> chips ->
reload (history, dark theme) -> console. Screenshots go to ``artifacts/``.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.lab_server import (  # noqa: F401  (overrides)
    CHROMIUM,
    CHROMIUM_ARGS,
    TOKEN,
    jp_asyncio_loop,
    jp_server_cleanup,
    start_lab,
)
from tests.stub import Drop, Reply, StubServer

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "artifacts"
TIMEOUT_MS = 60_000

pytestmark = pytest.mark.timeout(300)

NOTEBOOK = {
    "nbformat": 4,
    "nbformat_minor": 5,
    "metadata": {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
    },
    "cells": [
        {"cell_type": "markdown", "id": "intro", "metadata": {}, "source": "# Sales demo"},
        {
            "cell_type": "code",
            "id": "load",
            "metadata": {},
            "execution_count": None,
            "outputs": [],
            "source": (
                "import pandas as pd\n"
                'sales = pd.DataFrame({"region": ["north", "south", "east"], '
                '"amount": [120, 80, 95]})\n'
                "print(sales.shape)"
            ),
        },
        {
            "cell_type": "code",
            "id": "fail",
            "metadata": {},
            "execution_count": None,
            "outputs": [],
            "source": 'ratio = int(sales["amount"].sum()) / 0',
        },
    ],
}

CODE = "sales['share'] = sales['amount'] / sales['amount'].sum()\nsales"
FIRST_REPLY = [
    "Here is the share ",
    "of each region:\n\n",
    "```python\n",
    CODE + "\n",
    "```\n",
    "It divides by the total.",
]


@pytest.fixture(scope="module")
def lab_stub() -> Iterator[StubServer]:
    with StubServer() as stub:
        yield stub


@pytest.fixture(scope="module")
def lab(lab_stub: StubServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A running ``jupyter lab`` whose model is the stub; yields its base URL."""
    server = start_lab(lab_stub, tmp_path_factory.mktemp("lab"), {"demo.ipynb": NOTEBOOK})
    try:
        yield server.base_url
    finally:
        server.stop()
        ARTIFACTS.mkdir(exist_ok=True)
        shutil.copy(server.log, ARTIFACTS / "lab-server.log")
        assert "test-key" not in server.log.read_text(errors="replace"), "key in the log"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: apt-get install chromium", pytrace=False)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def console_errors() -> list[str]:
    return []


@pytest.fixture(scope="module")
def page(lab: str, browser: Browser, console_errors: list[str]) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: console_errors.append(f"pageerror: {e}"))
    _open_notebook(page, lab)
    yield page
    context.close()


def _open_notebook(page: Page, lab: str) -> None:
    page.goto(f"{lab}lab/tree/demo.ipynb?token={TOKEN}")
    expect(page.locator(".jp-Notebook .jp-Cell")).to_have_count(
        len(NOTEBOOK["cells"]), timeout=TIMEOUT_MS
    )
    expect(page.locator(".jp-Notebook .jp-Cell").first).to_contain_text("Sales demo")
    # the kernel is up when the status bar says idle
    expect(page.locator(".jp-StatusBar-Widget:has-text('| Idle')").first).to_be_visible(
        timeout=TIMEOUT_MS
    )


def _open_sidebar(page: Page) -> None:
    sidebar = page.locator("#mistral-magic-sidebar")
    if not sidebar.is_visible():
        page.locator(".jp-SideBar.jp-mod-right li[data-id='mistral-magic-sidebar']").click()
    expect(sidebar).to_be_visible()


def _ask(page: Page, question: str) -> None:
    box = page.locator("#mistral-magic-sidebar textarea.mm-Input-text")
    box.fill(question)
    box.press("Enter")


def _last_answer(page: Page) -> Any:
    return page.locator("#mistral-magic-sidebar .mm-Message-assistant").last


def _wait_done(page: Page) -> None:
    expect(page.locator("#mistral-magic-sidebar .mm-Message.mm-mod-streaming")).to_have_count(0)
    expect(page.locator("#mistral-magic-sidebar .mm-Stop")).to_be_hidden()


def _run_cell(page: Page, index: int) -> None:
    cell = page.locator(".jp-Notebook .jp-Cell").nth(index)
    cell.locator(".jp-InputPrompt").click()
    page.keyboard.press("Control+Enter")


def _cell_sources(page: Page) -> list[str]:
    return page.locator(".jp-Notebook .jp-Cell .jp-InputArea-editor").all_inner_texts()


def _system_message(stub: StubServer) -> str:
    return stub.chat_requests[-1].body["messages"][0]["content"]


# ----------------------------------------------------------------------------- the tests


def test_ask_and_see_the_streamed_reply(page: Page, lab_stub: StubServer) -> None:
    _open_sidebar(page)
    expect(page.locator("#mistral-magic-sidebar .mm-Model")).to_have_text("mistral-large-2407")
    lab_stub.token_delay = 0.05
    lab_stub.queue(Reply(chunks=FIRST_REPLY))
    _ask(page, "What share of the total does each region have?")
    answer = _last_answer(page)
    expect(answer).to_contain_text("Here is the share", timeout=TIMEOUT_MS)
    _wait_done(page)
    expect(answer).to_contain_text("It divides by the total.")
    expect(answer.locator(".mm-Message-footer")).to_contain_text("mistral-large-2407")
    expect(answer.locator(".mm-Message-footer")).to_contain_text("tokens")
    # rendered by JupyterLab's Markdown renderer, code highlighted by its editor languages
    expect(answer.locator(".jp-RenderedMarkdown pre code")).to_have_count(1)
    expect(answer.locator(".mm-Code-actions button")).to_have_count(3)
    sent = lab_stub.chat_requests[-1].body
    assert sent["messages"][-1]["content"] == "What share of the total does each region have?"
    assert "# Sales demo" in _system_message(lab_stub)
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator("#mistral-magic-sidebar").screenshot(path=str(ARTIFACTS / "sidebar-light.png"))


def test_insert_below_creates_a_cell_and_does_not_run_it(page: Page) -> None:
    cells = page.locator(".jp-Notebook .jp-Cell")
    before = cells.count()
    page.locator(".jp-Notebook .jp-Cell").nth(1).locator(".jp-InputPrompt").click()
    _last_answer(page).get_by_role("button", name="Insert below").click()
    expect(cells).to_have_count(before + 1)
    new_cell = cells.nth(2)
    expect(new_cell.locator(".jp-InputArea-editor")).to_contain_text("sales['share']")
    assert _cell_sources(page)[2].strip() == CODE
    # not executed: empty prompt, no output
    expect(new_cell.locator(".jp-InputPrompt")).to_have_text("[ ]:")
    expect(new_cell.locator(".jp-OutputArea-output")).to_have_count(0)
    # undo, so the rest of the tests see the original notebook
    new_cell.locator(".jp-InputPrompt").click()
    page.keyboard.press("d")
    page.keyboard.press("d")
    expect(cells).to_have_count(before)


def test_a_failing_cell_shows_explain_and_sends_the_traceback(
    page: Page, lab_stub: StubServer
) -> None:
    _run_cell(page, 1)
    expect(page.locator(".jp-Notebook .jp-Cell").nth(1).locator(".jp-OutputArea")).to_contain_text(
        "(3, 2)", timeout=TIMEOUT_MS
    )
    _run_cell(page, 2)
    explain = page.locator(".jp-Notebook .jp-Cell").nth(2).locator(".mm-ErrorAction-explain")
    expect(explain).to_be_visible(timeout=TIMEOUT_MS)
    # the execution count arrives with the execute reply, just after the error output
    expect(page.locator(".jp-Notebook .jp-Cell").nth(2).locator(".jp-InputPrompt")).to_have_text(
        "[2]:"
    )
    expect(page.locator(".mm-ErrorAction-fix")).to_have_count(1)
    lab_stub.token_delay = 0.0
    lab_stub.queue(Reply("You divide by zero: the denominator is the literal `0`."))
    count = len(lab_stub.chat_requests)
    explain.click()
    expect(_last_answer(page)).to_contain_text("You divide by zero", timeout=TIMEOUT_MS)
    _wait_done(page)
    assert len(lab_stub.chat_requests) == count + 1
    system = _system_message(lab_stub)
    assert "ZeroDivisionError" in system
    assert "Traceback" in system or "division by zero" in system
    assert 'ratio = int(sales["amount"].sum()) / 0' in system
    assert "\x1b[" not in system
    assert lab_stub.chat_requests[-1].body["messages"][-1]["content"].startswith("Explain")


def test_the_chips_match_what_the_stub_received(page: Page, lab_stub: StubServer) -> None:
    question = page.locator("#mistral-magic-sidebar .mm-Message-user").last
    expect(question.locator(".mm-Message-context")).to_contain_text("error in [")
    chips = page.locator("#mistral-magic-sidebar .mm-Chip")
    expect(chips.first).to_be_visible()
    expect(page.locator("#mistral-magic-sidebar .mm-Chip[data-chip-id='var:sales']")).to_have_count(
        1, timeout=TIMEOUT_MS
    )
    lab_stub.queue(Reply("Noted."))
    _ask(page, "Summarise the notebook.")
    expect(_last_answer(page)).to_contain_text("Noted.")
    _wait_done(page)
    system = _system_message(lab_stub)
    shown = chips.evaluate_all(
        "els => els.map(e => ({id: e.dataset.chipId, label: e.querySelector('.mm-Chip-label')"
        ".textContent, title: e.title, omitted: e.classList.contains('mm-mod-omitted')}))"
    )
    ids = {chip["id"] for chip in shown}
    assert {"error", "notebook", "var:sales"} <= ids, shown
    for chip in shown:
        items = chip["title"].split(" — ")[0].split(", ")
        for label in items:
            if chip["omitted"]:
                assert f"### {label}\n" not in system
            else:
                assert f"### {label}\n" in system, (chip, system[:2000])
    assert "sales · DataFrame 3×2" in {chip["label"] for chip in shown}
    page.screenshot(path=str(ARTIFACTS / "lab-light.png"))

    # Removing a chip keeps that context out of the next request.
    page.locator(
        "#mistral-magic-sidebar .mm-Chip[data-chip-id='var:sales'] .mm-Chip-remove"
    ).click()
    expect(page.locator(".mm-Chip[data-chip-id='var:sales']")).to_have_count(0)
    lab_stub.queue(Reply("Without sales."))
    _ask(page, "And now?")
    expect(_last_answer(page)).to_contain_text("Without sales.")
    _wait_done(page)
    assert "### sales · DataFrame" not in _system_message(lab_stub)


def test_a_broken_stream_keeps_the_partial_answer_and_says_why(
    page: Page, lab_stub: StubServer
) -> None:
    lab_stub.queue(Drop(after_chunks=3, reply=Reply(chunks=["Partial ", "answer ", "here", "!"])))
    _ask(page, "Tell me something long.")
    answer = _last_answer(page)
    expect(answer.locator(".mm-Message-error")).to_be_visible(timeout=TIMEOUT_MS)
    _wait_done(page)
    expect(answer.locator(".mm-Message-markdown")).to_contain_text("Partial answer")
    error = answer.locator(".mm-Message-error").inner_text()
    assert "broke off" in error and "\n" not in error.strip()


def test_stop_keeps_the_partial_answer_and_cancels_upstream(
    page: Page, lab_stub: StubServer
) -> None:
    lab_stub.token_delay = 0.2
    lab_stub.queue(Reply(chunks=[f"step{i} " for i in range(60)]))  # 12 s if not stopped
    _ask(page, "Count slowly.")
    answer = _last_answer(page)
    expect(answer).to_contain_text("step1", timeout=TIMEOUT_MS)
    during = _stub_connections(lab_stub)  # the streaming one, plus any idle keep-alive
    started = time.monotonic()
    page.locator("#mistral-magic-sidebar .mm-Stop").click()
    _wait_done(page)
    expect(answer).to_contain_text("Stopped.")
    expect(answer.locator(".mm-Message-markdown")).to_contain_text("step0")
    deadline = time.monotonic() + 10
    while _stub_connections(lab_stub) >= during and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _stub_connections(lab_stub) < during, "the request to the model was not cancelled"
    assert time.monotonic() - started < 8
    lab_stub.token_delay = 0.0


def _stub_connections(stub: StubServer) -> int:
    server = stub._http._server
    assert server is not None
    with server._connections_lock:
        return len(server._connections)


def test_history_survives_a_reload_in_the_dark_theme(page: Page, lab: str) -> None:
    answers_before = page.locator("#mistral-magic-sidebar .mm-Message-assistant").count()
    request = page.context.request
    response = request.put(
        f"{lab}lab/api/settings/@jupyterlab/apputils-extension:themes?token={TOKEN}",
        data=json.dumps({"raw": json.dumps({"theme": "JupyterLab Dark"})}),
        headers={
            "Content-Type": "application/json",
            "Authorization": f"token {TOKEN}",
        },
    )
    assert response.ok, response.text()
    _open_notebook(page, lab)
    _open_sidebar(page)
    expect(page.locator("body[data-jp-theme-name='JupyterLab Dark']")).to_have_count(1)
    expect(page.locator("#mistral-magic-sidebar .mm-Message-assistant")).to_have_count(
        answers_before
    )
    expect(page.locator("#mistral-magic-sidebar .mm-Message-assistant").first).to_contain_text(
        "Here is the share"
    )
    page.wait_for_timeout(300)  # let the theme's CSS settle
    page.locator("#mistral-magic-sidebar").screenshot(path=str(ARTIFACTS / "sidebar-dark.png"))


def test_settings_editor_values_reach_the_request(
    page: Page, lab: str, lab_stub: StubServer
) -> None:
    settings = {"model": "mistral-small-latest", "temperature": 0.1, "contextBudget": 500}
    response = page.context.request.put(
        f"{lab}lab/api/settings/mistral-magic:plugin?token={TOKEN}",
        data=json.dumps({"raw": json.dumps(settings)}),
        headers={"Content-Type": "application/json", "Authorization": f"token {TOKEN}"},
    )
    assert response.ok, response.text()
    _open_notebook(page, lab)
    _open_sidebar(page)
    expect(page.locator("#mistral-magic-sidebar .mm-Model")).to_have_text("mistral-small-latest")
    lab_stub.queue(Reply("Small answer."))
    _ask(page, "Which model are you?")
    expect(_last_answer(page)).to_contain_text("Small answer.")
    _wait_done(page)
    sent = lab_stub.chat_requests[-1].body
    assert sent["model"] == "mistral-small-latest" and sent["temperature"] == 0.1


def test_new_chat_clears_the_history(page: Page, lab: str) -> None:
    page.get_by_role("button", name="New chat").click()
    expect(page.locator("#mistral-magic-sidebar .mm-Message")).to_have_count(0)
    _open_notebook(page, lab)
    _open_sidebar(page)
    page.wait_for_timeout(500)
    expect(page.locator("#mistral-magic-sidebar .mm-Message")).to_have_count(0)


def test_the_keyboard_shortcut_opens_the_chat(page: Page) -> None:
    page.locator(".jp-SideBar.jp-mod-right li[data-id='mistral-magic-sidebar']").click()
    expect(page.locator("#mistral-magic-sidebar")).to_be_hidden()
    page.locator(".jp-Notebook .jp-Cell").first.locator(".jp-InputPrompt").click()
    page.keyboard.press("Alt+Shift+M")
    expect(page.locator("#mistral-magic-sidebar")).to_be_visible()
    expect(page.locator("#mistral-magic-sidebar textarea.mm-Input-text")).to_be_focused()


def test_no_console_errors_and_no_key_in_the_page(
    page: Page, lab_stub: StubServer, console_errors: list[str]
) -> None:
    assert console_errors == []
    assert lab_stub.api_key and lab_stub.api_key not in page.content()
