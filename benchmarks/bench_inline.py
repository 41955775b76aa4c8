"""Inline completion benchmarks: JupyterLab (Debian Chromium via Playwright), a real
``jupyter lab``, the stub as Codestral (fill-in-the-middle).

    python benchmarks/bench_inline.py [--quick]

1. **Keystroke to ghost text, added time**: in the page, a capturing ``keydown`` listener
   stamps the last keystroke; a MutationObserver stamps the frame after the ghost text with
   the expected insertion is in the editor's DOM. From that span the debounce (the
   provider's ``debouncerDelay``, 250 ms) and the stub's own time (request read -> first
   text flushed, stamped by the stub) are taken out: what is left is what JupyterLab's
   inline completer, the provider, the server extension and the page add. Target: under
   30 ms. Its segments are printed too (median of each): the provider's POST and the
   page's first byte of the answer are stamped by wrapping the page's ``fetch``.
2. **Requests per 100 typed characters**: a line of pandas code typed at two steady paces
   (one faster than the debounce, one slower); the completion requests the stub received,
   and how many of them the browser cancelled by typing on (their connection closed).

Figures are printed, not asserted.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.lab_server import (  # noqa: E402
    CHROMIUM,
    CHROMIUM_ARGS,
    LabServer,
    code_cell,
    python_notebook,
    start_lab,
)
from tests.stub import Reply, StubServer  # noqa: E402

DEBOUNCE_MS = 250  # the provider's default debouncerDelay
NOTEBOOK = python_notebook(
    code_cell(
        "import pandas as pd\nsales = pd.DataFrame({'region': ['n'], 'amount': [1]})",
        "load",
    ),
    code_cell("", "work"),
)
LINE = 'top = sales.groupby("region")["amount"].sum().sort_values(ascending=False).head(10)  # top'
WATCH = """(mark) => {
  window.__mmSeen = null;
  const root = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook');
  const observer = new MutationObserver(() => {
    const ghost = root.querySelector('.jp-GhostText');
    if (ghost && ghost.textContent.includes(mark)) {
      observer.disconnect();
      requestAnimationFrame(() => {
        window.__mmSeen = performance.timeOrigin + performance.now();
      });
    }
  });
  observer.observe(root, { subtree: true, childList: true, characterData: true });
}"""
KEY_CLOCK = """() => {
  const now = () => performance.timeOrigin + performance.now();
  document.addEventListener('keydown', () => { window.__mmKey = now(); }, true);
  // Where the time goes: stamp the provider's POST and the first byte of its answer (the
  // page's fetch, wrapped; the body is passed on unchanged).
  const pageFetch = window.fetch;
  window.fetch = async (input, init) => {
    const url = typeof input === 'string' ? input : input.url;
    const method = (init && init.method) || (typeof input === 'string' ? 'GET' : input.method);
    if (!url.includes('mistral-magic/complete') || method !== 'POST') {
      return pageFetch(input, init);
    }
    window.__mmPost = now();
    window.__mmFirstByte = null;
    const response = await pageFetch(input, init);
    const reader = response.body.getReader();
    const body = new ReadableStream({
      async pull(controller) {
        const { value, done } = await reader.read();
        if (done) { controller.close(); return; }
        if (window.__mmFirstByte === null) { window.__mmFirstByte = now(); }
        controller.enqueue(value);
      },
      cancel(reason) { return reader.cancel(reason); }
    });
    return new Response(body, {
      status: response.status, statusText: response.statusText, headers: response.headers
    });
  };
}"""
# The segments of the added time, in order (page and stub clocks: both this machine's).
SEGMENTS = (
    "last key -> provider's POST, less the debounce (JupyterLab's completer, its timer, the "
    "provider)",
    "POST -> the stub has read the request (browser, Jupyter server, extension, client)",
    "the stub's first text flushed -> the page's first byte (the extension's relay)",
    "first byte -> ghost text painted (provider, inline completer, the next frame)",
)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:7.2f} ms"


def _open(page: Any, lab: LabServer) -> Any:
    page.goto(lab.url("lab/tree/bench.ipynb?reset"))
    cells = page.locator(".jp-NotebookPanel:visible .jp-Cell")
    cells.nth(1).wait_for()
    page.locator(".jp-StatusBar-Widget:has-text('| Idle')").first.wait_for()
    page.evaluate(KEY_CLOCK)
    return cells


def _clear(page: Any, cells: Any) -> None:
    cells.nth(1).locator(".cm-content").click()
    page.keyboard.press("Control+a")
    page.keyboard.press("Delete")


def bench_keystroke_to_ghost(page: Any, lab: LabServer, stub: StubServer, runs: int) -> None:
    cells = _open(page, lab)
    samples: list[tuple[float, float, float]] = []
    segments: list[tuple[float, ...]] = []
    for run in range(runs + 2):  # two warm-ups: connections, the scope's first read
        typed = f"x{run} = sales["
        mark = f"'amount']  # r{run}"
        request: list[Any] = []

        def responder(
            body: dict[str, Any], typed: str = typed, mark: str = mark, request: list = request
        ) -> Reply:
            if body["prompt"].endswith(typed):
                request.append(stub.fim_requests[-1])
                return Reply(chunks=[mark])
            return Reply("")

        stub.responder = responder
        _clear(page, cells)
        page.evaluate(WATCH, mark)
        page.keyboard.type(typed, delay=15)
        page.wait_for_function("window.__mmSeen !== null", timeout=60_000)
        seen, key, post, first_byte = page.evaluate(
            "[window.__mmSeen, window.__mmKey, window.__mmPost, window.__mmFirstByte]"
        )
        wall = time.time() - time.perf_counter()  # the stub stamps with perf_counter()
        if run < 2 or not request:
            continue
        recorded = request[0]
        own = recorded.events_sent_at[1] - recorded.received_at  # event 0: the role chunk
        span = (seen - key) / 1000
        samples.append((span, own, span - DEBOUNCE_MS / 1000 - own))
        read, flushed = (wall + t for t in (recorded.received_at, recorded.events_sent_at[1]))
        segments.append(
            (
                (post - key) / 1000 - DEBOUNCE_MS / 1000,
                read - post / 1000,
                first_byte / 1000 - flushed,
                (seen - first_byte) / 1000,
            )
        )
    total = statistics.median(t for t, _, _ in samples)
    stub_own = statistics.median(s for _, s, _ in samples)
    added = [a for _, _, a in samples]
    print(
        f"last keystroke -> ghost text painted: median {_ms(total)} "
        f"(the {DEBOUNCE_MS} ms debounce included)"
    )
    print(f"  the stub's own time (request read -> first text flushed): median {_ms(stub_own)}")
    print(
        f"  added by JupyterLab, the provider, the server extension and the page: "
        f"median {_ms(statistics.median(added))}, max {_ms(max(added))} over {len(added)} "
        "(target < 30 ms)"
    )
    for i, title in enumerate(SEGMENTS):
        print(f"    {_ms(statistics.median(seg[i] for seg in segments))}  {title}")


def bench_requests_per_100_chars(page: Any, lab: LabServer, stub: StubServer, chars: int) -> None:
    cells = _open(page, lab)
    text = (LINE * (chars // len(LINE) + 1))[:chars]
    for pace_ms in (120, 320):
        stub.reset()
        stub.responder = lambda body: Reply("  # ok")
        _clear(page, cells)
        before = len(stub.fim_requests)
        page.keyboard.type(text, delay=pace_ms)
        # the last keystroke's request, after the debounce: its answer ends the run
        page.wait_for_function(
            "() => !!document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-GhostText')",
            timeout=60_000,
        )
        sent = stub.fim_requests[before:]
        cancelled = sum(1 for r in sent if r.client_left.is_set())
        per_100 = len(sent) * 100 / len(text)
        print(
            f"typing {len(text)} characters at {pace_ms} ms per key: {len(sent)} requests "
            f"({per_100:.1f} per 100 characters), {cancelled} cancelled by typing on"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few runs (CI smoke)")
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        print(f"inline completion benchmarks: skipped, no Chromium at {CHROMIUM}")
        return
    from playwright.sync_api import sync_playwright

    # The stub's line-up has Codestral (FIM): the server asks by fill-in-the-middle.
    with StubServer() as stub, tempfile.TemporaryDirectory() as home:
        started = time.perf_counter()
        lab = start_lab(stub, Path(home), {"bench.ipynb": NOTEBOOK}, inline=True)
        print(f"jupyter lab started in {time.perf_counter() - started:.1f} s")
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1300, "height": 900})
                page.set_default_timeout(60_000)
                bench_keystroke_to_ghost(page, lab, stub, 3 if args.quick else 20)
                bench_requests_per_100_chars(page, lab, stub, 40 if args.quick else 100)
                browser.close()
        finally:
            lab.stop()


if __name__ == "__main__":
    main()
