"""Reading the stub's (or a capture's) SSE text back, for tests: strict about the framing."""

from __future__ import annotations

import json
from typing import Any

DONE = "[DONE]"


def frames(text: str) -> list[str]:
    """The ``data:`` payloads of ``text``; raises AssertionError on any other framing."""
    assert text.endswith("\n\n"), "stream must end with a blank line"
    events = text[:-2].split("\n\n")
    payloads = []
    for event in events:
        assert event.startswith("data: "), f"not a data event: {event[:60]!r}"
        assert "\n" not in event, f"multi-line event: {event[:60]!r}"
        payloads.append(event[len("data: ") :])
    return payloads


def chunks(text: str) -> list[dict[str, Any]]:
    """The JSON chunks of a stream that ends with ``data: [DONE]``."""
    payloads = frames(text)
    assert payloads[-1] == DONE, "stream must end with data: [DONE]"
    assert DONE not in payloads[:-1], "[DONE] before the end"
    return [json.loads(p) for p in payloads[:-1]]
