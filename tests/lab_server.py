"""A real ``jupyter lab`` for browser tests and benchmarks, with the stub as the model.

Isolated from the user's Jupyter: its own config, data, runtime, settings and workspace
directories under ``home``; the news popup is off; the API key and base URL come from the
stub through the environment, as a user would set them.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.stub import StubServer

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "artifacts"  # screenshots and server logs of browser tests and benchmarks
TIMEOUT_MS = 60_000  # the bound of every wait for the page (a setting of each test page)
TOKEN = "browser-test-token"
CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def code_cell(source: str, cell_id: str) -> dict[str, Any]:
    """A code cell as nbformat 4.5 writes it, never run."""
    return {
        "cell_type": "code",
        "id": cell_id,
        "metadata": {},
        "execution_count": None,
        "outputs": [],
        "source": source,
    }


def code_waiting_for(flag: Path) -> str:
    """The source of a cell that runs until ``flag`` exists (at most 120 s): the test
    decides when the kernel stops being busy, with no sleep of its own."""
    return (
        "import os, time\n"
        "for _ in range(2400):\n"
        f"    if os.path.exists({str(flag)!r}):\n"
        "        break\n"
        "    time.sleep(0.05)\n"
        "print('user cell done')"
    )


def python_notebook(*cells: dict[str, Any]) -> dict[str, Any]:
    """A notebook JSON on a Python 3 kernel holding ``cells``."""
    return {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"},
        },
        "cells": list(cells),
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LabServer:
    base_url: str  # http://127.0.0.1:<port>/
    process: subprocess.Popen[bytes]
    log: Path

    def url(self, path: str) -> str:
        joiner = "&" if "?" in path else "?"
        return f"{self.base_url}{path}{joiner}token={TOKEN}"

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def start_lab(
    stub: StubServer,
    home: Path,
    notebooks: dict[str, dict] | None = None,
    *,
    inline: bool = False,
    env: dict[str, str] | None = None,
    args: tuple[str, ...] = (),
) -> LabServer:
    """``inline``: Mistral's inline completion on (off by default here, so that typing in
    the other browser tests sends no completion requests to the stub). ``env``: more
    environment for the server. ``args``: more command-line settings (e.g.
    ``--MistralServer.agent_max_steps=4``)."""
    root = home / "notebooks"
    root.mkdir(parents=True, exist_ok=True)
    for name, notebook in (notebooks or {}).items():
        (root / name).write_text(json.dumps(notebook), encoding="utf-8")
    config_dir = home / "config"
    (config_dir / "labconfig").mkdir(parents=True, exist_ok=True)
    (config_dir / "labconfig" / "page_config.json").write_text(
        json.dumps({"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}})
    )
    completer = home / "settings" / "@jupyterlab" / "completer-extension"
    completer.mkdir(parents=True, exist_ok=True)
    (completer / "inline-completer.jupyterlab-settings").write_text(
        json.dumps({"providers": {"mistral-magic": {"enabled": inline}}})
    )
    extra = env or {}
    env = {
        **os.environ,
        "MISTRAL_API_KEY": stub.api_key or "",
        "MISTRAL_BASE_URL": stub.base_url,
        "MISTRAL_MODEL": "mistral-large-2407",
        "MISTRAL_DIALECT": stub.dialect if stub.dialect == "mistral" else "openai",
        "JUPYTER_CONFIG_DIR": str(config_dir),
        "JUPYTER_DATA_DIR": str(home / "data"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
        "IPYTHONDIR": str(home / "ipython"),
        **extra,
    }
    port = free_port()
    log = home / "lab.log"
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--allow-root",
        "--ip=127.0.0.1",
        f"--port={port}",
        f"--IdentityProvider.token={TOKEN}",
        f"--ServerApp.root_dir={root}",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        # tests reach JupyterLab's commands and documents as window.jupyterapp
        "--LabApp.expose_app_in_browser=True",
        *args,
    ]
    with log.open("wb") as sink:
        process = subprocess.Popen(command, env=env, stdout=sink, stderr=subprocess.STDOUT)
    lab = LabServer(f"http://127.0.0.1:{port}/", process, log)
    try:
        _wait_until_up(lab)
    except BaseException:
        lab.stop()
        raise
    return lab


@contextmanager
def running_lab(
    stub: StubServer,
    home: Path,
    notebooks: dict[str, dict] | None = None,
    *,
    log_name: str,
    **options: Any,
) -> Iterator[LabServer]:
    """:func:`start_lab` for a test fixture: on exit the lab stops, its log is kept as
    ``artifacts/<log_name>``, and the log must not hold the API key."""
    lab = start_lab(stub, home, notebooks, **options)
    try:
        yield lab
    finally:
        lab.stop()
        ARTIFACTS.mkdir(exist_ok=True)
        shutil.copy(lab.log, ARTIFACTS / log_name)
        assert stub.api_key not in lab.log.read_text(errors="replace"), "key in the log"


SIDEBAR = "#mistral-magic-sidebar"


@contextmanager
def sidebar_page(
    stub: StubServer,
    notebook: dict[str, Any],
    *,
    name: str = "bench.ipynb",
    viewport: dict[str, int] | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[tuple[Any, Any]]:
    """For scripts outside pytest (benchmarks, the screenshots): a lab on ``stub`` in a
    throwaway home, ``notebook`` open as ``name`` with its kernel idle and the Mistral sidebar
    open with its model shown. Yields the Playwright page and an ``httpx.Client`` on the
    server's REST API; the browser and the lab are stopped on exit."""
    import httpx
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as home:
        lab = start_lab(stub, Path(home), {name: notebook}, env=env)
        headers = {"Authorization": f"token {TOKEN}"}
        try:
            with (
                httpx.Client(base_url=lab.base_url, headers=headers, timeout=30) as api,
                sync_playwright() as playwright,
            ):
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                try:
                    page = browser.new_page(viewport=viewport or {"width": 1400, "height": 900})
                    page.set_default_timeout(60_000)
                    page.goto(lab.url(f"lab/tree/{name}?reset"))
                    page.locator(".jp-StatusBar-Widget:has-text('| Idle')").first.wait_for()
                    page.wait_for_function("() => window.jupyterapp !== undefined")
                    page.evaluate("() => window.jupyterapp.restored")
                    if not page.locator(SIDEBAR).is_visible():
                        tab = f".jp-SideBar.jp-mod-right li[data-id='{SIDEBAR[1:]}']"
                        page.locator(tab).click()
                    page.wait_for_selector(f"{SIDEBAR} .mm-Model:not(:empty)")
                    yield page, api
                finally:
                    browser.close()
        finally:
            lab.stop()


def _wait_until_up(lab: LabServer, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if lab.process.poll() is not None:
            raise RuntimeError(f"jupyter lab exited early:\n{lab.log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(lab.url("api/status"), timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(
        f"jupyter lab did not start in {timeout:g} s:\n{lab.log.read_text()[-3000:]}"
    )
