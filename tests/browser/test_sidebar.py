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

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser import sidebar as ui
from tests.lab_server import ARTIFACTS, SIDEBAR, TOKEN, LabServer, code_cell, python_notebook
from tests.stub import Drop, Reply, StubServer

pytestmark = [pytest.mark.timeout(300), pytest.mark.usefixtures("clean_state")]


# ----------------------------------------------------------------------------- asking


def test_ask_and_see_the_streamed_reply(
    page: Page, lab: LabServer, api: httpx.Client, lab_stub: StubServer
) -> None:
    ui.open_notebook(page, lab, api, "ask.ipynb", ui.NOTEBOOK)
    ui.open_sidebar(page)
    expect(page.locator(f"{SIDEBAR} .mm-Model")).to_have_text("mistral-large-2407")
    lab_stub.token_delay = 0.05
    lab_stub.queue(Reply(chunks=ui.FIRST_REPLY))
    ui.ask(page, "What share of the total does each region have?")
    answer = ui.last_answer(page)
    expect(answer).to_contain_text("Here is the share")
    ui.wait_done(page)
    expect(answer).to_contain_text("It divides by the total.")
    expect(answer.locator(".mm-Message-footer")).to_contain_text("mistral-large-2407")
    expect(answer.locator(".mm-Message-footer")).to_contain_text("tokens")
    # rendered by JupyterLab's Markdown renderer, code highlighted by its editor languages
    expect(answer.locator(".jp-RenderedMarkdown pre code")).to_have_count(1)
    expect(answer.locator(".mm-Code-actions button")).to_have_count(3)
    sent = lab_stub.chat_requests[-1].body
    assert sent["messages"][-1]["content"] == "What share of the total does each region have?"
    assert "# Sales demo" in ui.system_message(lab_stub)
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator(SIDEBAR).screenshot(path=str(ARTIFACTS / "sidebar-light.png"))


def test_send_and_stop_look_different(
    page: Page, lab: LabServer, api: httpx.Client, lab_stub: StubServer
) -> None:
    ui.open_notebook(page, lab, api, "buttons.ipynb", ui.NOTEBOOK)
    ui.open_sidebar(page)
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
    ui.ask(page, "Count slowly.")
    expect(stop).to_be_visible()
    expect(send).to_be_hidden()  # while answering, only Stop shows
    expect(stop).to_have_css("background-color", colours["error"])
    assert colours["brand"] != colours["error"]
    stop.click()
    ui.wait_done(page)
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
    ui.open_notebook(page, lab, api, "hostile.ipynb", ui.NOTEBOOK)
    ui.open_sidebar(page)
    lab_stub.queue(Reply(chunks=[hostile[i : i + 7] for i in range(0, len(hostile), 7)]))
    ui.ask(page, "Say something.")
    answer = ui.last_answer(page)
    expect(answer).to_contain_text("stay text.")
    ui.wait_done(page)
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
    ui.ask(page, "Next?")
    expect(ui.last_answer(page)).to_contain_text("Done.")
    assert page.evaluate("window.__mmPwned") is None
    assert api.get("api/contents/PWNED.txt").status_code == 404


# ----------------------------------------------------------------------------- code into cells


def test_insert_below_creates_a_cell_and_does_not_run_it(
    page: Page, lab: LabServer, api: httpx.Client, lab_stub: StubServer
) -> None:
    ui.open_notebook(page, lab, api, "insert.ipynb", ui.NOTEBOOK)
    ui.open_sidebar(page)
    answer = ui.ask_for_code(page, lab_stub)
    cells = ui.cells(page)
    before = cells.count()
    cells.nth(1).locator(".jp-InputPrompt").click()
    answer.get_by_role("button", name="Insert below").click()
    expect(cells).to_have_count(before + 1)
    new_cell = cells.nth(2)
    expect(new_cell.locator(".jp-InputArea-editor")).to_contain_text("sales['share']")
    assert ui.cell_sources(page)[2].strip() == ui.CODE
    # not executed: empty prompt, no output
    expect(new_cell.locator(".jp-InputPrompt")).to_have_text("[ ]:")
    expect(new_cell.locator(".jp-OutputArea-output")).to_have_count(0)
    expect(answer.locator(".mm-Code-outcome")).to_have_text("Inserted as cell 3 (not run).")


