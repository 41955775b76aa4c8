"""Agent mode in a real browser (issue #14): a real ``jupyter lab`` with the stub scripted as
the model, a real kernel, real clicks on the approval cards. Each scripted reply is one of the
task's model requests; the page acts on the notebook model; the notebook JSON is compared
before and after Undo.

Same rules as ``test_sidebar``: a fresh page and notebook per test, no sleeps (every wait
is for something to appear), no console errors, the key never on the page.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from mistral_magic.engine.provenance import code_hash
from tests.browser import sidebar as ui
from tests.lab_server import (
    ARTIFACTS,
    SIDEBAR,
    TOKEN,
    LabServer,
    code_cell,
    code_waiting_for,
    python_notebook,
    running_lab,
)
from tests.stub import Reply, StubServer, ToolCallSpec

pytestmark = [pytest.mark.timeout(300), pytest.mark.usefixtures("clean_state")]

MAX_STEPS = 4
PLAN = "Plan:\n\n1. Add a cell computing `y`.\n2. Run it and fix it if it fails."
START = python_notebook(code_cell("x = 1\nx", "first"))


@pytest.fixture(scope="module")
def lab(lab_stub: StubServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    """A ``jupyter lab`` with the stub as the model and a small step bound for the tests."""
    with running_lab(
        lab_stub,
        tmp_path_factory.mktemp("lab-agent"),
        log_name="lab-agent-server.log",
        args=(
            f"--MistralServer.agent_max_steps={MAX_STEPS}",
            # Notebook 7's pages too: its test reaches the app as window.jupyterapp
            "--JupyterNotebookApp.expose_app_in_browser=True",
        ),
    ) as lab:
        yield lab


def _run_first_cell(page: Page, count: int) -> None:
    """Run cell 0 and wait until the run is over (its output, then its count: the output
    can show before the kernel's reply sets the execution count)."""
    ui.run_cell(page, 0, "1")
    expect(ui.cells(page).nth(0).locator(".jp-InputPrompt")).to_contain_text(f"[{count}]")


def _notebook_json(page: Page) -> dict[str, Any]:
    """The visible notebook as JupyterLab's model has it (what Save would write)."""
    return page.evaluate("() => window.jupyterapp.shell.currentWidget.content.model.toJSON()")


def _agent_mode(page: Page) -> None:
    page.locator(f"{SIDEBAR} select.mm-Mode").select_option("agent")
    expect(page.locator(f"{SIDEBAR} .mm-AutoApprove")).to_be_visible()


def _save_and_reload(page: Page, cells: int) -> Any:
    """Save the notebook (the reloaded page opens it with the agent's changes), reload the
    page, wait for its ``cells`` and the sidebar; the last answer (the restored task)."""
    page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
    page.wait_for_function("() => !window.jupyterapp.shell.currentWidget.context.model.dirty")
    page.reload()
    expect(ui.cells(page)).to_have_count(cells)
    ui.open_sidebar(page)
    return ui.last_answer(page)


def _a_new_task_runs(page: Page, stub: StubServer) -> None:
    stub.queue(Reply("Nothing left to do."))
    _agent_mode(page)
    ui.ask(page, "Anything left?")
    expect(ui.last_answer(page)).to_contain_text("Nothing left to do.")
    ui.wait_done(page)


def _card(page: Page, number: int) -> Any:
    return ui.last_answer(page).locator(".mm-Approval").nth(number)


def _tool_messages(stub: StubServer) -> list[str]:
    return [m["content"] for m in stub.chat_requests[-1].body["messages"] if m["role"] == "tool"]


# The scripted task, one reply per model request: insert -> run (approved) -> the
# error read back -> edit (a diff, approved) -> run -> the answer.
SCRIPTED_TASK = (
    Reply(PLAN, tool_calls=[ToolCallSpec("insert_cell", {"index": 1, "source": "y = x / 0"})]),
    Reply(tool_calls=[ToolCallSpec("run_cell", {"index": 1})]),
    Reply(tool_calls=[ToolCallSpec("edit_cell", {"index": 1, "source": "y = x / 2\ny"})]),
    Reply(tool_calls=[ToolCallSpec("run_cell", {"index": 1})]),
    Reply("Done: `y` is 0.5."),
)


def test_an_agent_task_inserts_runs_fixes_and_undo_restores_the_notebook(
    page: Page, lab: LabServer, api: httpx.Client, lab_stub: StubServer
) -> None:
    ui.open_notebook(page, lab, api, "agent.ipynb", START)
    ui.open_sidebar(page)
    _run_first_cell(page, 1)
    before = _notebook_json(page)
    lab_stub.queue(*SCRIPTED_TASK)
    asked = len(lab_stub.chat_requests)
    _agent_mode(page)
    ui.ask(page, "Compute y as x divided by something")
    answer = ui.last_answer(page)
    expect(answer).to_contain_text("Add a cell computing")  # the plan, with the first reply
    expect(ui.cells(page)).to_have_count(2)  # the insert shows at once, not run
    run = _card(page, 0)
    expect(run.locator(".mm-Approval-code")).to_have_text("y = x / 0")
    run.locator(".mm-Approval-approve").click()
    # the error went back to the model, condensed and ANSI-free
    edit = _card(page, 1)
    expect(edit.locator(".mm-Diff-del")).to_have_text("- y = x / 0\n")
    expect(edit.locator(".mm-Diff-add")).to_have_count(2)
    error_text = _tool_messages(lab_stub)[-1]
    assert error_text.startswith("Cell 1 (In[2]) raised an error.")
    assert "ZeroDivisionError" in error_text and "\x1b[" not in error_text
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator(SIDEBAR).screenshot(path=str(ARTIFACTS / "agent-edit.png"))
    edit.locator(".mm-Approval-approve").click()
    _card(page, 2).locator(".mm-Approval-approve").click()
    expect(answer).to_contain_text("y is 0.5")
    ui.wait_done(page)
    expect(ui.cells(page).nth(1).locator(".jp-OutputArea")).to_contain_text("0.5")
    assert len(lab_stub.chat_requests) - asked == 5  # one request per scripted reply
    assert "Cell 1 (In[3]) ran." in _tool_messages(lab_stub)[-1]

    # badge and provenance on the agent's cell, none on the user's
    expect(ui.cells(page).nth(1)).to_have_class(lambda_class("mm-AgentCell"))
    expect(ui.cells(page).nth(0)).not_to_have_class(lambda_class("mm-AgentCell"))
    after = _notebook_json(page)
    provenance = after["cells"][1]["metadata"]["mistral"]
    assert provenance["model"] == "mistral-large-2407" and provenance["step"] >= 3
    assert provenance["task"] and provenance["timestamp"].endswith("Z")
    # the one provenance format (an Insert's): what %mistral audit reads, the code the
    # agent wrote by its hash, and the task's reply's record once it was complete
    assert (provenance["version"], provenance["face"]) == (1, "agent")
    assert provenance["question"] == "Compute y as x divided by something"
    assert provenance["code_sha256"] == code_hash("y = x / 2\ny")
    assert (
        provenance["body_sha256"] == hashlib.sha256(lab_stub.chat_requests[asked].raw).hexdigest()
    )
    assert provenance["usage"]["prompt_tokens"] > 0 and provenance["request_id"]
    assert "mistral" not in after["cells"][0]["metadata"]
    expect(answer.locator(".mm-AgentBar-status")).to_contain_text(f"of at most {MAX_STEPS}")
    page.screenshot(path=str(ARTIFACTS / "agent-done.png"))

    # the user edits their own cell after the task; Undo leaves that edit alone
    page.evaluate(
        """() => window.jupyterapp.shell.currentWidget.content.model.sharedModel
                 .cells[0].setSource('x = 10\\nx')"""
    )
    answer.locator(".mm-Undo").click()
    expect(answer.locator(".mm-Undo")).to_have_text("Agent changes undone")
    expected = dict(before)
    expected["cells"] = [dict(before["cells"][0], source="x = 10\nx")]
    assert _notebook_json(page) == expected
    expect(ui.cells(page)).to_have_count(1)


def lambda_class(name: str) -> Any:
    import re

    return re.compile(rf"(^|\s){name}(\s|$)")


def test_rejected_steps_run_nothing_and_the_model_reads_rejected(
    page: Page, lab: LabServer, api: httpx.Client, lab_stub: StubServer
) -> None:
    ui.open_notebook(page, lab, api, "reject.ipynb", START)
    ui.open_sidebar(page)
    _run_first_cell(page, 1)
    before = _notebook_json(page)
    assert before["cells"][0]["execution_count"] == 1
    lab_stub.queue(
        Reply(PLAN, tool_calls=[ToolCallSpec("run_cell", {"index": 0})]),
        Reply(tool_calls=[ToolCallSpec("edit_cell", {"index": 0, "source": "x = 2"})]),
        Reply("Nothing was done."),
    )
    _agent_mode(page)
    ui.ask(page, "Change x")
    _card(page, 0).locator(".mm-Approval-reject").click()
    _card(page, 1).locator(".mm-Approval-reject").click()
    answer = ui.last_answer(page)
    expect(answer).to_contain_text("Nothing was done.")
    ui.wait_done(page)
    assert _tool_messages(lab_stub) == ["rejected by the user", "rejected by the user"]
    assert _notebook_json(page) == before
    expect(answer.locator(".mm-Undo")).to_be_hidden()  # nothing to undo
    # the kernel ran nothing: the next run is In[2]
    _run_first_cell(page, 2)


def test_the_step_bound_ends_the_task_with_a_message(
    page: Page, lab: LabServer, api: httpx.Client, lab_stub: StubServer
) -> None:
    ui.open_notebook(page, lab, api, "bound.ipynb", START)
    ui.open_sidebar(page)
    lab_stub.queue(
        Reply(PLAN, tool_calls=[ToolCallSpec("list_cells", {})]),
        *[Reply(tool_calls=[ToolCallSpec("get_cell", {"index": 0})]) for _ in range(MAX_STEPS)],
    )
    asked = len(lab_stub.chat_requests)
    _agent_mode(page)
    ui.ask(page, "Look around forever")
    answer = ui.last_answer(page)
    expect(_note(page)).to_contain_text("MistralServer.agent_max_steps")
    ui.wait_done(page)
    assert len(lab_stub.chat_requests) - asked == MAX_STEPS + 1
    expect(answer.locator(".mm-Tool")).to_have_count(MAX_STEPS)


# ------------------------------------------------- the kernel busy, restarted; notebook closed


def _note(page: Page) -> Any:
    """The answer's latest note (the first answer of a module may also carry the stub's
    deprecation note for its model, said once)."""
    return ui.last_answer(page).locator(".mm-Message-note").last


def test_a_busy_kernel_makes_the_approved_run_wait_with_a_note(
    page: Page, lab: LabServer, api: httpx.Client, lab_stub: StubServer, tmp_path: Path
) -> None:
    flag = tmp_path / "go"
    notebook = python_notebook(
        code_cell(code_waiting_for(flag), "slow"), code_cell("z = 3\nz", "z")
    )
    ui.open_notebook(page, lab, api, "busy.ipynb", notebook)
    ui.open_sidebar(page)
    ui.run_cell(page, 0)  # the user's long cell: the kernel is busy until the flag exists
    expect(page.locator(".jp-StatusBar-Widget:has-text('| Busy')").first).to_be_visible()
    lab_stub.queue(
        Reply(PLAN, tool_calls=[ToolCallSpec("run_cell", {"index": 1})]),
        Reply("Ran it: z is 3."),
    )
    asked = len(lab_stub.chat_requests)
    _agent_mode(page)
    ui.ask(page, "Run the cell computing z")
    _card(page, 0).locator(".mm-Approval-approve").click()
    answer = ui.last_answer(page)
    wait = answer.locator(".mm-AgentBar-note")
    expect(wait).to_contain_text("Waiting for the kernel")
    # the approved cell waits: nothing ran, the model was not asked again
    expect(ui.cells(page).nth(1).locator(".jp-InputPrompt")).to_have_text("[ ]:")
    assert len(lab_stub.chat_requests) - asked == 1
    flag.touch()
    expect(ui.cells(page).nth(0).locator(".jp-OutputArea")).to_contain_text("user cell done")
    expect(answer).to_contain_text("Ran it: z is 3.")
    ui.wait_done(page)
    expect(wait).to_be_hidden()
    expect(ui.cells(page).nth(1).locator(".jp-OutputArea")).to_contain_text("3")
    assert "Cell 1 (In[2]) ran." in _tool_messages(lab_stub)[-1]


@pytest.mark.console_errors_expected  # JupyterLab logs the shut-down kernel's closed socket
def test_a_kernel_shut_down_while_the_run_waits_ends_it_with_a_clear_error(
    page: Page, lab: LabServer, api: httpx.Client, lab_stub: StubServer, tmp_path: Path
) -> None:
    flag = tmp_path / "never"  # the user's cell would run 120 s: the shutdown ends it
    notebook = python_notebook(
        code_cell(code_waiting_for(flag), "slow"), code_cell("z = 3\nz", "z")
    )
    ui.open_notebook(page, lab, api, "gone.ipynb", notebook)
    ui.open_sidebar(page)
    ui.run_cell(page, 0)
    expect(page.locator(".jp-StatusBar-Widget:has-text('| Busy')").first).to_be_visible()
    lab_stub.queue(
        Reply(PLAN, tool_calls=[ToolCallSpec("run_cell", {"index": 1})]),
        Reply("The kernel is gone; nothing ran."),
    )
    _agent_mode(page)
    ui.ask(page, "Run the cell computing z")
    _card(page, 0).locator(".mm-Approval-approve").click()
    answer = ui.last_answer(page)
    expect(answer.locator(".mm-AgentBar-note")).to_contain_text("Waiting for the kernel")
    ui.kernel_action(page, "shutdown")
    expect(answer).to_contain_text("The kernel is gone; nothing ran.")
    ui.wait_done(page)
    # the wait ended with the kernel (or the run it let through was cancelled with it)
    assert "the notebook's kernel stopped" in _tool_messages(lab_stub)[-1]
    expect(ui.cells(page).nth(1).locator(".jp-InputPrompt")).to_have_text("[ ]:")


def test_a_kernel_restart_stops_the_task_with_a_message(
    page: Page, lab: LabServer, api: httpx.Client, lab_stub: StubServer
) -> None:
    ui.open_notebook(page, lab, api, "restart.ipynb", START)
    ui.open_sidebar(page)
    lab_stub.queue(
        Reply(PLAN, tool_calls=[ToolCallSpec("run_cell", {"index": 0})]),
        Reply("This reply is never asked for."),
    )
    asked = len(lab_stub.chat_requests)
    _agent_mode(page)
    ui.ask(page, "Run the first cell")
    card = _card(page, 0)
    expect(card.locator(".mm-Approval-approve")).to_be_visible()
    ui.kernel_action(page, "restart")
    expect(_note(page)).to_contain_text("kernel restarted")
    expect(card).to_contain_text("Rejected: the task stopped.")
    ui.wait_done(page)
    assert len(lab_stub.chat_requests) - asked == 1
    expect(ui.cells(page).nth(0).locator(".jp-InputPrompt")).not_to_contain_text("[1]")


def test_closing_the_notebook_stops_the_task_and_writes_nowhere_else(
    page: Page, lab: LabServer, api: httpx.Client, lab_stub: StubServer
) -> None:
    other = python_notebook(code_cell("other = 1", "o1"))
    api.put(
        "api/contents/other.ipynb", json={"type": "notebook", "format": "json", "content": other}
    )
    ui.open_notebook(page, lab, api, "closed.ipynb", START)
    ui.open_sidebar(page)
    page.evaluate(
        "() => window.jupyterapp.commands.execute('docmanager:open', {path: 'other.ipynb'})"
    )
    expect(page.locator(".jp-NotebookPanel:visible")).to_contain_text("other = 1")
    page.evaluate(
        "() => window.jupyterapp.commands.execute('docmanager:open', {path: 'closed.ipynb'})"
    )
    expect(page.locator(".jp-NotebookPanel:visible")).to_contain_text("x = 1")
    lab_stub.queue(
        Reply(PLAN, tool_calls=[ToolCallSpec("insert_cell", {"index": 1, "source": "added = 1"})]),
        Reply(tool_calls=[ToolCallSpec("run_cell", {"index": 1})]),
        Reply("This reply is never asked for."),
    )
    asked = len(lab_stub.chat_requests)
    _agent_mode(page)
    ui.ask(page, "Add a cell and run it")
    expect(_card(page, 0).locator(".mm-Approval-approve")).to_be_visible()
    # close the task's notebook, discarding its unsaved change (the inserted cell)
    page.evaluate("() => { window.jupyterapp.commands.execute('application:close'); }")
    page.get_by_role("button", name="Discard").click()
    expect(_note(page)).to_contain_text("notebook of this task was closed")
    ui.wait_done(page)
    assert len(lab_stub.chat_requests) - asked == 2
    assert ui.cell_counts(page) == {"other.ipynb": 1}
    expect(page.locator(".jp-NotebookPanel:visible")).not_to_contain_text("added = 1")
    for name, content in (("closed.ipynb", START), ("other.ipynb", other)):
        saved = api.get(f"api/contents/{name}").json()["content"]
        assert [c["source"] for c in saved["cells"]] == [c["source"] for c in content["cells"]]


# ------------------------------------------------------------ Stop, and interrupting a run


@pytest.mark.parametrize("interrupt", [False, True], ids=["left-running", "interrupted"])
def test_stop_ends_the_task_and_interrupts_the_cell_only_when_asked(
    page: Page,
    lab: LabServer,
    api: httpx.Client,
    lab_stub: StubServer,
    tmp_path: Path,
    interrupt: bool,
) -> None:
    flag = tmp_path / "go"
    ui.open_notebook(
        page, lab, api, "stop.ipynb", python_notebook(code_cell(code_waiting_for(flag), "slow"))
    )
    ui.open_sidebar(page)
    lab_stub.queue(
        Reply(PLAN, tool_calls=[ToolCallSpec("run_cell", {"index": 0})]),
        Reply("This reply is never asked for."),
    )
    asked = len(lab_stub.chat_requests)
    _agent_mode(page)
    ui.ask(page, "Run the slow cell")
    _card(page, 0).locator(".mm-Approval-approve").click()
    prompt = ui.cells(page).nth(0).locator(".jp-InputPrompt")
    expect(prompt).to_contain_text("[*]")
    answer = ui.last_answer(page)
    offer = answer.locator(".mm-Interrupt")
    expect(offer).to_be_hidden()  # offered only once the task has stopped
    page.locator(f"{SIDEBAR} .mm-Stop").click()
    expect(_note(page)).to_have_text("Stopped.")
    ui.wait_done(page)  # the task ended at once, the cell still runs
    expect(offer).to_have_text("Interrupt the running cell")
    expect(prompt).to_contain_text("[*]")
    output = ui.cells(page).nth(0).locator(".jp-OutputArea")
    if interrupt:
        offer.click()
        expect(output).to_contain_text("KeyboardInterrupt")
    else:
        flag.touch()
        expect(output).to_contain_text("user cell done")
        expect(output).not_to_contain_text("KeyboardInterrupt")
    expect(prompt).to_contain_text("[1]")
    expect(offer).to_be_hidden()
    assert len(lab_stub.chat_requests) - asked == 1


# ------------------------------------------------------------------------------ Notebook 7


@pytest.mark.console_errors_expected  # Notebook 7.6 logs two errors of its own at start
def test_the_scripted_task_runs_in_notebook_7(
    page: Page, lab: LabServer, api: httpx.Client, lab_stub: StubServer
) -> None:
    """The same labextension in Notebook 7: the sidebar opens in its right side panel."""
    ours: list[str] = []
    page.on("pageerror", lambda e: ours.append(str(e)) if "mistral" in (e.stack or "") else None)
    name = "nb7-agent.ipynb"
    response = api.put(
        f"api/contents/{name}", json={"type": "notebook", "format": "json", "content": START}
    )
    assert response.status_code in (200, 201), response.text
    page.goto(lab.url(f"notebooks/{name}"))
    expect(ui.cells(page)).to_have_count(1)
    expect(page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']")).to_have_count(1)
    page.wait_for_function("() => window.jupyterapp !== undefined")
    page.evaluate(f"() => window.jupyterapp.shell.activateById('{SIDEBAR[1:]}')")
    expect(page.locator(SIDEBAR)).to_be_visible()
    expect(page.locator(f"{SIDEBAR} .mm-Model")).not_to_be_empty()
    _run_first_cell(page, 1)
    before = _notebook_json(page)
    lab_stub.queue(*SCRIPTED_TASK)
    asked = len(lab_stub.chat_requests)
    _agent_mode(page)
    ui.ask(page, "Compute y as x divided by something")
    answer = ui.last_answer(page)
    expect(ui.cells(page)).to_have_count(2)
    _card(page, 0).locator(".mm-Approval-approve").click()
    expect(_card(page, 1).locator(".mm-Diff-del")).to_have_text("- y = x / 0\n")
    _card(page, 1).locator(".mm-Approval-approve").click()
    _card(page, 2).locator(".mm-Approval-approve").click()
    expect(answer).to_contain_text("y is 0.5")
    ui.wait_done(page)
    expect(ui.cells(page).nth(1).locator(".jp-OutputArea")).to_contain_text("0.5")
    assert len(lab_stub.chat_requests) - asked == 5
    assert "ZeroDivisionError" in _tool_messages(lab_stub)[1]
    assert _notebook_json(page)["cells"][1]["metadata"]["mistral"]["task"]
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "agent-notebook7.png"))
    answer.locator(".mm-Undo").click()
    expect(answer.locator(".mm-Undo")).to_have_text("Agent changes undone")
    assert _notebook_json(page) == before
    assert ours == []


