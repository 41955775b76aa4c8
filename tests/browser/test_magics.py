"""``%%mistral`` in a real JupyterLab (Debian's Chromium through Playwright), the stub as the
model: a reply carrying live HTML must show as text and run nothing.

JupyterLab renders a kernel's own Markdown outputs as trusted (unsanitized), so a reply with
``<img src=x onerror=…>`` would run script in the page with the user's session, no click
needed; here the script tries to write a file through Jupyter's contents API.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.lab_server import ARTIFACTS, TIMEOUT_MS, TOKEN, running_lab
from tests.stub import Reply, StubServer

pytestmark = pytest.mark.timeout(300)

# What a hostile reply does once it runs in the page: write PWNED.txt through the contents
# API with the page's own session (its XSRF cookie), and mark the page.
ATTACK = (
    "document.title='PWNED';"
    "fetch('/api/contents/PWNED.txt',{method:'PUT',headers:{'Content-Type':'application/json',"
    "'X-XSRFToken':(document.cookie.match(/_xsrf=([^;]+)/)||[])[1]},"
    "body:JSON.stringify({type:'file',format:'text',content:'pwned'})})"
)
HOSTILE = (
    f'Here is your chart. <img src=x onerror="{ATTACK}">\n\n'
    f"<script>{ATTACK}</script>\n\n"
    "| region | total |\n|---|---|\n| north | <b>120</b> |\n\n"
    "Done."
)


def _cell(source: str) -> dict:
    return {
        "cell_type": "code",
        "metadata": {},
        "execution_count": None,
        "outputs": [],
        "source": source,
    }


NOTEBOOK = {
    "nbformat": 4,
    "nbformat_minor": 4,
    "metadata": {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
    },
    "cells": [
        _cell("%load_ext mistral_magic"),
        _cell("%%mistral --no-context\nMake me a chart of the totals"),
        _cell("%%mistral --no-context --no-insert\nHow do I compare two columns?"),
    ],
}


@pytest.fixture(scope="module")
def lab(lab_stub: StubServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("magic-lab")
    with running_lab(lab_stub, home, {"magic.ipynb": NOTEBOOK}, log_name="lab-magics.log") as lab:
        yield lab.base_url


@pytest.fixture(scope="module")
def page(lab: str, browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1300, "height": 1000})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.goto(f"{lab}lab/tree/magic.ipynb?token={TOKEN}")
    expect(page.locator(".jp-Notebook .jp-Cell")).to_have_count(len(NOTEBOOK["cells"]))
    expect(page.locator(".jp-StatusBar-Widget:has-text('| Idle')").first).to_be_visible()
    try:
        yield page
    finally:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "magic-hostile-reply.png"), full_page=True)
        context.close()


def _run_cell(page: Page, index: int) -> None:
    page.locator(".jp-Notebook .jp-Cell").nth(index).locator(".jp-InputPrompt").click()
    page.keyboard.press("Control+Enter")


def _contents_status(lab: str, name: str) -> int:
    url = f"{lab}api/contents/{name}?content=0&token={TOKEN}"
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_a_reply_with_live_html_shows_it_as_text_and_runs_nothing(
    page: Page, lab: str, lab_stub: StubServer
) -> None:
    puts: list[str] = []
    page.on("request", lambda r: puts.append(r.url) if "PWNED" in r.url else None)
    _run_cell(page, 0)
    lab_stub.queue(Reply(text=HOSTILE))
    lab_stub.token_delay = 0.005
    try:
        _run_cell(page, 1)
        output = page.locator(".jp-Notebook .jp-Cell").nth(1).locator(".jp-OutputArea")
        expect(output).to_contain_text("Done.")
        expect(output).to_contain_text("mistral-large-2407")  # the footer: the reply is over
    finally:
        lab_stub.token_delay = 0
    # the markup is on screen as text, and no element of it exists in the page
    expect(output).to_contain_text('<img src=x onerror="document.title=')
    expect(output).to_contain_text("<script>document.title=")
    assert output.locator("img, script").count() == 0
    expect(output.locator("table td").nth(1)).to_have_text("<b>120</b>")  # the table stays
    # an image that fails now has its error event after the reply's would have had theirs
    page.evaluate(
        "() => new Promise(done => { const probe = new Image(); "
        "probe.onerror = probe.onload = done; probe.src = 'x?probe=' + Date.now(); })"
    )
    assert page.title() != "PWNED"
    assert puts == [] and _contents_status(lab, "PWNED.txt") == 404


ORDINARY = """### Comparing columns

1. Build the mask:

   ```python
   mask = sales["a"] < sales["b"]
   ```

2. Count it with `mask.sum()`; in Java it would be a `List<Boolean>`.

Rows where $a < b$ and **a** is not null:

```python
sales[mask & sales["a"].notna()]
```
"""


def test_an_ordinary_reply_keeps_its_formatting(page: Page, lab_stub: StubServer) -> None:
    lab_stub.queue(Reply(text=ORDINARY))
    _run_cell(page, 2)
    output = page.locator(".jp-Notebook .jp-Cell").nth(2).locator(".jp-OutputArea")
    expect(output).to_contain_text("mistral-large-2407")
    expect(output.locator("h3")).to_contain_text("Comparing columns")
    expect(output.locator("ol > li")).to_have_count(2)
    expect(output.locator("pre code")).to_have_count(2)  # both blocks are code blocks
    expect(output.locator("pre code").first).to_have_text('mask = sales["a"] < sales["b"]')
    expect(output.locator("li code", has_text="List<Boolean>")).to_have_count(1)
    expect(output.locator("strong")).to_have_text("a")
    assert "&lt;" not in output.inner_text() and "&amp;" not in output.inner_text()
    page.screenshot(path=str(ARTIFACTS / "magic-ordinary-reply.png"), full_page=True)