def test_insert_puts_the_replys_provenance_in_the_new_cells_metadata(
    page: Page, lab: LabServer, api: httpx.Client, lab_stub: StubServer
) -> None:
    ui.open_notebook(page, lab, api, "provenance.ipynb", ui.NOTEBOOK)
    ui.open_sidebar(page)
    answer = ui.ask_for_code(page, lab_stub)
    expect(answer).to_have_attribute("data-provenance", "ready")
    cells = ui.cells(page)
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
    assert tag["code_sha256"] == hashlib.sha256(ui.CODE.encode()).hexdigest()
    assert tag["face"] == "sidebar" and tag["model"] == "mistral-large-2407"
    assert tag["question"] == "What share of the total does each region have?"
    assert tag["usage"]["completion_tokens"] > 0 and tag["inserted"]
    assert "test-key" not in json.dumps(tag)


def test_the_magics_code_cell_carries_provenance_and_the_audit_reads_the_open_notebook(
    page: Page, lab: LabServer, api: httpx.Client, lab_stub: StubServer
) -> None:
    notebook = python_notebook(
        code_cell("%load_ext mistral_magic", "load"),
        code_cell("%%mistral --no-context\nShare of each region?", "ask"),
        code_cell("%mistral audit", "audit"),
    )
    ui.open_notebook(page, lab, api, "audit.ipynb", notebook)
    page.wait_for_function("() => window.jupyterapp !== undefined")
    ui.run_cell(page, 0)
    expect(ui.cells(page).nth(0).locator(".jp-InputPrompt")).to_have_text("[1]:")
    lab_stub.queue(Reply(chunks=ui.FIRST_REPLY))
    ui.run_cell(page, 1, "It divides by the total.")
    cells = ui.cells(page)
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
    ui.run_cell(page, 3, "AI-written code")
    report = cells.nth(3).locator(".jp-OutputArea")
    expect(report).to_contain_text("audit.ipynb as it is open")
    expect(report).to_contain_text("cell 3")
    expect(report).to_contain_text("as inserted")
    assert len(lab_stub.chat_requests) == 1  # the audit sends nothing


def test_insert_into_another_notebook_says_where_and_offers_here(
    page: Page, lab: LabServer, api: httpx.Client, lab_stub: StubServer
) -> None:
    other = python_notebook(code_cell("other = 1", "o1"))
    api.put("api/contents/b.ipynb", json={"type": "notebook", "format": "json", "content": other})
    ui.open_notebook(page, lab, api, "a.ipynb", ui.NOTEBOOK)
    ui.open_sidebar(page)
    answer = ui.ask_for_code(page, lab_stub)  # asked about a.ipynb
    page.evaluate("() => window.jupyterapp.commands.execute('docmanager:open', {path: 'b.ipynb'})")
    expect(page.locator(".jp-NotebookPanel:visible .jp-Cell")).to_have_count(1)
    expect(page.locator(".jp-NotebookPanel:visible")).to_contain_text("other = 1")

    answer.get_by_role("button", name="Insert below").click()
    outcome = answer.locator(".mm-Code-outcome")
    expect(outcome).to_contain_text("a.ipynb")
    expect(outcome).to_contain_text("not in view")
    assert ui.cell_counts(page) == {"a.ipynb": 4, "b.ipynb": 1}
    outcome.get_by_role("button", name="Insert here (b.ipynb)").click()
    expect(page.locator(".jp-NotebookPanel:visible .jp-Cell")).to_have_count(2)
    expect(page.locator(".jp-NotebookPanel:visible")).to_contain_text("sales['share']")
    expect(outcome).to_have_text("Inserted as cell 2 (not run).")
    assert ui.cell_counts(page) == {"a.ipynb": 4, "b.ipynb": 2}


# ----------------------------------------------------------------------------- errors