# ------------------------------------------------------------------------- a page reload


def test_the_task_and_its_undo_survive_a_page_reload(
    page: Page, lab: LabServer, api: httpx.Client, lab_stub: StubServer
) -> None:
    ui.open_notebook(page, lab, api, "reload.ipynb", START)
    ui.open_sidebar(page)
    before = _notebook_json(page)["cells"]
    lab_stub.queue(
        Reply(PLAN, tool_calls=[ToolCallSpec("insert_cell", {"index": 1, "source": "y = 2"})]),
        Reply(tool_calls=[ToolCallSpec("edit_cell", {"index": 0, "source": "x = 5\nx"})]),
        Reply("Done: x is 5 and y is 2."),
    )
    _agent_mode(page)
    ui.ask(page, "Set x to 5 and add y")
    _card(page, 0).locator(".mm-Approval-approve").click()
    expect(ui.last_answer(page)).to_contain_text("Done: x is 5")
    ui.wait_done(page)
    # saved: the reloaded page opens the notebook with the agent's changes in it
    answer = _save_and_reload(page, cells=2)
    expect(answer).to_contain_text("Done: x is 5")  # the transcript, its tool lines
    expect(answer.locator(".mm-Tool")).to_have_count(2)
    expect(answer.locator(".mm-AgentBar-status")).to_contain_text(f"Step 2 of at most {MAX_STEPS}")
    expect(ui.cells(page).nth(0)).to_have_class(lambda_class("mm-AgentCell"))  # badge kept
    answer.locator(".mm-Undo").click()
    expect(answer.locator(".mm-Undo")).to_have_text("Agent changes undone")
    assert _notebook_json(page)["cells"] == before
    expect(ui.cells(page).nth(0)).not_to_have_class(lambda_class("mm-AgentCell"))


