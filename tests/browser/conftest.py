"""What every browser test module shares: Chromium, the bound on every wait, and two
overrides of pytest-jupyter's autouse fixtures.

The sidebar's fixtures (a lab on the stub, its REST API, a clean state per test, a checked
page) live here too; modules that need another lab (the widgets', the magics', inline
completion's) define their own ``lab``/``page``, which take precedence in that module.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.lab_server import (
    CHROMIUM,
    CHROMIUM_ARGS,
    TIMEOUT_MS,
    TOKEN,
    LabServer,
    running_lab,
)
from tests.stub import StubServer

expect.set_options(timeout=TIMEOUT_MS)


# pytest-jupyter's autouse loop fixture would close the event loop that Playwright's sync API
# runs in the test thread, and its cleanup needs that loop: neither runs for browser tests.
@pytest.fixture(autouse=True)
def jp_asyncio_loop() -> Iterator[None]:
    yield None


@pytest.fixture(autouse=True)
def jp_server_cleanup() -> Iterator[None]:
    yield None


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


# ----------------------------------------------------------------------------- the sidebar's


@pytest.fixture(scope="module")
def lab_stub() -> Iterator[StubServer]:
    with StubServer() as stub:
        yield stub


@pytest.fixture(scope="module")
def lab(lab_stub: StubServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    """A running ``jupyter lab`` whose model is the stub."""
    with running_lab(lab_stub, tmp_path_factory.mktemp("lab"), log_name="lab-server.log") as lab:
        yield lab


@pytest.fixture(scope="module")
def api(lab: LabServer) -> Iterator[httpx.Client]:
    """The Jupyter server's REST API, as the test's own client."""
    headers = {"Authorization": f"token {TOKEN}"}
    with httpx.Client(base_url=lab.base_url, headers=headers, timeout=30) as client:
        yield client


@pytest.fixture
def clean_state(lab_stub: StubServer, api: httpx.Client) -> Iterator[None]:
    """Each test starts from defaults and leaves no kernel running (the sidebar modules use
    it for every test, through their ``pytestmark``)."""
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
