"""A real ipykernel driven over ZMQ, for tests that need what a notebook sees."""

from __future__ import annotations

import os
import queue
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from jupyter_client.manager import KernelManager


@dataclass
class Execution:
    reply: dict[str, Any]
    messages: list[dict[str, Any]] = field(default_factory=list)

    @property
    def status(self) -> str:
        return self.reply["status"]

    @property
    def stdout(self) -> str:
        return self._stream("stdout")

    @property
    def stderr(self) -> str:
        return self._stream("stderr")

    def _stream(self, name: str) -> str:
        return "".join(
            m["content"]["text"]
            for m in self.messages
            if m["msg_type"] == "stream" and m["content"]["name"] == name
        )

    @property
    def markdown(self) -> list[str]:
        """The final Markdown of every display, in order of first appearance."""
        shown: dict[str, str] = {}
        for m in self.messages:
            if m["msg_type"] not in ("display_data", "update_display_data"):
                continue
            data = m["content"].get("data", {})
            if "text/markdown" not in data:
                continue
            key = m["content"].get("transient", {}).get("display_id") or m["header"]["msg_id"]
            shown[key] = data["text/markdown"]
        return list(shown.values())

    @property
    def updates(self) -> int:
        return sum(1 for m in self.messages if m["msg_type"] == "update_display_data")

    @property
    def next_input(self) -> str | None:
        for payload in self.reply.get("payload", []):
            if payload.get("source") == "set_next_input":
                return payload["text"]
        return None

    @property
    def result(self) -> dict[str, Any] | None:
        for m in self.messages:
            if m["msg_type"] == "execute_result":
                return m["content"]["data"]
        return None


class Kernel:
    def __init__(self, env: dict[str, str]) -> None:
        self.manager = KernelManager(kernel_name="python3")
        full_env = {**os.environ, **env}
        self.manager.start_kernel(env=full_env)
        self.client = self.manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=60)

    def execute(self, code: str, timeout: float = 60, on_message: Any = None) -> Execution:
        msg_id = self.client.execute(code)
        execution = Execution(reply={})
        deadline = time.monotonic() + timeout
        idle = False
        while not idle:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no idle status within {timeout} s for {code[:60]!r}")
            try:
                msg = self.client.get_iopub_msg(timeout=remaining)
            except queue.Empty:
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "status":
                idle = msg["content"]["execution_state"] == "idle"
                continue
            execution.messages.append(msg)
            if on_message is not None:
                on_message(msg, self)
        reply = self.client.get_shell_msg(timeout=max(1.0, deadline - time.monotonic()))
        while reply["parent_header"].get("msg_id") != msg_id:
            reply = self.client.get_shell_msg(timeout=max(1.0, deadline - time.monotonic()))
        execution.reply = reply["content"]
        return execution

    def interrupt(self) -> None:
        self.manager.interrupt_kernel()

    def shutdown(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)


def stub_env(stub: Any, **extra: str) -> dict[str, str]:
    """The environment that points a kernel's mistral_magic at ``stub``."""
    return {
        "MISTRAL_API_KEY": stub.api_key,
        "MISTRAL_BASE_URL": stub.base_url,
        "MISTRAL_MODEL": "mistral-large-2407",
        "MISTRAL_DIALECT": "mistral",
        **extra,
    }


@contextmanager
def stub_kernel(stub: Any, setup: str = "", **extra_env: str) -> Iterator[Kernel]:
    """A kernel talking to ``stub``, with ``setup`` run first (it must succeed)."""
    kernel = Kernel(stub_env(stub, **extra_env))
    try:
        if setup:
            result = kernel.execute(setup)
            assert result.status == "ok", result.reply
        yield kernel
    finally:
        kernel.shutdown()