def test_a_reload_while_a_card_waits_stops_the_task_at_that_step(
    page: Page, lab: LabServer, api: httpx.Client, lab_stub: StubServer
) -> None:
    """The page drives the task: a reload while a run waits for its approval ends it. The
    restored transcript says so in one line, has no live card, keeps the totals and the
    Undo of the steps done before, and the sidebar takes a new task."""
    ui.open_notebook(page, lab, api, "reload-card.ipynb", START)
    ui.open_sidebar(page)
    before = _notebook_json(page)["cells"]
    lab_stub.queue(
        Reply(PLAN, tool_calls=[ToolCallSpec("insert_cell", {"index": 1, "source": "y = 2"})]),
        Reply(tool_calls=[ToolCallSpec("edit_cell", {"index": 0, "source": "x = 5\nx"})]),
        Reply(tool_calls=[ToolCallSpec("run_cell", {"index": 1})]),
    )
    asked = len(lab_stub.chat_requests)
    _agent_mode(page)
    ui.ask(page, "Set x to 5, add y and run it")
    _card(page, 0).locator(".mm-Approval-approve").click()
    expect(_card(page, 1).locator(".mm-Approval-approve")).to_be_visible()  # Run cell 1?
    answer = _save_and_reload(page, cells=2)
    expect(answer).to_contain_text("Add a cell computing")  # the plan
    # the server ended the task when the page left (its exchange is in the history) and
    # asked the model nothing more
    expect(_note(page)).to_have_text(
        "Stopped: the page was reloaded while this step (Run cell 1) waited for your "
        "approval; nothing of it was run."
    )
    assert len(lab_stub.chat_requests) - asked == 3
    expect(answer.locator(".mm-Tool")).to_have_count(2)  # the steps done before
    expect(answer.locator(".mm-AgentBar-status")).to_contain_text(f"of at most {MAX_STEPS}")
    expect(page.locator(f"{SIDEBAR} .mm-Approval-buttons button")).to_have_count(0)
    expect(page.locator(f"{SIDEBAR} .mm-Stop")).to_be_hidden()  # not "running"
    expect(ui.cells(page).nth(1).locator(".jp-InputPrompt")).to_have_text("[ ]:")  # not run
    answer.locator(".mm-Undo").click()
    expect(answer.locator(".mm-Undo")).to_have_text("Agent changes undone")
    assert _notebook_json(page)["cells"] == before

    _a_new_task_runs(page, lab_stub)  # the sidebar is ready for a new task