def test_a_failing_cell_shows_explain_and_sends_the_traceback(
    page: Page, lab: LabServer, api: httpx.Client, lab_stub: StubServer
) -> None:
    ui.open_notebook(page, lab, api, "explain.ipynb", ui.NOTEBOOK)
    ui.run_cell(page, 1, "(3, 2)")
    ui.run_cell(page, 2)
    explain = ui.cells(page).nth(2).locator(".mm-ErrorAction-explain")
    expect(explain).to_be_visible()
    # the execution count arrives with the execute reply, just after the error output
    expect(ui.cells(page).nth(2).locator(".jp-InputPrompt")).to_have_text("[2]:")
    expect(page.locator(".mm-ErrorAction-fix")).to_have_count(1)
    lab_stub.queue(Reply("You divide by zero: the denominator is the literal `0`."))
    explain.click()
    expect(ui.last_answer(page)).to_contain_text("You divide by zero")
    ui.wait_done(page)
    assert len(lab_stub.chat_requests) == 1
    system = ui.system_message(lab_stub)
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
    ui.open_notebook(page, lab, api, "width.ipynb", ui.NOTEBOOK)
    ui.run_cell(page, 1, "(3, 2)")
    ui.run_cell(page, 2)
    failing = ui.cells(page).nth(2)
    bar = failing.locator(".mm-ErrorActions")
    expect(bar).to_be_visible()
    printed = ui.cells(page).nth(1).locator(".jp-OutputArea-output").first.bounding_box()
    traceback = failing.locator(".jp-OutputArea-output").first.bounding_box()
    buttons = bar.bounding_box()
    assert printed and traceback and buttons
    assert traceback["width"] == pytest.approx(printed["width"], abs=1)
    assert buttons["y"] >= traceback["y"] + traceback["height"] - 1  # under it, not beside


def test_one_set_of_error_buttons_when_the_kernel_shows_its_own(
    page: Page, lab: LabServer, api: httpx.Client
) -> None:
    notebook = python_notebook(
        code_cell("%load_ext mistral_magic\n%mistral errors on", "on"),
        code_cell("values = [1, 2]\nvalues[5]", "fail"),
        code_cell("print('after')", "after"),
    )
    ui.open_notebook(page, lab, api, "errors-on.ipynb", notebook)
    ui.run_cell(page, 0)
    ui.run_cell(page, 1)
    failing = ui.cells(page).nth(1)
    expect(failing.locator(".mm-error-help button", has_text="Explain")).to_be_visible()
    # a later cell finishing triggers the sidebar's check again: still one set
    ui.run_cell(page, 2, "after")
    expect(failing.locator(".mm-error-help")).to_have_count(1)
    expect(failing.locator(".mm-ErrorActions")).to_have_count(0)


# ----------------------------------------------------------------------------- context chips


def test_the_chips_match_what_the_stub_received(
    page: Page, lab: LabServer, api: httpx.Client, lab_stub: StubServer
) -> None:
    ui.open_notebook(page, lab, api, "chips.ipynb", ui.NOTEBOOK)
    ui.run_cell(page, 1, "(3, 2)")
    ui.run_cell(page, 2)
    expect(ui.cells(page).nth(2).locator(".mm-ErrorAction-explain")).to_be_visible()
    ui.open_sidebar(page)
    expect(ui.chip(page, "var:sales")).to_have_count(1)
    expect(ui.chip(page, "error")).to_have_count(1)
    lab_stub.queue(Reply("Noted."))
    ui.ask(page, "Summarise the notebook.")
    expect(ui.last_answer(page)).to_contain_text("Noted.")
    ui.wait_done(page)
    system = ui.system_message(lab_stub)
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
    ui.chip(page, "var:sales").locator(".mm-Chip-remove").click()
    expect(ui.chip(page, "var:sales")).to_have_count(0)
    lab_stub.queue(Reply("Without sales."))
    ui.ask(page, "And now?")
    expect(ui.last_answer(page)).to_contain_text("Without sales.")
    ui.wait_done(page)
    assert "### sales · DataFrame" not in ui.system_message(lab_stub)


