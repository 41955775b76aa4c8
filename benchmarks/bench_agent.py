"""Agent mode's overhead per step, against the stub (issue #14).

    python benchmarks/bench_agent.py [--quick]

A real ``jupyter lab`` with the stub as the model, Debian's Chromium driven by Playwright, a
notebook with a live Python kernel, the sidebar in Agent mode with "run without asking" on.
Each task is scripted as replies that insert a cell, edit it, list the cells and delete it,
then answer: steps that act on the notebook model only, so no kernel time is in them. The
stub stamps when it sent the last byte of a reply and when it had read the next request:
the gap is one agent step as the server and the page add it (reading the call, the
``tool_call`` event, the runner acting on the notebook, the approval switch, ``POST
tool_result``, the result formatted, the next request built and sent), without model time.

Figures are printed, not asserted.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import threading
import time
from collections.abc import Callable
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

NOTEBOOK = python_notebook(code_cell("threshold = 0.5", "data"))


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:7.2f} ms"


def _task(step: int) -> list[Reply]:
    """One scripted agent task: insert a cell, edit it (auto-approved), list the cells,
    delete it (auto-approved), then answer. No step runs code: the gaps hold no kernel time."""
    return [
        Reply(
            "Plan: 1. add 2. edit 3. look 4. clean up.",
            tool_calls=[ToolCallSpec("insert_cell", {"index": 1, "source": f"a = {step}"})],
        ),
        Reply(tool_calls=[ToolCallSpec("edit_cell", {"index": 1, "source": f"a = {step} + 1"})]),
        Reply(tool_calls=[ToolCallSpec("list_cells", {})]),
        Reply(tool_calls=[ToolCallSpec("delete_cell", {"index": 1})]),
        Reply(f"Task {step} done."),
    ]


TOOLS = ("insert_cell", "edit_cell", "list_cells", "delete_cell")


def run(tasks: int) -> None:
    with StubServer() as stub, sidebar_page(stub, NOTEBOOK) as (page, _api):
        page.locator(f"{SIDEBAR} select.mm-Mode").select_option("agent")
        gaps = _measure(page, stub, tasks)
    every = [g for per_tool in gaps.values() for g in per_tool]
    print(
        f"agent step overhead (server + UI; stub: reply sent -> next request read, no model "
        f"or kernel time): median {_ms(statistics.median(every))}, max {_ms(max(every))} "
        f"over {len(every)} steps"
    )
    for name in TOOLS:
        print(f"  {name:<12} median {_ms(statistics.median(gaps[name]))}")


def _held_until(started: threading.Event, replies: list[Reply]) -> Callable[[Any], Reply]:
    """The stub's responder for one task: its replies in order, the first one held until
    ``started`` (before the stub stamps the reply sent: the hold is in no measured gap)."""
    pending = list(replies)

    def respond(body: Any) -> Reply:
        if len(pending) == len(replies) and not started.wait(60):
            raise RuntimeError("the task did not start within 60 s")
        return pending.pop(0)

    return respond


def _measure(page: Any, stub: StubServer, tasks: int) -> dict[str, list[float]]:
    gaps: dict[str, list[float]] = {name: [] for name in TOOLS}
    box = page.locator(f"{SIDEBAR} textarea.mm-Input-text")
    for task in range(tasks + 1):  # task 0 warms up
        before = len(stub.chat_requests)
        started = threading.Event()
        stub.responder = _held_until(started, _task(task))
        box.fill(f"task {task}")
        box.press("Enter")
        # "run without asking" is per task: switched on once the task has started (its line
        # under the answer is there; the start switches it off), while the stub holds the
        # first reply, so no card ever waits for it and no click is inside a measured step
        page.locator(f"{SIDEBAR} .mm-AgentBar").nth(task).wait_for()
        page.locator(f"{SIDEBAR} .mm-AutoApprove-box").check()
        started.set()
        page.locator(f"{SIDEBAR} .mm-Message-assistant").last.get_by_text(
            f"Task {task} done."
        ).wait_for()
        page.wait_for_selector(f"{SIDEBAR} .mm-Stop", state="hidden")
        asked = stub.chat_requests[before:]
        if len(asked) != len(TOOLS) + 1:
            raise RuntimeError(f"expected {len(TOOLS) + 1} requests, the stub saw {len(asked)}")
        if task == 0:
            continue
        for name, (earlier, later) in zip(TOOLS, itertools.pairwise(asked), strict=True):
            gaps[name].append(later.received_at - earlier.answered_at)
    return gaps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few runs (CI smoke)")
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        print(f"agent steps: skipped, no Chromium at {CHROMIUM}")
        return
    started = time.perf_counter()
    run(tasks=2 if args.quick else 10)
    print(f"(benchmark took {time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    main()