def test_a_reload_while_the_approved_cell_runs_says_it_goes_on_in_the_kernel(
    page: Page, lab: LabServer, api: httpx.Client, lab_stub: StubServer, tmp_path: Path
) -> None:
    """A reload does not interrupt the kernel: the cell the task ran goes on, but the task
    (the page drives it) ends without its result. The restored transcript says which cell
    and that; Undo of the steps before works; the sidebar takes a new task."""
    flag = tmp_path / "go"
    slow = code_waiting_for(flag) + "\nfinished = 'to the end'"
    notebook = python_notebook(
        code_cell("x = 1\nx", "first"), code_cell(slow, "slow"), code_cell("finished", "end")
    )
    ui.open_notebook(page, lab, api, "reload-run.ipynb", notebook)
    ui.open_sidebar(page)
    before = _notebook_json(page)["cells"]
    lab_stub.queue(
        Reply(PLAN, tool_calls=[ToolCallSpec("insert_cell", {"index": 3, "source": "y = 2"})]),
        Reply(tool_calls=[ToolCallSpec("edit_cell", {"index": 0, "source": "x = 5\nx"})]),
        Reply(tool_calls=[ToolCallSpec("run_cell", {"index": 1})]),
    )
    asked = len(lab_stub.chat_requests)
    _agent_mode(page)
    ui.ask(page, "Set x to 5, add y and run the slow cell")
    _card(page, 0).locator(".mm-Approval-approve").click()
    _card(page, 1).locator(".mm-Approval-approve").click()  # Run cell 1
    expect(ui.cells(page).nth(1).locator(".jp-InputPrompt")).to_contain_text("[*]")
    answer = _save_and_reload(page, cells=4)
    expect(answer).to_contain_text("Add a cell computing")  # the plan
    expect(_note(page)).to_have_text(
        "Stopped: the page was reloaded while cell 1 ran; it goes on running in the kernel, "
        "but the task did not see its result."
    )
    assert len(lab_stub.chat_requests) - asked == 3  # the run's result never went back
    expect(answer.locator(".mm-Tool")).to_have_count(2)  # the steps done before
    expect(page.locator(f"{SIDEBAR} .mm-Approval-buttons button")).to_have_count(0)
    expect(page.locator(f"{SIDEBAR} .mm-Stop")).to_be_hidden()  # not "running"
    answer.locator(".mm-Undo").click()
    expect(answer.locator(".mm-Undo")).to_have_text("Agent changes undone")
    assert _notebook_json(page)["cells"] == before

    # the cell went on in the kernel, not interrupted: released, it runs to its end
    flag.touch()
    ui.run_cell(page, 2, "to the end")

    _a_new_task_runs(page, lab_stub)  # the sidebar is ready for a new task