@pytest.mark.console_errors_expected  # JupyterLab logs the shut-down kernel's closed socket
def test_chips_follow_the_kernel_and_say_why_variables_are_missing(
    page: Page, lab: LabServer, api: httpx.Client, lab_stub: StubServer
) -> None:
    notebook = python_notebook(
        ui.NOTEBOOK["cells"][1],
        code_cell("import time\nwhile True:\n    time.sleep(0.05)", "loop"),
    )
    ui.open_notebook(page, lab, api, "kernel-state.ipynb", notebook)
    ui.open_sidebar(page)
    ui.run_cell(page, 0, "(3, 2)")
    sales, status = ui.chip(page, "var:sales"), ui.chip(page, "kernel")
    expect(sales).to_contain_text("sales · DataFrame 3×2")
    expect(status).to_have_count(0)

    # busy: the variables read before the running cell stay; nothing is silently dropped
    ui.run_cell(page, 1)
    expect(page.locator(".jp-StatusBar-Widget:has-text('| Busy')").first).to_be_visible()
    page.get_by_role("button", name="New chat").click()  # forces a fresh read of the chips
    expect(sales.or_(status)).to_have_count(1)
    if status.count():
        expect(status).to_contain_text("kernel busy")
    ui.kernel_action(page, "interrupt")
    expect(sales).to_contain_text("sales · DataFrame 3×2")

    # restarted: what the old kernel held is gone from the chips and from the request
    ui.kernel_action(page, "restart")
    expect(sales).to_have_count(0)
    expect(page.locator(".jp-StatusBar-Widget:has-text('| Idle')").first).to_be_visible()
    lab_stub.queue(Reply("After the restart."))
    ui.ask(page, "What data do I have?")
    expect(ui.last_answer(page)).to_contain_text("After the restart.")
    ui.wait_done(page)
    assert "sales · DataFrame" not in ui.system_message(lab_stub)

    # shut down: the chip says there is no kernel, and nothing pretends to be live
    ui.run_cell(page, 0, "(3, 2)")
    expect(sales).to_have_count(1)
    ui.kernel_action(page, "shutdown")
    expect(status).to_contain_text("no kernel")
    expect(sales).to_have_count(0)
    lab_stub.queue(Reply("No kernel."))
    ui.ask(page, "And now?")
    expect(ui.last_answer(page)).to_contain_text("No kernel.")
    ui.wait_done(page)
    assert "sales · DataFrame" not in ui.system_message(lab_stub)
    question = page.locator(f"{SIDEBAR} .mm-Message-user").last
    expect(question.locator(".mm-Message-context")).to_contain_text("no kernel")


def test_a_long_selection_is_clipped_and_the_chip_says_so(
    page: Page, lab: LabServer, api: httpx.Client, lab_stub: StubServer
) -> None:
    long_cell = "".join(f"row_{i} = {i}\n" for i in range(9_000))  # ~110,000 characters
    notebook = python_notebook(code_cell("x = 1", "short"), code_cell(long_cell, "long"))
    ui.open_notebook(page, lab, api, "selection.ipynb", notebook)
    ui.open_sidebar(page)
    ui.cells(page).nth(1).locator(".cm-content").click()
    page.keyboard.press("Control+a")  # selects the cell's whole source
    chip = ui.chip(page, "selection")
    expect(chip).to_contain_text(f"first 4,000 of {len(long_cell):,} characters")
    lab_stub.queue(Reply("Many rows."))
    ui.ask(page, "What is selected?")
    expect(ui.last_answer(page)).to_contain_text("Many rows.")
    ui.wait_done(page)
    system = ui.system_message(lab_stub)
    assert "row_0 = 0" in system and "row_8999" not in system


# ----------------------------------------------------------------------------- streaming


def test_a_broken_stream_keeps_the_partial_answer_and_says_why(
    page: Page, lab: LabServer, api: httpx.Client, lab_stub: StubServer
) -> None:
    ui.open_notebook(page, lab, api, "broken.ipynb", ui.NOTEBOOK)
    ui.open_sidebar(page)
    lab_stub.queue(Drop(after_chunks=3, reply=Reply(chunks=["Partial ", "answer ", "here", "!"])))
    ui.ask(page, "Tell me something long.")
    answer = ui.last_answer(page)
    expect(answer.locator(".mm-Message-error")).to_be_visible()
    ui.wait_done(page)
    expect(answer.locator(".mm-Message-markdown")).to_contain_text("Partial answer")
    error = answer.locator(".mm-Message-error").inner_text()
    assert "broke off" in error and "\n" not in error.strip()


def test_stop_keeps_the_partial_answer_and_cancels_upstream(
    page: Page, lab: LabServer, api: httpx.Client, lab_stub: StubServer
) -> None:
    ui.open_notebook(page, lab, api, "stop.ipynb", ui.NOTEBOOK)
    ui.open_sidebar(page)
    lab_stub.token_delay = 0.2
    lab_stub.queue(Reply(chunks=[f"step{i} " for i in range(60)]))  # 12 s if not stopped
    ui.ask(page, "Count slowly.")
    answer = ui.last_answer(page)
    expect(answer).to_contain_text("step1")
    during = lab_stub.open_connections()  # the streaming one, plus any idle keep-alive
    page.locator(f"{SIDEBAR} .mm-Stop").click()
    ui.wait_done(page)
    expect(answer).to_contain_text("Stopped.")
    expect(answer.locator(".mm-Message-markdown")).to_contain_text("step0")
    assert lab_stub.wait_for_connections(lambda n: n < during, timeout=8), (
        "the request to the model was not cancelled"
    )
    assert "step59" not in answer.inner_text()


