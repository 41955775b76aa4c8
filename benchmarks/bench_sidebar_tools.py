"""The sidebar's added latency per tool round, against the stub.

    python benchmarks/bench_sidebar_tools.py [--quick]

A real ``jupyter lab`` with the stub as the model, Debian's Chromium driven by Playwright, a
notebook with a live Python kernel. Each question is scripted as ``rounds`` replies that each
call ``list_variables`` (a trivial tool), then a text reply. The stub stamps when it sent the
last byte of a reply and when it had read the next request: the gap is one tool round as the
sidebar adds it — the server reading the tool call, the ``tool_call`` event to the page, the
silent execution in the kernel, ``POST tool_result``, the next request built and sent —
with no model time in it. The server's own view (tool_call sent -> result received, from
the history's tool lines) splits that into the relay (browser + kernel) and the rest.

Figures are printed, not asserted.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
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


def run(questions: int, rounds: int) -> None:
    with StubServer() as stub, sidebar_page(stub, NOTEBOOK) as (page, api):
        box = page.locator(f"{SIDEBAR} textarea.mm-Input-text")
        gaps, relays = _measure(page, box, stub, api, questions, rounds)
    gap, relay = statistics.median(gaps), statistics.median(relays)
    print(
        f"tool round added by the sidebar (stub: reply sent -> next request read): median "
        f"{_ms(gap)}, max {_ms(max(gaps))} over {len(gaps)} rounds"
    )
    print(
        f"  of which the relay (server: tool_call sent -> tool_result received; page + "
        f"kernel): median {_ms(relay)}"
    )
    print(
        f"  the rest (server: reading the call, building and sending the next request) ~ "
        f"{_ms(gap - relay)}"
    )


def _measure(
    page: Any, box: Any, stub: StubServer, api: Any, questions: int, rounds: int
) -> tuple[list[float], list[float]]:
    gaps: list[float] = []
    relays: list[float] = []
    # A first question without tool calls: the kernel imports mistral_magic for the tool
    # definitions (seconds on a loaded machine; a list that comes too late means an answer
    # without tools, and the scripted calls would then go unanswered).
    stub.queue(Reply("Warm."))
    box.fill("warm up")
    box.press("Enter")
    page.locator(f"{SIDEBAR} .mm-Message-assistant").last.get_by_text("Warm.").wait_for()
    page.wait_for_selector(f"{SIDEBAR} .mm-Stop", state="hidden")
    for question in range(questions + 1):  # question 0 warms up (imports, definitions)
        before = len(stub.chat_requests)
        stub.queue(
            *[Reply(tool_calls=[ToolCallSpec("list_variables", {})]) for _ in range(rounds)],
            Reply(f"Answer {question}."),
        )
        box.fill(f"question {question}")
        box.press("Enter")
        page.locator(f"{SIDEBAR} .mm-Message-assistant").last.get_by_text(
            f"Answer {question}."
        ).wait_for()
        page.wait_for_selector(f"{SIDEBAR} .mm-Stop", state="hidden")
        asked = stub.chat_requests[before:]
        if len(asked) != rounds + 1:
            raise RuntimeError(f"expected {rounds + 1} requests, the stub saw {len(asked)}")
        entries = api.get("mistral-magic/history").json()["entries"]
        if question == 0:
            continue
        for earlier, later in itertools.pairwise(asked):
            gaps.append(later.received_at - earlier.answered_at)
        relays.extend(call["seconds"] for call in entries[-1].get("tools", []))
    return gaps, relays


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few runs (CI smoke)")
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        print(f"sidebar tool rounds: skipped, no Chromium at {CHROMIUM}")
        return
    started = time.perf_counter()
    if args.quick:
        run(questions=2, rounds=2)
    else:
        run(questions=10, rounds=3)
    print(f"(benchmark took {time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    main()