def test_a_reload_while_the_approved_run_waits_for_the_kernel_says_it_was_not_run(
    page: Page, lab: LabServer, api: httpx.Client, lab_stub: StubServer, tmp_path: Path
) -> None:
    flag = tmp_path / "go"
    notebook = python_notebook(
        code_cell(code_waiting_for(flag), "slow"), code_cell("z = 3\nz", "z")
    )
    ui.open_notebook(page, lab, api, "reload-kernel.ipynb", notebook)
    ui.open_sidebar(page)
    before = _notebook_json(page)["cells"]
    ui.run_cell(page, 0)  # the user's long cell: the kernel is busy until the flag exists
    expect(page.locator(".jp-StatusBar-Widget:has-text('| Busy')").first).to_be_visible()
    lab_stub.queue(
        Reply(PLAN, tool_calls=[ToolCallSpec("insert_cell", {"index": 2, "source": "y = 2"})]),
        Reply(tool_calls=[ToolCallSpec("run_cell", {"index": 1})]),
    )
    asked = len(lab_stub.chat_requests)
    _agent_mode(page)
    ui.ask(page, "Add y and run the cell computing z")
    _card(page, 0).locator(".mm-Approval-approve").click()  # Run cell 1
    expect(ui.last_answer(page).locator(".mm-AgentBar-note")).to_contain_text(
        "Waiting for the kernel"
    )
    answer = _save_and_reload(page, cells=3)
    expect(_note(page)).to_have_text(
        "Stopped: the page was reloaded while Run cell 1 waited for the kernel; it was not run."
    )
    assert len(lab_stub.chat_requests) - asked == 2
    expect(answer.locator(".mm-Tool")).to_have_count(1)  # the insert
    expect(page.locator(f"{SIDEBAR} .mm-Stop")).to_be_hidden()
    answer.locator(".mm-Undo").click()
    expect(answer.locator(".mm-Undo")).to_have_text("Agent changes undone")
    expect(ui.cells(page)).to_have_count(2)
    # the kernel, once free, never ran the approved cell: the user's run of it is In[2]
    flag.touch()
    ui.run_cell(page, 1, "3")
    expect(ui.cells(page).nth(1).locator(".jp-InputPrompt")).to_contain_text("[2]")
    assert [c["source"] for c in _notebook_json(page)["cells"]] == [c["source"] for c in before]