def test_new_chat_while_an_answer_streams_forgets_it_for_good(
    page: Page, lab: LabServer, api: httpx.Client, lab_stub: StubServer
) -> None:
    ui.open_notebook(page, lab, api, "new-chat.ipynb", ui.NOTEBOOK)
    ui.open_sidebar(page)
    lab_stub.queue(Reply("First answer."))
    ui.ask(page, "First question?")
    expect(ui.last_answer(page)).to_contain_text("First answer.")
    ui.wait_done(page)
    lab_stub.token_delay = 0.2
    lab_stub.queue(Reply(chunks=[f"word{i} " for i in range(60)]))
    ui.ask(page, "Second question?")
    expect(ui.last_answer(page)).to_contain_text("word1")
    during = lab_stub.open_connections()
    page.get_by_role("button", name="New chat").click()
    expect(page.locator(f"{SIDEBAR} .mm-Message")).to_have_count(0)
    assert lab_stub.wait_for_connections(lambda n: n < during, timeout=8), "not cancelled"
    assert api.get("mistral-magic/history").json()["entries"] == []

    page.reload()
    ui.open_sidebar(page)
    lab_stub.token_delay = 0.0
    lab_stub.queue(Reply("A fresh start."))
    ui.ask(page, "Third question?")
    expect(ui.last_answer(page)).to_contain_text("A fresh start.")
    ui.wait_done(page)
    expect(page.locator(f"{SIDEBAR} .mm-Message")).to_have_count(2)  # nothing came back
    messages = lab_stub.chat_requests[-1].body["messages"]
    assert [m["role"] for m in messages] == ["system", "user"]
    assert api.get("mistral-magic/history").json()["entries"][0]["text"] == "Third question?"


def test_scrolling_up_during_a_stream_stays_put(
    page: Page, lab: LabServer, api: httpx.Client, lab_stub: StubServer
) -> None:
    ui.open_notebook(page, lab, api, "scroll.ipynb", ui.NOTEBOOK)
    ui.open_sidebar(page)
    lab_stub.token_delay = 0.05
    lab_stub.queue(Reply(chunks=[f"Line {i}.\n\n" for i in range(120)]))
    ui.ask(page, "Write many lines.")
    answer = ui.last_answer(page)
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
    ui.wait_done(page)
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
    ui.open_notebook(page, lab, api, "table.ipynb", ui.NOTEBOOK)
    ui.open_sidebar(page)
    lab_stub.queue(Reply(reply))
    ui.ask(page, "A wide table, please.")
    answer = ui.last_answer(page)
    expect(answer).to_contain_text("After the table.")
    ui.wait_done(page)
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
    ui.open_notebook(page, lab, api, "settings.ipynb", ui.NOTEBOOK)
    ui.open_sidebar(page)
    expect(page.locator(f"{SIDEBAR} .mm-Model")).to_have_text("mistral-small-latest")
    lab_stub.queue(Reply("Small answer."))
    ui.ask(page, "Which model are you?")
    expect(ui.last_answer(page)).to_contain_text("Small answer.")
    ui.wait_done(page)
    sent = lab_stub.chat_requests[-1].body
    assert sent["model"] == "mistral-small-latest" and sent["temperature"] == 0.1


def test_an_unknown_model_in_the_settings_editor_says_where_to_change_it(
    page: Page, lab: LabServer, api: httpx.Client
) -> None:
    raw = json.dumps({"model": "mistral-imaginary-2501"})
    assert api.put("lab/api/settings/mistral-magic:plugin", json={"raw": raw}).status_code == 204
    ui.open_notebook(page, lab, api, "unknown-model.ipynb", ui.NOTEBOOK)
    ui.open_sidebar(page)
    expect(page.locator(f"{SIDEBAR} .mm-Model")).to_have_text("mistral-imaginary-2501")
    ui.ask(page, "Hello?")
    error = ui.last_answer(page).locator(".mm-Message-error")
    expect(error).to_contain_text("Settings Editor")
    expect(error).to_contain_text("mistral-imaginary-2501")
    for kernel_talk in ("--model", "%mistral", "os.environ"):
        expect(error).not_to_contain_text(kernel_talk)


