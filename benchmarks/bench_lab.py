"""JupyterLab sidebar benchmarks, against the stub.

    python benchmarks/bench_lab.py [--quick] [--no-browser]

1. **Server extension added latency**: the same small streamed reply asked for directly with
   ``AsyncMistralClient`` and through ``POST /mistral-magic/chat`` of a running
   ``jupyter server`` (same machine, same stub). The difference of the medians is what the
   extension adds per request: auth, payload checks, context packing, history, SSE relay.
   Target: under 5 ms.
2. **First token to visible**: the stub stamps the wall-clock time it flushes the first
   token; in JupyterLab (Debian Chromium via Playwright) a MutationObserver stamps the frame
   after that token is in the sidebar's DOM. Target: under 50 ms.
3. **An oversized request**: a 200 MB POST to ``chat`` (Linux: the server's peak RSS from
   ``/proc``). Target: refused with 413 from its headers, the peak RSS unchanged (it used to
   buffer the body: ~900 MB).

Figures are printed, not asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.lab_server import CHROMIUM, CHROMIUM_ARGS, LabServer, start_lab  # noqa: E402
from tests.stub import Reply, StubServer  # noqa: E402
from tests.stub import transport as stub_transport  # noqa: E402

CHUNKS = ["Hello", " from", " the", " stub."]


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:7.2f} ms"


# ------------------------------------------------------------------ 1. added latency


async def _paired(lab: LabServer, stub: StubServer, runs: int) -> list[tuple[float, float, float]]:
    """(direct, through the server, the handler's own time) per run; direct and served runs
    are interleaved so drift hits both alike."""
    import httpx

    from mistral_magic.api.async_client import AsyncMistralClient

    client = AsyncMistralClient(
        api_key=stub.api_key, base_url=stub.base_url, model="mistral-large-2407", dialect="mistral"
    )
    messages = [{"role": "user", "content": "Hi"}]
    body = json.dumps({"prompt": "Hi", "notebook": {"cells": []}, "remember": False})
    headers = {"Authorization": "token browser-test-token", "Content-Type": "application/json"}
    pairs = []
    async with httpx.AsyncClient(timeout=30) as browser_side:
        try:
            for run in range(runs + 3):
                stub.queue(Reply(chunks=CHUNKS))
                started = time.perf_counter()
                async for _delta in client.stream(messages, max_tokens=64):
                    pass
                direct = time.perf_counter() - started

                stub.queue(Reply(chunks=CHUNKS))
                started = time.perf_counter()
                async with browser_side.stream(
                    "POST", f"{lab.base_url}mistral-magic/chat", content=body, headers=headers
                ) as response:
                    async for line in response.aiter_lines():
                        if line.startswith("data:") and '"server_ms"' in line:
                            own = json.loads(line[5:])["server_ms"] / 1000
                            break
                served = time.perf_counter() - started
                if run >= 3:  # warm-up: connections, tokenizer, first imports
                    pairs.append((direct, served, own))
        finally:
            await client.aclose()
    return pairs


def bench_added_latency(lab: LabServer, stub: StubServer, runs: int) -> None:
    runs_ = asyncio.run(_paired(lab, stub, runs))
    direct = statistics.median(d for d, _, _ in runs_)
    served = statistics.median(s for _, s, _ in runs_)
    added = statistics.median(s - d for d, s, _ in runs_)
    own = statistics.median(o for _, _, o in runs_)
    print(f"streamed reply, client -> stub directly          {_ms(direct)} (median of {runs})")
    print(f"streamed reply, HTTP -> jupyter server -> stub   {_ms(served)}")
    print(f"  end-to-end difference (extra HTTP hop included) {_ms(added)}")
    print(
        f"server extension added latency (handler's own time) {_ms(own)} (target < 5 ms; "
        "payload checks, context packing, history, SSE relay)"
    )


# ------------------------------------------------------------------ 3. oversized request


def _peak_rss_mb(pid: int) -> float | None:
    """The process's peak resident memory (VmHWM), Linux only."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return None


def bench_big_body(lab: LabServer, size_mb: int) -> None:
    """POST ``size_mb`` MB of JSON to ``chat``, sending until the server answers or closes."""
    before = _peak_rss_mb(lab.process.pid)
    host, port = lab.base_url.split("//")[1].rstrip("/").split(":")
    size = size_mb * 1024 * 1024
    head = (
        f"POST /mistral-magic/chat HTTP/1.1\r\nHost: {host}:{port}\r\n"
        "Authorization: token browser-test-token\r\nContent-Type: application/json\r\n"
        f"Content-Length: {size}\r\n\r\n"
    ).encode()
    chunk = b"x" * (1024 * 1024)
    started = time.perf_counter()
    with socket.create_connection((host, int(port)), timeout=60) as sock:
        sock.sendall(head + b'{"prompt": "')
        sent = 0
        try:
            while sent < size:
                sock.sendall(chunk)
                sent += len(chunk)
        except OSError:
            pass  # the server answered and closed: the rest is never read
        try:
            answer = sock.recv(65536).split(b"\r\n", 1)[0].decode(errors="replace")
        except OSError as exc:
            answer = f"no answer read ({exc})"
    seconds = time.perf_counter() - started
    after = _peak_rss_mb(lab.process.pid)
    growth = f"{after - before:,.0f} MB" if before is not None and after is not None else "n/a"
    print(
        f"{size_mb} MB POST to chat: {answer!r} after {seconds * 1000:,.0f} ms, "
        f"{sent / 1024 / 1024:,.0f} MB sent before the server closed; server peak RSS "
        f"growth {growth} (target: 413, no growth)"
    )


# ------------------------------------------------------------------ 2. first token visible


class FirstTokenClock:
    """Stamps ``time.time()`` when the stub flushes an event holding the marker."""

    def __init__(self) -> None:
        self.marker = b""
        self.stamp: float | None = None
        self._original = stub_transport._Handler._send

    def install(self) -> None:
        clock = self
        original = self._original

        def send(handler: Any, response: Any, *rest: Any) -> None:
            real = handler.wfile

            class Probe:
                pending = False

                def write(self, data: bytes) -> int:
                    if clock.marker and clock.marker in data and clock.stamp is None:
                        self.pending = True
                    return real.write(data)

                def flush(self) -> None:
                    real.flush()
                    if self.pending:
                        clock.stamp = time.time()
                        self.pending = False

            handler.wfile = Probe()
            try:
                original(handler, response, *rest)
            finally:
                handler.wfile = real

        stub_transport._Handler._send = send

    def uninstall(self) -> None:
        stub_transport._Handler._send = self._original


WATCH = """(mark) => {
  window.__mmSeen = null;
  const root = document.querySelector('#mistral-magic-sidebar .mm-Messages');
  const observer = new MutationObserver(() => {
    if (root.textContent.includes(mark)) {
      observer.disconnect();
      requestAnimationFrame(() => {
        window.__mmSeen = performance.timeOrigin + performance.now();
      });
    }
  });
  observer.observe(root, { subtree: true, childList: true, characterData: true });
}"""


def bench_first_token(lab: LabServer, stub: StubServer, runs: int) -> None:
    from playwright.sync_api import sync_playwright

    clock = FirstTokenClock()
    clock.install()
    stub.token_delay = 0.25  # the first token stands alone in time
    samples = []
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.set_default_timeout(60_000)
            page.goto(lab.url("lab"))
            page.locator(".jp-SideBar.jp-mod-right li[data-id='mistral-magic-sidebar']").click()
            page.wait_for_selector("#mistral-magic-sidebar .mm-Model:not(:empty)")
            box = page.locator("#mistral-magic-sidebar textarea.mm-Input-text")
            for run in range(runs + 1):
                mark = f"Zq{run}x"
                clock.marker, clock.stamp = mark.encode(), None
                stub.queue(Reply(chunks=[mark, " and", " the", " rest."]))
                page.evaluate(WATCH, mark)
                box.fill(f"question {run}")
                box.press("Enter")
                page.wait_for_function("window.__mmSeen !== null")
                seen = page.evaluate("window.__mmSeen") / 1000
                page.wait_for_selector("#mistral-magic-sidebar .mm-Stop", state="hidden")
                if run and clock.stamp is not None:  # run 0 warms up
                    samples.append(seen - clock.stamp)
            browser.close()
    finally:
        clock.uninstall()
        stub.token_delay = 0.0
    median = statistics.median(samples)
    print(
        f"first token flushed by the stub -> painted in the sidebar: median {_ms(median)}, "
        f"max {_ms(max(samples))} over {len(samples)} (target < 50 ms)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few runs (CI smoke)")
    parser.add_argument("--no-browser", action="store_true", help="skip the Chromium part")
    args = parser.parse_args()
    runs = 5 if args.quick else 30
    with StubServer() as stub, tempfile.TemporaryDirectory() as home:
        started = time.perf_counter()
        lab = start_lab(stub, Path(home))
        print(f"jupyter lab started in {time.perf_counter() - started:.1f} s")
        try:
            bench_added_latency(lab, stub, runs)
            bench_big_body(lab, 50 if args.quick else 200)
            if args.no_browser:
                pass
            elif not Path(CHROMIUM).exists():
                print(f"first token to visible: skipped, no Chromium at {CHROMIUM}")
            else:
                bench_first_token(lab, stub, 3 if args.quick else 15)
        finally:
            lab.stop()


if __name__ == "__main__":
    main()