# ------------------------------------------------- the cost guard's confirmation (confirm_above)


@pytest.fixture(scope="module")
def guarded_lab(
    lab_stub: StubServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LabServer]:
    """A ``jupyter lab`` of its own whose server asks before every request
    (``Mistral.confirm_above = 0``): a setting the server reads at start, so the other tests'
    lab never has it, whatever the order."""
    with running_lab(
        lab_stub,
        tmp_path_factory.mktemp("lab-guarded"),
        log_name="lab-guarded-server.log",
        args=(f"--MistralServer.agent_max_steps={MAX_STEPS}", "--Mistral.confirm_above=0"),
    ) as lab:
        yield lab


@pytest.fixture
def guarded_api(guarded_lab: LabServer) -> Iterator[httpx.Client]:
    """The guarded lab's REST API; each test starts with its history empty and ends with no
    kernel running."""
    headers = {"Authorization": f"token {TOKEN}"}
    with httpx.Client(base_url=guarded_lab.base_url, headers=headers, timeout=30) as client:
        assert client.delete("mistral-magic/history").status_code == 204
        yield client
        for session in client.get("api/sessions").json():
            client.delete(f"api/sessions/{session['id']}")


def _confirmation(page: Page) -> Any:
    return page.locator(f"{SIDEBAR} .mm-Confirm")