def test_history_survives_a_reload_in_the_dark_theme(
    page: Page, lab: LabServer, api: httpx.Client, lab_stub: StubServer
) -> None:
    ui.open_notebook(page, lab, api, "history.ipynb", ui.NOTEBOOK)
    ui.open_sidebar(page)
    ui.ask_for_code(page, lab_stub)
    raw = json.dumps({"theme": "JupyterLab Dark"})
    response = api.put("lab/api/settings/@jupyterlab/apputils-extension:themes", json={"raw": raw})
    assert response.status_code == 204, response.text
    page.reload()
    ui.open_sidebar(page)
    expect(page.locator("body[data-jp-theme-name='JupyterLab Dark']")).to_have_count(1)
    answers = page.locator(f"{SIDEBAR} .mm-Message-assistant")
    expect(answers).to_have_count(1)
    expect(answers.first).to_contain_text("Here is the share")
    expect(page.locator(SIDEBAR)).not_to_have_css("background-color", "rgb(255, 255, 255)")
    page.locator(SIDEBAR).screenshot(path=str(ARTIFACTS / "sidebar-dark.png"))


def test_the_keyboard_shortcut_opens_the_chat(
    page: Page, lab: LabServer, api: httpx.Client
) -> None:
    ui.open_notebook(page, lab, api, "shortcut.ipynb", ui.NOTEBOOK)
    expect(page.locator(SIDEBAR)).to_be_hidden()
    ui.cells(page).first.locator(".jp-InputPrompt").click()
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
    ui.open_notebook(page, lab, api, "thinking.ipynb", ui.NOTEBOOK)
    ui.open_sidebar(page)
    expect(page.locator(f"{SIDEBAR} .mm-Model")).to_have_text("magistral-medium-latest")
    lab_stub.token_delay = 0.02
    thinking = "First <b>sum</b> the amounts, then divide north by the total."
    lab_stub.queue(Reply("North has 40%.", thinking=thinking))
    ui.ask(page, "What share has north?")
    answer = ui.last_answer(page)
    expect(answer).to_contain_text("North has 40%.")
    ui.wait_done(page)
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
    ui.open_sidebar(page)
    kept = ui.last_answer(page).locator("details.mm-Thinking")
    expect(kept).to_have_count(1)
    assert kept.evaluate("d => d.open") is False
    page.locator(SIDEBAR).screenshot(path=str(ARTIFACTS / "sidebar-thinking.png"))


PLOT_NOTEBOOK = python_notebook(
    code_cell("import matplotlib.pyplot as plt\nplt.hist([], bins=10)\nplt.title('Ages')", "plot"),
    code_cell("x = 1", "after"),
)


def test_the_plot_above_reaches_a_vision_model_as_an_image(
    page: Page, lab: LabServer, api: httpx.Client, lab_stub: StubServer
) -> None:
    _use_model(api, "pixtral-12b-2409")
    ui.open_notebook(page, lab, api, "plot.ipynb", PLOT_NOTEBOOK)
    ui.open_sidebar(page)
    ui.run_cell(page, 0)
    expect(ui.cells(page).nth(0).locator(".jp-OutputArea img")).to_have_count(1)
    ui.cells(page).nth(1).locator(".jp-InputPrompt").click()  # the plot is "above"
    lab_stub.queue(Reply("The data is empty."))
    ui.ask(page, "Why is the histogram above empty?")
    expect(ui.last_answer(page)).to_contain_text("The data is empty.")
    ui.wait_done(page)
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
    ui.open_sidebar(page)
    expect(page.locator(f"{SIDEBAR} .mm-Model")).to_have_text("mistral-large-2407")
    expect(ui.cells(page).nth(0).locator(".jp-OutputArea img")).to_have_count(1)
    ui.cells(page).nth(1).locator(".jp-InputPrompt").click()
    lab_stub.queue(Reply("Probably no data."))
    ui.ask(page, "Why is the histogram above empty?")
    answer = ui.last_answer(page)
    expect(answer).to_contain_text("Probably no data.")
    ui.wait_done(page)
    told = answer.locator(".mm-Message-note", has_text="a model with vision would see")
    expect(told).to_have_count(1)
    sent = lab_stub.chat_requests[-1].body["messages"]
    assert isinstance(sent[-1]["content"], str) and "titled 'Ages'" in sent[0]["content"]
