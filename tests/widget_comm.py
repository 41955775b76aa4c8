"""Acting as a widget front end over a real kernel's comm messages (for widget tests)."""

from __future__ import annotations

import time
from typing import Any

from tests.kernel import Kernel

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def send_comm(kernel: Kernel, comm_id: str, data: dict[str, Any], timeout: float = 30) -> None:
    """Send a comm message as a front end does, and wait until the kernel has handled it."""
    msg = kernel.client.session.msg("comm_msg", {"comm_id": comm_id, "data": data})
    kernel.client.shell_channel.send(msg)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reply = kernel.client.get_iopub_msg(timeout=timeout)
        if (
            reply["parent_header"].get("msg_id") == msg["header"]["msg_id"]
            and reply["msg_type"] == "status"
            and reply["content"]["execution_state"] == "idle"
        ):
            return
    raise TimeoutError("the kernel did not handle the comm message")


def click_widget(kernel: Kernel, model_id: str) -> None:
    """Click a button the way a front end does (outside any execution)."""
    send_comm(kernel, model_id, {"method": "custom", "content": {"event": "click"}})


def widget_displays(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The display bundles that show a widget."""
    return [
        m["content"]["data"]
        for m in messages
        if m["msg_type"] == "display_data" and WIDGET_VIEW in m["content"]["data"]
    ]


def widget_values(messages: list[dict[str, Any]]) -> list[str]:
    """Every ``value`` a widget model was created with or updated to, in order."""
    values = []
    for m in messages:
        if m["msg_type"] in ("comm_open", "comm_msg"):
            value = m["content"].get("data", {}).get("state", {}).get("value")
            if isinstance(value, str):
                values.append(value)
    return values