def _asks_to_confirm(page: Page) -> Any:
    """The answer's confirmation card, once the question was held back by the guard."""
    answer = ui.last_answer(page)
    expect(_note(page)).to_have_text("Not sent yet: this question needs your confirmation.")
    card = answer.locator(".mm-Confirm")
    expect(card.locator(".mm-Confirm-reason")).to_contain_text("Mistral.confirm_above")
    expect(card.locator(".mm-Confirm-summary")).to_contain_text("mistral-large-2407")
    return card


def test_an_agent_task_above_confirm_above_waits_and_cancel_sends_nothing(
    page: Page, guarded_lab: LabServer, guarded_api: httpx.Client, lab_stub: StubServer
) -> None:
    ui.open_notebook(page, guarded_lab, guarded_api, "guard-cancel.ipynb", START)
    ui.open_sidebar(page)
    before = _notebook_json(page)
    lab_stub.queue(*SCRIPTED_TASK)
    _agent_mode(page)
    ui.ask(page, "Compute y as x divided by something")
    card = _asks_to_confirm(page)
    status = ui.last_answer(page).locator(".mm-AgentBar-status")
    expect(status).to_have_text("Agent task not started: it waits for your confirmation.")
    ui.wait_done(page)  # not streaming, no Stop: the task waits for the user, not the server
    assert lab_stub.chat_requests == []  # the stub received nothing
    expect(ui.cells(page)).to_have_count(1)
    card.locator(".mm-Confirm-cancel").click()
    expect(_note(page)).to_have_text("Not sent.")
    expect(status).to_have_text("Agent task not started: nothing was sent.")
    expect(_confirmation(page)).to_have_count(0)
    ui.wait_done(page)
    assert lab_stub.chat_requests == []
    assert _notebook_json(page) == before
    answer = ui.last_answer(page)
    expect(answer.locator(".mm-Approval")).to_have_count(0)
    expect(answer.locator(".mm-Undo")).to_be_hidden()  # nothing to undo

    # the sidebar is ready: the next question is asked about in turn, and sent on Send
    lab_stub.reset()
    lab_stub.queue(Reply("Nothing to do."))
    _agent_mode(page)
    ui.ask(page, "Anything to do?")
    _asks_to_confirm(page).locator(".mm-Confirm-send").click()
    expect(ui.last_answer(page)).to_contain_text("Nothing to do.")
    ui.wait_done(page)
    assert len(lab_stub.chat_requests) == 1


