"""The browser's side of the sidebar's protocol, played by the server-extension tests: a
notebook the sidebar would send, a tool it would declare, a streamed chat read as it arrives,
a tool result posted back."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from mistral_magic.server.events import decode_events

NOTEBOOK = {
    "cells": [
        {"cell_type": "markdown", "source": "# Sales analysis", "metadata": {}},
        {
            "cell_type": "code",
            "execution_count": 1,
            "source": "import math\nprint('loaded')",
            "outputs": [{"output_type": "stream", "name": "stdout", "text": "loaded\n"}],
            "metadata": {},
        },
        {
            "cell_type": "code",
            "execution_count": 2,
            "source": "total = revenue / 0",
            "outputs": [
                {
                    "output_type": "error",
                    "ename": "ZeroDivisionError",
                    "evalue": "division by zero",
                    "traceback": [
                        "\x1b[0;31m---------\x1b[0m",
                        "\x1b[0;31mZeroDivisionError\x1b[0m: division by zero",
                    ],
                }
            ],
            "metadata": {},
        },
    ]
}


DESCRIBE = {
    "type": "function",
    "function": {
        "name": "describe_variable",
        "description": "Describe one variable of the kernel.",
        "parameters": {
            "type": "object",
            "properties": {"name": {"type": "string"}},
            "required": ["name"],
        },
    },
}


def tool_chat_body(request_id: str, **fields: Any) -> str:
    """A chat request that declares the kernel's ``describe_variable`` tool."""
    payload = {
        "prompt": "How big is sales?",
        "notebook": NOTEBOOK,
        "request_id": request_id,
        "tools": [DESCRIBE],
    }
    payload.update(fields)
    return json.dumps(payload)


class Received:
    """A streaming callback that collects the body and wakes whoever waits for an event."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self._changed = asyncio.Event()

    def __call__(self, chunk: bytes) -> None:
        self.chunks.append(chunk)
        self._changed.set()

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)

    async def wait_for(self, marker: bytes, timeout: float = 5.0) -> None:
        await asyncio.wait_for(self._arrival(marker), timeout)

    async def _arrival(self, marker: bytes) -> None:
        while marker not in self.body:
            self._changed.clear()
            await self._changed.wait()


class StreamedChat:
    """One streamed chat, read as it arrives (the test plays the browser)."""

    def __init__(self, client: Any, base: str, headers: dict[str, str], body: str) -> None:
        self.received = Received()
        self.done = asyncio.ensure_future(
            client.fetch(
                f"{base}mistral-magic/chat",
                method="POST",
                body=body,
                headers=headers,
                streaming_callback=self.received,
                request_timeout=30,
            )
        )

    async def event(self, name: str, number: int = 1) -> dict[str, Any]:
        marker = f"event: {name}\n".encode()
        await self.received.wait_for(marker * 1 if number == 1 else marker, timeout=10)
        while self.received.body.count(marker) < number:
            await self.received.wait_for(b"\n\n", timeout=10)
        found = [d for n, d in decode_events(self.received.body) if n == name]
        return found[number - 1]

    async def events(self) -> list[tuple[str, dict[str, Any]]]:
        await self.done
        return decode_events(self.received.body)


async def post_tool_result(jp_fetch: Any, **fields: Any) -> dict[str, Any]:
    response = await jp_fetch(
        "mistral-magic", "tool_result", method="POST", body=json.dumps(fields)
    )
    return json.loads(response.body)
