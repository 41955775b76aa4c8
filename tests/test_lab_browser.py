"""The JupyterLab sidebar in a real browser: a real ``jupyter lab`` (one per module) with the
stub as the model, Debian's Chromium driven by Playwright.

Every test stands alone, in any order: it gets a fresh browser page, its own copy of the
notebook (so its own kernel, shut down afterwards), an empty chat history, the stub's and the
Settings Editor's defaults. No test sleeps: each waits for what it needs to see. A page that
logs a console error, or shows the API key, fails its test. Screenshots go to ``artifacts/``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright

from tests.lab_server import (  # noqa: F401  (overrides)
    CHROMIUM,
    CHROMIUM_ARGS,
    SIDEBAR,
    TOKEN,
    LabServer,
    jp_asyncio_loop,
    jp_server_cleanup,
    start_lab,
)
from tests.lab_server import code_cell as _code_cell  # (the browser modules import these two)
from tests.lab_server import python_notebook as _notebook
from tests.stub import Drop, Reply, StubServer

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "artifacts"
DOCS = ROOT / "docs"
TIMEOUT_MS = 60_000

pytestmark = pytest.mark.timeout(300)
expect.set_options(timeout=TIMEOUT_MS)


NOTEBOOK = _notebook(
    {"cell_type": "markdown", "id": "intro", "metadata": {}, "source": "# Sales demo"},
    _code_cell(
        "import pandas as pd\n"
        'sales = pd.DataFrame({"region": ["north", "south", "east"], '
        '"amount": [120, 80, 95]})\n'
        "print(sales.shape)",
        "load",
    ),
    _code_cell('ratio = int(sales["amount"].sum()) / 0', "fail"),
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


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def lab_stub() -> Iterator[StubServer]:
    with StubServer() as stub:
        yield stub


@pytest.fixture(scope="module")
def lab(lab_stub: StubServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    """A running ``jupyter lab`` whose model is the stub."""
    server = start_lab(lab_stub, tmp_path_factory.mktemp("lab"))
    try:
        yield server
    finally:
        server.stop()
        ARTIFACTS.mkdir(exist_ok=True)
        shutil.copy(server.log, ARTIFACTS / "lab-server.log")
        assert "test-key" not in server.log.read_text(errors="replace"), "key in the log"


@pytest.fixture(scope="module")
def api(lab: LabServer) -> Iterator[httpx.Client]:
    """The Jupyter server's REST API, as the test's own client."""
    headers = {"Authorization": f"token {TOKEN}"}
    with httpx.Client(base_url=lab.base_url, headers=headers, timeout=30) as client:
        yield client


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


@pytest.fixture(autouse=True)
def clean_state(lab_stub: StubServer, api: httpx.Client) -> Iterator[None]:
    """Each test starts from defaults and leaves no kernel running."""
    lab_stub.reset()
    assert api.delete("mistral-magic/history").status_code == 204
    for plugin, raw in (
        ("mistral-magic:plugin", "{}"),
        ("@jupyterlab/apputils-extension:themes", '{"theme": "JupyterLab Light"}'),
    ):
        response = api.put(f"lab/api/settings/{plugin}", json={"raw": raw})
        assert response.status_code == 204, response.text
    yield
    for session in api.get("api/sessions").json():
        api.delete(f"api/sessions/{session['id']}")


@pytest.fixture
def page(browser: Browser, lab_stub: StubServer, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A fresh page; fails the test if it logged an error or shows the API key."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
    try:
        yield page
        if not request.node.get_closest_marker("console_errors_expected"):
            assert errors == [], errors
        assert lab_stub.api_key and lab_stub.api_key not in page.content()
    finally:
        context.close()


def _open(page: Page, lab: LabServer, api: httpx.Client, name: str, notebook: dict) -> None:
    """Write ``name`` afresh and open it alone (``?reset``: no tabs from earlier tests); the
    kernel is up when the status bar says idle."""
    response = api.put(
        f"api/contents/{name}", json={"type": "notebook", "format": "json", "content": notebook}
    )
    assert response.status_code in (200, 201), response.text
    page.goto(lab.url(f"lab/tree/{name}?reset"))
    cells = page.locator(".jp-NotebookPanel:visible .jp-Cell")
    expect(cells).to_have_count(len(notebook["cells"]))
    expect(page.locator(".jp-StatusBar-Widget:has-text('| Idle')").first).to_be_visible()


def _open_sidebar(page: Page) -> None:
    page.wait_for_function("() => window.jupyterapp !== undefined")
    page.evaluate("() => window.jupyterapp.restored")  # the layout is back: no more toggling
    sidebar = page.locator(SIDEBAR)
    if not sidebar.is_visible():
        page.locator(f".jp-SideBar.jp-mod-right li[data-id='{SIDEBAR[1:]}']").click()
    expect(sidebar).to_be_visible()
    expect(page.locator(f"{SIDEBAR} .mm-Model")).not_to_be_empty()


def _ask(page: Page, question: str) -> None:
    box = page.locator(f"{SIDEBAR} textarea.mm-Input-text")
    box.fill(question)
    box.press("Enter")


def _last_answer(page: Page) -> Locator:
    return page.locator(f"{SIDEBAR} .mm-Message-assistant").last


def _wait_done(page: Page) -> None:
    expect(page.locator(f"{SIDEBAR} .mm-Message.mm-mod-streaming")).to_have_count(0)
    expect(page.locator(f"{SIDEBAR} .mm-Stop")).to_be_hidden()


def _cells(page: Page) -> Locator:
    return page.locator(".jp-NotebookPanel:visible .jp-Cell")


def _run_cell(page: Page, index: int, output: str | None = None) -> None:
    """Run cell ``index``; with ``output``, wait until the cell shows it."""
    _cells(page).nth(index).locator(".jp-InputPrompt").click()
    page.keyboard.press("Control+Enter")
    if output is not None:
        expect(_cells(page).nth(index).locator(".jp-OutputArea")).to_contain_text(output)


def _cell_sources(page: Page) -> list[str]:
    return _cells(page).locator(".jp-InputArea-editor").all_inner_texts()


def _system_message(stub: StubServer) -> str:
    return stub.chat_requests[-1].body["messages"][0]["content"]


def _chip(page: Page, chip_id: str) -> Locator:
    return page.locator(f"{SIDEBAR} .mm-Chip[data-chip-id='{chip_id}']")


def _ask_for_code(page: Page, stub: StubServer) -> Locator:
    stub.queue(Reply(chunks=FIRST_REPLY))
    _ask(page, "What share of the total does each region have?")
    answer = _last_answer(page)
    expect(answer).to_contain_text("It divides by the total.")
    _wait_done(page)
    return answer


# ----------------------------------------------------------------------------- asking


def test_ask_and_see_the_streamed_reply(
    page: Page, lab: LabServer, api: httpx.Client, lab_stub: StubServer
) -> None:
    _open(page, lab, api, "ask.ipynb", NOTEBOOK)
    _open_sidebar(page)
    expect(page.locator(f"{SIDEBAR} .mm-Model")).to_have_text("mistral-large-2407")
    lab_stub.token_delay = 0.05
    lab_stub.queue(Reply(chunks=FIRST_REPLY))
    _ask(page, "What share of the total does each region have?")
    answer = _last_answer(page)
    expect(answer).to_contain_text("Here is the share")
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
    page.locator(SIDEBAR).screenshot(path=str(ARTIFACTS / "sidebar-light.png"))


def test_send_and_stop_look_different(
    page: Page, lab: LabServer, api: httpx.Client, lab_stub: StubServer
) -> None:
    _open(page, lab, api, "buttons.ipynb", NOTEBOOK)
    _open_sidebar(page)
    send, stop = page.locator(f"{SIDEBAR} .mm-Send"), page.locator(f"{SIDEBAR} .mm-Stop")
    colours = page.evaluate(
        """() => {
          const probe = document.createElement('div');
          document.body.appendChild(probe);
          const colour = v => { probe.style.background = `var(${v})`;
                                return getComputedStyle(probe).backgroundColor; };
          const result = {brand: colour('--jp-brand-color1'), error: colour('--jp-error-color1')};
          probe.remove();
          return result;
        }"""
    )
    expect(send).to_be_visible()
    expect(stop).to_be_hidden()
    expect(send).to_have_css("background-color", colours["brand"])
    lab_stub.token_delay = 0.2
    lab_stub.queue(Reply(chunks=[f"w{i} " for i in range(40)]))
    _ask(page, "Count slowly.")
    expect(stop).to_be_visible()
    expect(send).to_be_hidden()  # while answering, only Stop shows
    expect(stop).to_have_css("background-color", colours["error"])
    assert colours["brand"] != colours["error"]
    stop.click()
    _wait_done(page)
    expect(send).to_be_visible()


def test_model_text_never_runs_as_html(
    page: Page, lab: LabServer, api: httpx.Client, lab_stub: StubServer
) -> None:
    """A hostile reply tries to write a file through the Jupyter API and to leave a marker."""
    put = (
        f"fetch('/api/contents/PWNED.txt?token={TOKEN}',{{method:'PUT',"
        "headers:{'Content-Type':'application/json'},"
        "body:JSON.stringify({type:'file',format:'text',content:'x'})}})"
    )
    hostile = (
        f"Look: <img src=x onerror=\"{put};window.__mmPwned=1;console.error('MM-XSS')\">\n\n"
        "<script>window.__mmPwned=2;console.error('MM-XSS')</script>\n\n"
        "[click](javascript:window.__mmPwned=3) and `<b>code</b>` stay text."
    )
    _open(page, lab, api, "hostile.ipynb", NOTEBOOK)
    _open_sidebar(page)
    lab_stub.queue(Reply(chunks=[hostile[i : i + 7] for i in range(0, len(hostile), 7)]))
    _ask(page, "Say something.")
    answer = _last_answer(page)
    expect(answer).to_contain_text("stay text.")
    _wait_done(page)
    markdown = answer.locator(".mm-Message-markdown")
    # shown as the text it is, not as elements
    expect(markdown).to_contain_text("<img src=x onerror=")
    expect(markdown).to_contain_text("<script>window.__mmPwned=2")
    expect(markdown.locator("img, script, iframe")).to_have_count(0)
    expect(markdown.locator("code")).to_have_text("<b>code</b>")
    link = markdown.locator("a", has_text="click")  # a Markdown link to javascript: …
    if link.count():
        link.click()  # … must not run either
    # the next answer is a barrier: everything the hostile one could trigger has had its turn
    lab_stub.queue(Reply("Done."))
    _ask(page, "Next?")
    expect(_last_answer(page)).to_contain_text("Done.")
    assert page.evaluate("window.__mmPwned") is None
    assert api.get("api/contents/PWNED.txt").status_code == 404


# ----------------------------------------------------------------------------- code into cells


def test_insert_below_creates_a_cell_and_does_not_run_it(
    page: Page, lab: LabServer, api: httpx.Client, lab_stub: StubServer
) -> None:
    _open(page, lab, api, "insert.ipynb", NOTEBOOK)
    _open_sidebar(page)
    answer = _ask_for_code(page, lab_stub)
    cells = _cells(page)
    before = cells.count()
    cells.nth(1).locator(".jp-InputPrompt").click()
    answer.get_by_role("button", name="Insert below").click()
    expect(cells).to_have_count(before + 1)
    new_cell = cells.nth(2)
    expect(new_cell.locator(".jp-InputArea-editor")).to_contain_text("sales['share']")
    assert _cell_sources(page)[2].strip() == CODE
    # not executed: empty prompt, no output
    expect(new_cell.locator(".jp-InputPrompt")).to_have_text("[ ]:")
    expect(new_cell.locator(".jp-OutputArea-output")).to_have_count(0)
    expect(answer.locator(".mm-Code-outcome")).to_have_text("Inserted as cell 3 (not run).")


def test_insert_puts_the_replys_provenance_in_the_new_cells_metadata(
    page: Page, lab: LabServer, api: httpx.Client, lab_stub: StubServer
) -> None:
    _open(page, lab, api, "provenance.ipynb", NOTEBOOK)
    _open_sidebar(page)
    answer = _ask_for_code(page, lab_stub)
    expect(answer).to_have_attribute("data-provenance", "ready")
    cells = _cells(page)
    before = cells.count()
    cells.nth(1).locator(".jp-InputPrompt").click()
    answer.get_by_role("button", name="Insert below").click()
    expect(cells).to_have_count(before + 1)
    tag = page.evaluate(
        "() => window.jupyterapp.shell.currentWidget.content.model.sharedModel"
        ".cells[2].getMetadata('mistral')"
    )
    posted = lab_stub.chat_requests[-1]
    assert tag["body_sha256"] == hashlib.sha256(posted.raw).hexdigest()
    assert tag["code_sha256"] == hashlib.sha256(CODE.encode()).hexdigest()
    assert tag["face"] == "sidebar" and tag["model"] == "mistral-large-2407"
    assert tag["question"] == "What share of the total does each region have?"
    assert tag["usage"]["completion_tokens"] > 0 and tag["inserted"]
    assert "test-key" not in json.dumps(tag)


def test_the_magics_code_cell_carries_provenance_and_the_audit_reads_the_open_notebook(
    page: Page, lab: LabServer, api: httpx.Client, lab_stub: StubServer
) -> None:
    notebook = _notebook(
        _code_cell("%load_ext mistral_magic", "load"),
        _code_cell("%%mistral --no-context\nShare of each region?", "ask"),
        _code_cell("%mistral audit", "audit"),
    )
    _open(page, lab, api, "audit.ipynb", notebook)
    page.wait_for_function("() => window.jupyterapp !== undefined")
    _run_cell(page, 0)
    expect(_cells(page).nth(0).locator(".jp-InputPrompt")).to_have_text("[1]:")
    lab_stub.queue(Reply(chunks=FIRST_REPLY))
    _run_cell(page, 1, "It divides by the total.")
    cells = _cells(page)
    expect(cells).to_have_count(4)  # the code offered as a new cell below the question
    expect(cells.nth(2).locator(".jp-InputArea-editor")).to_contain_text("sales['share']")
    page.wait_for_function(
        "() => !!window.jupyterapp.shell.currentWidget.content.model.sharedModel"
        ".cells[2].getMetadata('mistral')"
    )
    tag = page.evaluate(
        "() => window.jupyterapp.shell.currentWidget.content.model.sharedModel"
        ".cells[2].getMetadata('mistral')"
    )
    posted = lab_stub.chat_requests[-1]
    assert tag["body_sha256"] == hashlib.sha256(posted.raw).hexdigest()
    assert tag["face"] == "magic" and tag["question"] == "Share of each region?"
    _run_cell(page, 3, "AI-written code")
    report = cells.nth(3).locator(".jp-OutputArea")
    expect(report).to_contain_text("audit.ipynb as it is open")
    expect(report).to_contain_text("cell 3")
    expect(report).to_contain_text("as inserted")
    assert len(lab_stub.chat_requests) == 1  # the audit sends nothing


def test_insert_into_another_notebook_says_where_and_offers_here(
    page: Page, lab: LabServer, api: httpx.Client, lab_stub: StubServer
) -> None:
    other = _notebook(_code_cell("other = 1", "o1"))
    api.put("api/contents/b.ipynb", json={"type": "notebook", "format": "json", "content": other})
    _open(page, lab, api, "a.ipynb", NOTEBOOK)
    _open_sidebar(page)
    answer = _ask_for_code(page, lab_stub)  # asked about a.ipynb
    page.evaluate("() => window.jupyterapp.commands.execute('docmanager:open', {path: 'b.ipynb'})")
    expect(page.locator(".jp-NotebookPanel:visible .jp-Cell")).to_have_count(1)
    expect(page.locator(".jp-NotebookPanel:visible")).to_contain_text("other = 1")

    answer.get_by_role("button", name="Insert below").click()
    outcome = answer.locator(".mm-Code-outcome")
    expect(outcome).to_contain_text("a.ipynb")
    expect(outcome).to_contain_text("not in view")
    assert _cell_counts(page) == {"a.ipynb": 4, "b.ipynb": 1}
    outcome.get_by_role("button", name="Insert here (b.ipynb)").click()
    expect(page.locator(".jp-NotebookPanel:visible .jp-Cell")).to_have_count(2)
    expect(page.locator(".jp-NotebookPanel:visible")).to_contain_text("sales['share']")
    expect(outcome).to_have_text("Inserted as cell 2 (not run).")
    assert _cell_counts(page) == {"a.ipynb": 4, "b.ipynb": 2}


def _cell_counts(page: Page) -> dict[str, int]:
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


# ----------------------------------------------------------------------------- errors


def test_a_failing_cell_shows_explain_and_sends_the_traceback(
    page: Page, lab: LabServer, api: httpx.Client, lab_stub: StubServer
) -> None:
    _open(page, lab, api, "explain.ipynb", NOTEBOOK)
    _run_cell(page, 1, "(3, 2)")
    _run_cell(page, 2)
    explain = _cells(page).nth(2).locator(".mm-ErrorAction-explain")
    expect(explain).to_be_visible()
    # the execution count arrives with the execute reply, just after the error output
    expect(_cells(page).nth(2).locator(".jp-InputPrompt")).to_have_text("[2]:")
    expect(page.locator(".mm-ErrorAction-fix")).to_have_count(1)
    lab_stub.queue(Reply("You divide by zero: the denominator is the literal `0`."))
    explain.click()
    expect(_last_answer(page)).to_contain_text("You divide by zero")
    _wait_done(page)
    assert len(lab_stub.chat_requests) == 1
    system = _system_message(lab_stub)
    assert "ZeroDivisionError" in system
    assert "Traceback" in system or "division by zero" in system
    assert 'ratio = int(sales["amount"].sum()) / 0' in system
    assert "\x1b[" not in system
    assert lab_stub.chat_requests[-1].body["messages"][-1]["content"].startswith("Explain")
    question = page.locator(f"{SIDEBAR} .mm-Message-user").last
    expect(question.locator(".mm-Message-context")).to_contain_text("error in [2]")


def test_error_buttons_take_no_width_from_the_traceback(
    page: Page, lab: LabServer, api: httpx.Client
) -> None:
    _open(page, lab, api, "width.ipynb", NOTEBOOK)
    _run_cell(page, 1, "(3, 2)")
    _run_cell(page, 2)
    failing = _cells(page).nth(2)
    bar = failing.locator(".mm-ErrorActions")
    expect(bar).to_be_visible()
    printed = _cells(page).nth(1).locator(".jp-OutputArea-output").first.bounding_box()
    traceback = failing.locator(".jp-OutputArea-output").first.bounding_box()
    buttons = bar.bounding_box()
    assert printed and traceback and buttons
    assert traceback["width"] == pytest.approx(printed["width"], abs=1)
    assert buttons["y"] >= traceback["y"] + traceback["height"] - 1  # under it, not beside


def test_one_set_of_error_buttons_when_the_kernel_shows_its_own(
    page: Page, lab: LabServer, api: httpx.Client
) -> None:
    notebook = _notebook(
        _code_cell("%load_ext mistral_magic\n%mistral errors on", "on"),
        _code_cell("values = [1, 2]\nvalues[5]", "fail"),
        _code_cell("print('after')", "after"),
    )
    _open(page, lab, api, "errors-on.ipynb", notebook)
    _run_cell(page, 0)
    _run_cell(page, 1)
    failing = _cells(page).nth(1)
    expect(failing.locator(".mm-error-help button", has_text="Explain")).to_be_visible()
    # a later cell finishing triggers the sidebar's check again: still one set
    _run_cell(page, 2, "after")
    expect(failing.locator(".mm-error-help")).to_have_count(1)
    expect(failing.locator(".mm-ErrorActions")).to_have_count(0)


# ----------------------------------------------------------------------------- context chips


def test_the_chips_match_what_the_stub_received(
    page: Page, lab: LabServer, api: httpx.Client, lab_stub: StubServer
) -> None:
    _open(page, lab, api, "chips.ipynb", NOTEBOOK)
    _run_cell(page, 1, "(3, 2)")
    _run_cell(page, 2)
    expect(_cells(page).nth(2).locator(".mm-ErrorAction-explain")).to_be_visible()
    _open_sidebar(page)
    expect(_chip(page, "var:sales")).to_have_count(1)
    expect(_chip(page, "error")).to_have_count(1)
    lab_stub.queue(Reply("Noted."))
    _ask(page, "Summarise the notebook.")
    expect(_last_answer(page)).to_contain_text("Noted.")
    _wait_done(page)
    system = _system_message(lab_stub)
    shown = page.locator(f"{SIDEBAR} .mm-Chip").evaluate_all(
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
    _chip(page, "var:sales").locator(".mm-Chip-remove").click()
    expect(_chip(page, "var:sales")).to_have_count(0)
    lab_stub.queue(Reply("Without sales."))
    _ask(page, "And now?")
    expect(_last_answer(page)).to_contain_text("Without sales.")
    _wait_done(page)
    assert "### sales · DataFrame" not in _system_message(lab_stub)


def _kernel(page: Page, action: str) -> None:
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


@pytest.mark.console_errors_expected  # JupyterLab logs the shut-down kernel's closed socket
def test_chips_follow_the_kernel_and_say_why_variables_are_missing(
    page: Page, lab: LabServer, api: httpx.Client, lab_stub: StubServer
) -> None:
    notebook = _notebook(
        NOTEBOOK["cells"][1],
        _code_cell("import time\nwhile True:\n    time.sleep(0.05)", "loop"),
    )
    _open(page, lab, api, "kernel-state.ipynb", notebook)
    _open_sidebar(page)
    _run_cell(page, 0, "(3, 2)")
    sales, status = _chip(page, "var:sales"), _chip(page, "kernel")
    expect(sales).to_contain_text("sales · DataFrame 3×2")
    expect(status).to_have_count(0)

    # busy: the variables read before the running cell stay; nothing is silently dropped
    _run_cell(page, 1)
    expect(page.locator(".jp-StatusBar-Widget:has-text('| Busy')").first).to_be_visible()
    page.get_by_role("button", name="New chat").click()  # forces a fresh read of the chips
    expect(sales.or_(status)).to_have_count(1)
    if status.count():
        expect(status).to_contain_text("kernel busy")
    _kernel(page, "interrupt")
    expect(sales).to_contain_text("sales · DataFrame 3×2")

    # restarted: what the old kernel held is gone from the chips and from the request
    _kernel(page, "restart")
    expect(sales).to_have_count(0)
    expect(page.locator(".jp-StatusBar-Widget:has-text('| Idle')").first).to_be_visible()
    lab_stub.queue(Reply("After the restart."))
    _ask(page, "What data do I have?")
    expect(_last_answer(page)).to_contain_text("After the restart.")
    _wait_done(page)
    assert "sales · DataFrame" not in _system_message(lab_stub)

    # shut down: the chip says there is no kernel, and nothing pretends to be live
    _run_cell(page, 0, "(3, 2)")
    expect(sales).to_have_count(1)
    _kernel(page, "shutdown")
    expect(status).to_contain_text("no kernel")
    expect(sales).to_have_count(0)
    lab_stub.queue(Reply("No kernel."))
    _ask(page, "And now?")
    expect(_last_answer(page)).to_contain_text("No kernel.")
    _wait_done(page)
    assert "sales · DataFrame" not in _system_message(lab_stub)
    question = page.locator(f"{SIDEBAR} .mm-Message-user").last
    expect(question.locator(".mm-Message-context")).to_contain_text("no kernel")


def test_a_long_selection_is_clipped_and_the_chip_says_so(
    page: Page, lab: LabServer, api: httpx.Client, lab_stub: StubServer
) -> None:
    long_cell = "".join(f"row_{i} = {i}\n" for i in range(9_000))  # ~110,000 characters
    notebook = _notebook(_code_cell("x = 1", "short"), _code_cell(long_cell, "long"))
    _open(page, lab, api, "selection.ipynb", notebook)
    _open_sidebar(page)
    _cells(page).nth(1).locator(".cm-content").click()
    page.keyboard.press("Control+a")  # selects the cell's whole source
    chip = _chip(page, "selection")
    expect(chip).to_contain_text(f"first 4,000 of {len(long_cell):,} characters")
    lab_stub.queue(Reply("Many rows."))
    _ask(page, "What is selected?")
    expect(_last_answer(page)).to_contain_text("Many rows.")
    _wait_done(page)
    system = _system_message(lab_stub)
    assert "row_0 = 0" in system and "row_8999" not in system


# ----------------------------------------------------------------------------- streaming


def test_a_broken_stream_keeps_the_partial_answer_and_says_why(
    page: Page, lab: LabServer, api: httpx.Client, lab_stub: StubServer
) -> None:
    _open(page, lab, api, "broken.ipynb", NOTEBOOK)
    _open_sidebar(page)
    lab_stub.queue(Drop(after_chunks=3, reply=Reply(chunks=["Partial ", "answer ", "here", "!"])))
    _ask(page, "Tell me something long.")
    answer = _last_answer(page)
    expect(answer.locator(".mm-Message-error")).to_be_visible()
    _wait_done(page)
    expect(answer.locator(".mm-Message-markdown")).to_contain_text("Partial answer")
    error = answer.locator(".mm-Message-error").inner_text()
    assert "broke off" in error and "\n" not in error.strip()


def test_stop_keeps_the_partial_answer_and_cancels_upstream(
    page: Page, lab: LabServer, api: httpx.Client, lab_stub: StubServer
) -> None:
    _open(page, lab, api, "stop.ipynb", NOTEBOOK)
    _open_sidebar(page)
    lab_stub.token_delay = 0.2
    lab_stub.queue(Reply(chunks=[f"step{i} " for i in range(60)]))  # 12 s if not stopped
    _ask(page, "Count slowly.")
    answer = _last_answer(page)
    expect(answer).to_contain_text("step1")
    during = lab_stub.open_connections()  # the streaming one, plus any idle keep-alive
    page.locator(f"{SIDEBAR} .mm-Stop").click()
    _wait_done(page)
    expect(answer).to_contain_text("Stopped.")
    expect(answer.locator(".mm-Message-markdown")).to_contain_text("step0")
    assert lab_stub.wait_for_connections(lambda n: n < during, timeout=8), (
        "the request to the model was not cancelled"
    )
    assert "step59" not in answer.inner_text()


def test_new_chat_while_an_answer_streams_forgets_it_for_good(
    page: Page, lab: LabServer, api: httpx.Client, lab_stub: StubServer
) -> None:
    _open(page, lab, api, "new-chat.ipynb", NOTEBOOK)
    _open_sidebar(page)
    lab_stub.queue(Reply("First answer."))
    _ask(page, "First question?")
    expect(_last_answer(page)).to_contain_text("First answer.")
    _wait_done(page)
    lab_stub.token_delay = 0.2
    lab_stub.queue(Reply(chunks=[f"word{i} " for i in range(60)]))
    _ask(page, "Second question?")
    expect(_last_answer(page)).to_contain_text("word1")
    during = lab_stub.open_connections()
    page.get_by_role("button", name="New chat").click()
    expect(page.locator(f"{SIDEBAR} .mm-Message")).to_have_count(0)
    assert lab_stub.wait_for_connections(lambda n: n < during, timeout=8), "not cancelled"
    assert api.get("mistral-magic/history").json()["entries"] == []

    page.reload()
    _open_sidebar(page)
    lab_stub.token_delay = 0.0
    lab_stub.queue(Reply("A fresh start."))
    _ask(page, "Third question?")
    expect(_last_answer(page)).to_contain_text("A fresh start.")
    _wait_done(page)
    expect(page.locator(f"{SIDEBAR} .mm-Message")).to_have_count(2)  # nothing came back
    messages = lab_stub.chat_requests[-1].body["messages"]
    assert [m["role"] for m in messages] == ["system", "user"]
    assert api.get("mistral-magic/history").json()["entries"][0]["text"] == "Third question?"


def test_scrolling_up_during_a_stream_stays_put(
    page: Page, lab: LabServer, api: httpx.Client, lab_stub: StubServer
) -> None:
    _open(page, lab, api, "scroll.ipynb", NOTEBOOK)
    _open_sidebar(page)
    lab_stub.token_delay = 0.05
    lab_stub.queue(Reply(chunks=[f"Line {i}.\n\n" for i in range(120)]))
    _ask(page, "Write many lines.")
    answer = _last_answer(page)
    expect(answer).to_contain_text("Line 30.")
    messages = page.locator(f"{SIDEBAR} .mm-Messages")
    at_bottom = "e => e.scrollHeight - e.scrollTop - e.clientHeight < 30"
    page.wait_for_function(  # the view follows the stream from the start
        "() => { const e = document.querySelector('#mistral-magic-sidebar .mm-Messages');"
        " return e.scrollTop > 0 && e.scrollHeight - e.scrollTop - e.clientHeight < 30; }"
    )
    messages.hover()
    page.mouse.wheel(0, -400)
    page.wait_for_function(
        "() => document.querySelector('#mistral-magic-sidebar .mm-Messages').scrollTop > 0"
    )
    expect(answer).to_contain_text("Line 60.")  # more text streamed in meanwhile
    held = messages.evaluate("e => e.scrollTop")
    assert not messages.evaluate(at_bottom), "the view snapped back to the bottom"
    expect(answer).to_contain_text("Line 70.")
    assert messages.evaluate("e => e.scrollTop") == held  # still where the user left it
    # back at the bottom, it follows again
    page.mouse.wheel(0, 100_000)
    expect(answer).to_contain_text("Line 119.")
    _wait_done(page)
    page.wait_for_function(
        "() => { const e = document.querySelector('#mistral-magic-sidebar .mm-Messages');"
        " return e.scrollHeight - e.scrollTop - e.clientHeight < 30; }"
    )


def test_a_wide_table_scrolls_in_its_own_box(
    page: Page, lab: LabServer, api: httpx.Client, lab_stub: StubServer
) -> None:
    header = "| " + " | ".join(f"column {i}" for i in range(10)) + " |"
    rule = "|" + "---|" * 10
    row = "| " + " | ".join(f"value {i} of a fairly long cell" for i in range(10)) + " |"
    reply = f"The table:\n\n{header}\n{rule}\n{row}\n{row}\n\nAfter the table."
    _open(page, lab, api, "table.ipynb", NOTEBOOK)
    _open_sidebar(page)
    lab_stub.queue(Reply(reply))
    _ask(page, "A wide table, please.")
    answer = _last_answer(page)
    expect(answer).to_contain_text("After the table.")
    _wait_done(page)
    box = answer.locator(".mm-Table")
    expect(box).to_have_count(1)
    markdown = answer.locator(".mm-Message-markdown")
    assert markdown.evaluate("e => e.scrollWidth <= e.clientWidth + 1"), "the message scrolls"
    assert box.evaluate("e => e.scrollWidth > e.clientWidth"), "the table is squeezed"
    for height in answer.locator("tbody tr").evaluate_all(
        "rows => rows.map(r => r.getBoundingClientRect().height)"
    ):
        assert height < 60, f"a row is {height} px tall"


# ----------------------------------------------------------------------------- settings, reload


def test_settings_editor_values_reach_the_request(
    page: Page, lab: LabServer, api: httpx.Client, lab_stub: StubServer
) -> None:
    settings = {"model": "mistral-small-latest", "temperature": 0.1, "contextBudget": 500}
    response = api.put("lab/api/settings/mistral-magic:plugin", json={"raw": json.dumps(settings)})
    assert response.status_code == 204, response.text
    _open(page, lab, api, "settings.ipynb", NOTEBOOK)
    _open_sidebar(page)
    expect(page.locator(f"{SIDEBAR} .mm-Model")).to_have_text("mistral-small-latest")
    lab_stub.queue(Reply("Small answer."))
    _ask(page, "Which model are you?")
    expect(_last_answer(page)).to_contain_text("Small answer.")
    _wait_done(page)
    sent = lab_stub.chat_requests[-1].body
    assert sent["model"] == "mistral-small-latest" and sent["temperature"] == 0.1


def test_an_unknown_model_in_the_settings_editor_says_where_to_change_it(
    page: Page, lab: LabServer, api: httpx.Client
) -> None:
    raw = json.dumps({"model": "mistral-imaginary-2501"})
    assert api.put("lab/api/settings/mistral-magic:plugin", json={"raw": raw}).status_code == 204
    _open(page, lab, api, "unknown-model.ipynb", NOTEBOOK)
    _open_sidebar(page)
    expect(page.locator(f"{SIDEBAR} .mm-Model")).to_have_text("mistral-imaginary-2501")
    _ask(page, "Hello?")
    error = _last_answer(page).locator(".mm-Message-error")
    expect(error).to_contain_text("Settings Editor")
    expect(error).to_contain_text("mistral-imaginary-2501")
    for kernel_talk in ("--model", "%mistral", "os.environ"):
        expect(error).not_to_contain_text(kernel_talk)


def test_history_survives_a_reload_in_the_dark_theme(
    page: Page, lab: LabServer, api: httpx.Client, lab_stub: StubServer
) -> None:
    _open(page, lab, api, "history.ipynb", NOTEBOOK)
    _open_sidebar(page)
    _ask_for_code(page, lab_stub)
    raw = json.dumps({"theme": "JupyterLab Dark"})
    response = api.put("lab/api/settings/@jupyterlab/apputils-extension:themes", json={"raw": raw})
    assert response.status_code == 204, response.text
    page.reload()
    _open_sidebar(page)
    expect(page.locator("body[data-jp-theme-name='JupyterLab Dark']")).to_have_count(1)
    answers = page.locator(f"{SIDEBAR} .mm-Message-assistant")
    expect(answers).to_have_count(1)
    expect(answers.first).to_contain_text("Here is the share")
    expect(page.locator(SIDEBAR)).not_to_have_css("background-color", "rgb(255, 255, 255)")
    page.locator(SIDEBAR).screenshot(path=str(ARTIFACTS / "sidebar-dark.png"))


def test_the_keyboard_shortcut_opens_the_chat(
    page: Page, lab: LabServer, api: httpx.Client
) -> None:
    _open(page, lab, api, "shortcut.ipynb", NOTEBOOK)
    expect(page.locator(SIDEBAR)).to_be_hidden()
    _cells(page).first.locator(".jp-InputPrompt").click()
    page.keyboard.press("Alt+Shift+M")
    expect(page.locator(SIDEBAR)).to_be_visible()
    expect(page.locator(f"{SIDEBAR} textarea.mm-Input-text")).to_be_focused()


# ----------------------------------------------------------------------------- today's models


def _use_model(api: httpx.Client, model: str) -> None:
    raw = json.dumps({"model": model})
    assert api.put("lab/api/settings/mistral-magic:plugin", json={"raw": raw}).status_code == 204


def test_thinking_shows_collapsed_under_the_answer(
    page: Page, lab: LabServer, api: httpx.Client, lab_stub: StubServer
) -> None:
    _use_model(api, "magistral-medium-latest")
    _open(page, lab, api, "thinking.ipynb", NOTEBOOK)
    _open_sidebar(page)
    expect(page.locator(f"{SIDEBAR} .mm-Model")).to_have_text("magistral-medium-latest")
    lab_stub.token_delay = 0.02
    thinking = "First <b>sum</b> the amounts, then divide north by the total."
    lab_stub.queue(Reply("North has 40%.", thinking=thinking))
    _ask(page, "What share has north?")
    answer = _last_answer(page)
    expect(answer).to_contain_text("North has 40%.")
    _wait_done(page)
    details = answer.locator("details.mm-Thinking")
    expect(details).to_have_count(1)
    assert details.evaluate("d => d.open") is False  # collapsed
    expect(details.locator("summary")).to_have_text(f"Reasoning · {len(thinking.split())} words")
    # under the answer, never in it
    assert details.evaluate("d => d.previousElementSibling.className") == "mm-Message-body"
    expect(answer.locator(".mm-Message-markdown")).not_to_contain_text("sum")
    details.locator("summary").click()
    body = details.locator(".mm-Thinking-body")
    expect(body).to_contain_text("First <b>sum</b> the amounts")  # shown as text
    expect(body.locator("b")).to_have_count(0)
    # the history keeps it, collapsed, for the next page load
    page.reload()
    _open_sidebar(page)
    kept = _last_answer(page).locator("details.mm-Thinking")
    expect(kept).to_have_count(1)
    assert kept.evaluate("d => d.open") is False
    page.locator(SIDEBAR).screenshot(path=str(ARTIFACTS / "sidebar-thinking.png"))


PLOT_NOTEBOOK = _notebook(
    _code_cell("import matplotlib.pyplot as plt\nplt.hist([], bins=10)\nplt.title('Ages')", "plot"),
    _code_cell("x = 1", "after"),
)


def test_the_plot_above_reaches_a_vision_model_as_an_image(
    page: Page, lab: LabServer, api: httpx.Client, lab_stub: StubServer
) -> None:
    _use_model(api, "pixtral-12b-2409")
    _open(page, lab, api, "plot.ipynb", PLOT_NOTEBOOK)
    _open_sidebar(page)
    _run_cell(page, 0)
    expect(_cells(page).nth(0).locator(".jp-OutputArea img")).to_have_count(1)
    _cells(page).nth(1).locator(".jp-InputPrompt").click()  # the plot is "above"
    lab_stub.queue(Reply("The data is empty."))
    _ask(page, "Why is the histogram above empty?")
    expect(_last_answer(page)).to_contain_text("The data is empty.")
    _wait_done(page)
    content = lab_stub.chat_requests[-1].body["messages"][-1]["content"]
    assert [c["type"] for c in content] == ["text", "image_url"]
    assert content[1]["image_url"]["url"].startswith("data:image/png;base64,iVBOR")
    # the chips' preview carries no image data
    previews = [r for r in lab_stub.requests if r.path.endswith("/chat/completions")]
    assert len(previews) == 1
    # a model without vision: a description, and the user is told (saved first: the reload
    # that brings the new setting in reads the notebook, its figure included, from disk)
    page.keyboard.press("Control+s")
    expect(page.locator(".lm-TabBar-tab.jp-mod-dirty")).to_have_count(0)
    _use_model(api, "mistral-large-2407")
    page.reload()
    _open_sidebar(page)
    expect(page.locator(f"{SIDEBAR} .mm-Model")).to_have_text("mistral-large-2407")
    expect(_cells(page).nth(0).locator(".jp-OutputArea img")).to_have_count(1)
    _cells(page).nth(1).locator(".jp-InputPrompt").click()
    lab_stub.queue(Reply("Probably no data."))
    _ask(page, "Why is the histogram above empty?")
    answer = _last_answer(page)
    expect(answer).to_contain_text("Probably no data.")
    _wait_done(page)
    told = answer.locator(".mm-Message-note", has_text="a model with vision would see")
    expect(told).to_have_count(1)
    sent = lab_stub.chat_requests[-1].body["messages"]
    assert isinstance(sent[-1]["content"], str) and "titled 'Ages'" in sent[0]["content"]