def test_a_confirmed_agent_task_is_sent_once_and_its_steps_are_not_asked_again(
    page: Page, guarded_lab: LabServer, guarded_api: httpx.Client, lab_stub: StubServer
) -> None:
    """``confirm_above`` is asked once per question (the guard's ``check_cost`` in the chat
    handler); a task's later requests are kept only to ``session_budget``
    (``round_guard``), unset here: the confirmed task runs through its cards as without
    the guard."""
    ui.open_notebook(page, guarded_lab, guarded_api, "guard-send.ipynb", START)
    ui.open_sidebar(page)
    _run_first_cell(page, 1)
    lab_stub.queue(*SCRIPTED_TASK)
    _agent_mode(page)
    ui.ask(page, "Compute y as x divided by something")
    card = _asks_to_confirm(page)
    assert lab_stub.chat_requests == []
    card.locator(".mm-Confirm-send").click()
    answer = ui.last_answer(page)
    expect(answer).to_contain_text("Add a cell computing")
    expect(ui.cells(page)).to_have_count(2)  # the insert, at once (no card), then a run card
    expect(_card(page, 0).locator(".mm-Approval-code")).to_have_text("y = x / 0")
    assert len(lab_stub.chat_requests) == 2
    expect(_confirmation(page)).to_have_count(0)  # the second request was not asked about
    _card(page, 0).locator(".mm-Approval-approve").click()
    expect(_card(page, 1).locator(".mm-Diff-del")).to_have_text("- y = x / 0\n")
    _card(page, 1).locator(".mm-Approval-approve").click()
    _card(page, 2).locator(".mm-Approval-approve").click()
    expect(answer).to_contain_text("y is 0.5")
    ui.wait_done(page)
    expect(ui.cells(page).nth(1).locator(".jp-OutputArea")).to_contain_text("0.5")
    # one request per scripted reply, each later step sent without asking again
    assert len(lab_stub.chat_requests) == len(SCRIPTED_TASK)
    # the question went once: only the first request has no tool result in it
    first_requests = [
        r for r in lab_stub.chat_requests if all(m["role"] != "tool" for m in r.body["messages"])
    ]
    assert first_requests == lab_stub.chat_requests[:1]
    expect(_confirmation(page)).to_have_count(0)
    assert "ZeroDivisionError" in _tool_messages(lab_stub)[1]
    assert "Cell 1 (In[3]) ran." in _tool_messages(lab_stub)[-1]
    expect(answer.locator(".mm-AgentBar-status")).to_contain_text(f"of at most {MAX_STEPS}")
    provenance = _notebook_json(page)["cells"][1]["metadata"]["mistral"]
    assert provenance["body_sha256"] == hashlib.sha256(lab_stub.chat_requests[0].raw).hexdigest()
    answer.locator(".mm-Undo").click()
    expect(answer.locator(".mm-Undo")).to_have_text("Agent changes undone")
    expect(ui.cells(page)).to_have_count(1)
