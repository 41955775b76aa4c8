"""The sidebar's tool calls in a real browser: a real ``jupyter lab`` with the stub as the
model, each scripted call run in the notebook's real kernel (relayed by the server to the
page, run there as a silent execution of ``mistral_magic.kernel_entry``) and its result read
by the model in the next request the stub receives.

Same rules as ``test_sidebar``: a fresh page and notebook per test, no sleeps (every wait
is for something to appear), no console errors, the key never on the page.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, Response, expect

from tests.browser import sidebar as ui
from tests.lab_server import (
    ARTIFACTS,
    SIDEBAR,
    LabServer,
    code_cell,
    code_waiting_for,
    python_notebook,
)
from tests.stub import Reply, StubServer, ToolCallSpec

pytestmark = [pytest.mark.timeout(300), pytest.mark.usefixtures("clean_state")]

HOSTILE = "<img src=x onerror=\"window.__mmPwned=1;console.error('MM-XSS')\"> **bold**"
TOOLS_NOTEBOOK = python_notebook(
    ui.NOTEBOOK["cells"][1],
    code_cell(f"note = {HOSTILE!r}", "note"),
)


def _tool_names(body: dict) -> list[str]:
    return [t["function"]["name"] for t in body.get("tools") or []]


def test_a_scripted_tool_call_runs_in_the_kernel_and_the_model_reads_it(
    page: Page, lab: LabServer, api: httpx.Client, lab_stub: StubServer
) -> None:
    ui.open_notebook(page, lab, api, "tools.ipynb", TOOLS_NOTEBOOK)
    ui.open_sidebar(page)
    ui.run_cell(page, 0, "(3, 2)")
    ui.run_cell(page, 1)
    lab_stub.queue(
        Reply(
            tool_calls=[
                ToolCallSpec("describe_variable", {"name": "sales"}),
                ToolCallSpec("describe_variable", {"name": "note"}),
            ]
        ),
        Reply("sales has 3 rows: north, south and east."),
    )
    ui.ask(page, "How big is sales?")
    answer = ui.last_answer(page)
    expect(answer).to_contain_text("sales has 3 rows")
    ui.wait_done(page)

    first, second = lab_stub.chat_requests[-2].body, lab_stub.chat_requests[-1].body
    # offered: the notebook tools of --tools notebook, as the kernel listed them
    assert {"describe_variable", "list_variables", "get_last_error"} <= set(_tool_names(first))
    # the kernel's real description of `sales`, in the next request, after the model's call
    results = [m for m in second["messages"] if m["role"] == "tool"]
    assert len(results) == 2
    assert "DataFrame" in results[0]["content"]
    for value in ("region", "amount", "north", "east"):
        assert value in results[0]["content"]
    assert "<img src=x" in results[1]["content"]  # the model reads what the kernel holds

    # one line per call: signature, then the folded result, as text
    lines = answer.locator(".mm-Tool")
    expect(lines).to_have_count(2)
    sales_line = lines.nth(0)
    expect(sales_line).to_have_class("mm-Tool mm-mod-ok")
    expect(sales_line.locator(".mm-Tool-signature")).to_have_text('describe_variable(name="sales")')
    expect(sales_line.locator(".mm-Tool-result")).to_be_hidden()  # folded
    sales_line.locator("summary").click()
    expect(sales_line.locator(".mm-Tool-result")).to_contain_text("north")
    hostile_line = lines.nth(1)
    hostile_line.locator("summary").click()
    expect(hostile_line.locator(".mm-Tool-result")).to_contain_text("<img src=x onerror")
    expect(answer.locator(".mm-Tools img, .mm-Tools b, .mm-Tools strong")).to_have_count(0)
    assert page.evaluate("window.__mmPwned") is None
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator(SIDEBAR).screenshot(path=str(ARTIFACTS / "sidebar-tools.png"))

    # the calls are part of the history: a reload shows the same lines
    page.reload()
    ui.open_sidebar(page)
    restored = ui.last_answer(page).locator(".mm-Tool")
    expect(restored).to_have_count(2)
    expect(restored.nth(0).locator(".mm-Tool-signature")).to_have_text(
        'describe_variable(name="sales")'
    )


def test_a_question_asked_while_a_cell_runs_waits_for_the_kernel_and_gets_its_tools(
    page: Page, lab: LabServer, api: httpx.Client, lab_stub: StubServer
) -> None:
    """A busy kernel (a cell running) is waited for, within the sidebar's kernelIdleWait
    setting (3 s by default), before it is asked for its variables and tools: the question is
    not sent without them."""
    # the kernel's workload (a cell that runs for a while), not a wait of the test
    slow = code_cell("import time\ntime.sleep(1)\nprint('slept')", "slow")
    ui.open_notebook(page, lab, api, "busy.ipynb", python_notebook(ui.NOTEBOOK["cells"][1], slow))
    ui.open_sidebar(page)
    ui.run_cell(page, 0, "(3, 2)")
    ui.run_cell(page, 1)  # not waited for: the kernel is busy with it
    page.wait_for_function(
        "() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status"
        " === 'busy'"
    )
    lab_stub.queue(Reply("sales has 3 rows."))
    ui.ask(page, "How big is sales?")
    answer = ui.last_answer(page)
    expect(answer).to_contain_text("sales has 3 rows.")
    ui.wait_done(page)
    expect(answer).not_to_contain_text("without tools")
    assert "describe_variable" in _tool_names(lab_stub.chat_requests[-1].body)
    expect(ui.cells(page).nth(1).locator(".jp-OutputArea")).to_contain_text("slept")


PLUGIN_SETTINGS = "lab/api/settings/mistral-magic:plugin"
BUSY = ".jp-StatusBar-Widget:has-text('| Busy')"


@pytest.fixture
def kernel_idle_wait(api: httpx.Client) -> Iterator[Callable[[float], None]]:
    """Sets the Settings Editor's *Wait for a busy kernel* (``kernelIdleWait``, seconds) before
    the page opens; the defaults are back afterwards, whatever the test did (``clean_state``
    also resets them before each test)."""

    def set_wait(seconds: float) -> None:
        raw = json.dumps({"kernelIdleWait": seconds})
        response = api.put(PLUGIN_SETTINGS, json={"raw": raw})
        assert response.status_code == 204, response.text

    try:
        yield set_wait
    finally:
        response = api.put(PLUGIN_SETTINGS, json={"raw": "{}"})
        assert response.status_code == 204, response.text


def test_a_short_kernel_idle_wait_sends_the_question_without_the_busy_kernel_and_says_so(
    page: Page,
    lab: LabServer,
    api: httpx.Client,
    lab_stub: StubServer,
    kernel_idle_wait: Callable[[float], None],
    tmp_path: Path,
) -> None:
    """kernelIdleWait = 1: a question asked while a cell runs gives up on the kernel after
    1 s and goes without its variables and tools; the chip and the note quote the wait in
    effect (1 s, not the default 3 s), and the running cell is not waited for."""
    kernel_idle_wait(1)
    flag = tmp_path / "release"
    notebook = python_notebook(code_cell(code_waiting_for(flag), "slow"))
    ui.open_notebook(page, lab, api, "short-wait.ipynb", notebook)
    # the sidebar is still closed: nothing was read from the kernel before it became busy
    ui.run_cell(page, 0)
    expect(page.locator(BUSY).first).to_be_visible()
    ui.open_sidebar(page)
    status = ui.chip(page, "kernel")
    expect(status).to_contain_text("kernel busy")
    expect(status).to_have_attribute("title", re.compile(r"still running a cell after 1 s;"))

    lab_stub.queue(Reply("Answered while the cell runs."))
    ui.ask(page, "What is in the kernel?")
    answer = ui.last_answer(page)
    expect(answer).to_contain_text("Answered while the cell runs.")
    ui.wait_done(page)
    note = answer.locator(".mm-Message-note", has_text="Answered without tools")
    expect(note).to_contain_text("the kernel stayed busy (a cell running) for 1 s,")
    assert "tools" not in lab_stub.chat_requests[-1].body
    # answered while the cell still runs: it ends only when the test releases it
    output = ui.cells(page).nth(0).locator(".jp-OutputArea")
    expect(output).not_to_contain_text("user cell done")
    flag.touch()
    expect(output).to_contain_text("user cell done")


def test_a_long_kernel_idle_wait_holds_the_question_past_the_default_until_the_cell_ends(
    page: Page,
    lab: LabServer,
    api: httpx.Client,
    lab_stub: StubServer,
    kernel_idle_wait: Callable[[float], None],
    tmp_path: Path,
) -> None:
    """kernelIdleWait = 60: the page's clock jumps 10 s, well past the default 3 s, while a
    cell runs, and the question still waits for the kernel; when the cell ends it goes with
    the kernel's variables and tools, and no note. With the default, the jump would have
    ended the wait for the variables: the question would have gone without ``sales``."""
    kernel_idle_wait(60)
    # Playwright's clock: it runs at its natural pace, and fast_forward makes the page's
    # timers see 10 s pass at once (no sleep of the test, no wall-clock assertion).
    page.clock.install()
    flag = tmp_path / "release"
    notebook = python_notebook(ui.NOTEBOOK["cells"][1], code_cell(code_waiting_for(flag), "slow"))
    ui.open_notebook(page, lab, api, "long-wait.ipynb", notebook)
    ui.run_cell(page, 0, "(3, 2)")
    ui.run_cell(page, 1)  # the sidebar is closed: nothing read the kernel before it was busy
    expect(page.locator(BUSY).first).to_be_visible()
    ui.open_sidebar(page)
    lab_stub.queue(Reply("sales has 3 rows."))
    ui.ask(page, "How big is sales?")
    # the submit handler started the question's wait for the kernel in the same task as
    # the key press (no await in between), so its timer is already set
    expect(page.locator(f"{SIDEBAR} textarea.mm-Input-text")).to_have_value("")
    page.clock.fast_forward(10_000)
    flag.touch()
    expect(ui.cells(page).nth(1).locator(".jp-OutputArea")).to_contain_text("user cell done")
    answer = ui.last_answer(page)
    expect(answer).to_contain_text("sales has 3 rows.")
    ui.wait_done(page)
    expect(answer.locator(".mm-Message-note", has_text="Answered without tools")).to_have_count(0)
    assert "describe_variable" in _tool_names(lab_stub.chat_requests[-1].body)
    assert "### sales · DataFrame" in ui.system_message(lab_stub)


def _settings_saved(response: Response) -> bool:
    return "lab/api/settings/mistral-magic" in response.url and response.request.method == "PUT"


def test_the_toggle_turns_tools_off_and_on_and_is_the_setting(
    page: Page, lab: LabServer, api: httpx.Client, lab_stub: StubServer
) -> None:
    ui.open_notebook(page, lab, api, "toggle.ipynb", ui.NOTEBOOK)
    ui.open_sidebar(page)
    toggle = page.locator(f"{SIDEBAR} .mm-ToolsToggle-box")
    expect(toggle).to_be_checked()
    with page.expect_response(_settings_saved):
        toggle.uncheck()

    def saved() -> object:
        return api.get("lab/api/settings/mistral-magic:plugin").json()["settings"].get("tools")

    lab_stub.queue(Reply("Without tools."))
    ui.ask(page, "Anything?")
    expect(ui.last_answer(page)).to_contain_text("Without tools.")
    ui.wait_done(page)
    assert "tools" not in lab_stub.chat_requests[-1].body
    assert saved() is False

    with page.expect_response(_settings_saved):
        toggle.check()
    lab_stub.queue(Reply("With tools."))
    ui.ask(page, "And now?")
    expect(ui.last_answer(page)).to_contain_text("With tools.")
    ui.wait_done(page)
    assert "describe_variable" in _tool_names(lab_stub.chat_requests[-1].body)
    assert saved() is True


@pytest.mark.console_errors_expected  # JupyterLab logs the shut-down kernel's closed socket
def test_without_a_kernel_the_sidebar_answers_without_tools_and_says_so_once(
    page: Page, lab: LabServer, api: httpx.Client, lab_stub: StubServer
) -> None:
    ui.open_notebook(page, lab, api, "no-kernel.ipynb", ui.NOTEBOOK)
    ui.open_sidebar(page)
    ui.kernel_action(page, "shutdown")
    expect(page.locator(f"{SIDEBAR} .mm-Chip[data-chip-id='kernel']")).to_contain_text("no kernel")
    for text in ("First without tools.", "Second without tools."):
        lab_stub.queue(Reply(text))
        ui.ask(page, "What is in the notebook?")
        expect(ui.last_answer(page)).to_contain_text(text)
        ui.wait_done(page)
        assert "tools" not in lab_stub.chat_requests[-1].body
    notes = page.locator(f"{SIDEBAR} .mm-Message-note", has_text="Answered without tools")
    expect(notes).to_have_count(1)
    expect(notes).to_contain_text("no running kernel")
