"""The earlier turns of one conversation, shared by the faces of a session (the magics and
the chat panel, whose replies finish on a background thread: every change is locked)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from ..context.budget import count_request_tokens


@dataclass(frozen=True)
class Turn:
    user: str
    assistant: str


@dataclass
class Conversation:
    """Earlier turns of one conversation, oldest first. Context is not stored in them: each
    request gets fresh context, so the notebook's current state is what the model sees."""

    turns: list[Turn] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def reset(self) -> None:
        with self._lock:
            self.turns.clear()

    def add(self, user: str, assistant: str) -> None:
        with self._lock:
            self.turns.append(Turn(user, assistant))

    def snapshot(self) -> list[Turn]:
        with self._lock:
            return list(self.turns)

    def messages(self, budget: int, model: str) -> list[dict[str, Any]]:
        """The newest turns that fit ``budget`` tokens, as user/assistant messages."""
        kept: list[dict[str, Any]] = []
        for turn in reversed(self.snapshot()):
            pair = [
                {"role": "user", "content": turn.user},
                {"role": "assistant", "content": turn.assistant},
            ]
            if count_request_tokens(pair + kept, model) > budget:
                break
            kept = pair + kept
        return kept
