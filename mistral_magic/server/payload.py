"""The JSON body of a chat / context request, checked.

Everything from the browser is untrusted input: types are checked, sizes bounded, and a bad
field gives a one-sentence :class:`PayloadError` (sent back as HTTP 400). A long selection is
not an error: only its first ``SELECTION_CHARS`` characters are ever sent to the model, and its
chip says so.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from mistral_magic.api.defaults import CONTEXT_WINDOW
from mistral_magic.context.notebook import SELECTION_CHARS
from mistral_magic.engine.prompts import ASK, KINDS, Kind

MAX_PROMPT_CHARS = 100_000
#: What is kept of a selection before context building (which redacts, then clips it to
#: SELECTION_CHARS): generous, so redaction sees well past the part that is sent.
KEPT_SELECTION_CHARS = 4 * SELECTION_CHARS
SELECTION_CHIP = "selection"
SOURCES = frozenset({"cells", "active", "error", "vars"})
DEFAULT_SOURCES = ("cells", "active", "error", "vars")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
#: Mistral's limit on tools per request (mistral-api.md §7).
MAX_TOOLS = 128
MAX_TOOL_DESCRIPTION_CHARS = 4_000


class PayloadError(ValueError):
    """A request body the server cannot use; ``str()`` says which field and why."""


Mode = Literal["ask", "agent"]
MODES: tuple[Mode, ...] = ("ask", "agent")


@dataclass
class ChatPayload:
    prompt: str
    kind: Kind = ASK  # ask | explain | fix (the engine words explain and fix itself)
    request_id: str | None = None
    notebook: dict[str, Any] = field(default_factory=dict)
    notebook_path: str = ""
    active_cell: int | None = None
    selection: str = ""
    selection_chars: int = 0  # the whole selection's length (the browser may send less)
    error_cell: int | None = None
    sources: tuple[str, ...] = DEFAULT_SOURCES
    variables: list[dict[str, Any]] = field(default_factory=list)
    exclude: frozenset[str] = frozenset()
    model: str | None = None
    temperature: float | None = None
    context_budget: int | None = None
    remember: bool = True
    #: The tools of the notebook's kernel (wire ``tools`` entries, as the kernel's
    #: ``mistral_magic.kernel_entry`` listed them); empty: answer without tools.
    tools: list[dict[str, Any]] = field(default_factory=list)
    #: ``agent``: Mistral carries out the task through the agent's notebook tools (#14).
    mode: Mode = "ask"
    #: The user confirmed this question's cost (Mistral.confirm_above) after a ``confirm``
    #: event; a question past Mistral.session_budget is refused all the same.
    confirmed: bool = False


def _optional_int(body: Mapping[str, Any], name: str, low: int, high: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise PayloadError(f"`{name}` must be a whole number from {low} to {high}.")
    return value


def _string(body: Mapping[str, Any], name: str, limit: int) -> str:
    value = body.get(name, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise PayloadError(f"`{name}` must be a string.")
    if len(value) > limit:
        raise PayloadError(f"`{name}` is longer than {limit:,} characters.")
    return value


def parse_tools(value: Any) -> list[dict[str, Any]]:
    """The kernel's tool definitions, checked: they come through the browser, so each is
    rebuilt from the fields the API knows (name, description, parameters), nothing else."""
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > MAX_TOOLS:
        raise PayloadError(f"`tools` must be a list of at most {MAX_TOOLS} tool definitions.")
    tools: list[dict[str, Any]] = []
    seen: set[str] = set()
    for entry in value:
        function = entry.get("function") if isinstance(entry, Mapping) else None
        if not isinstance(function, Mapping) or entry.get("type", "function") != "function":
            raise PayloadError("Each of `tools` must be {type: function, function: {...}}.")
        name = function.get("name")
        if not isinstance(name, str) or not _TOOL_NAME.match(name) or name in seen:
            raise PayloadError(
                "Each tool needs a distinct name of 1 to 64 letters, digits, '_' or '-'."
            )
        seen.add(name)
        description = function.get("description", "")
        if not isinstance(description, str) or len(description) > MAX_TOOL_DESCRIPTION_CHARS:
            raise PayloadError(
                f"A tool's description must be text of at most "
                f"{MAX_TOOL_DESCRIPTION_CHARS:,} characters."
            )
        parameters = function.get("parameters")
        if not isinstance(parameters, Mapping) or parameters.get("type") != "object":
            raise PayloadError(f"The parameters of tool {name} must be a JSON Schema object.")
        clean: dict[str, Any] = {"name": name, "parameters": dict(parameters)}
        if description:
            clean["description"] = description
        tools.append({"type": "function", "function": clean})
    return tools


def parse_payload(body: Any, *, require_prompt: bool = True) -> ChatPayload:
    if not isinstance(body, Mapping):
        raise PayloadError("The request body must be a JSON object.")
    kind = body.get("kind", ASK)
    if kind not in KINDS:
        raise PayloadError(f"`kind` must be one of {', '.join(KINDS)}.")
    prompt = _string(body, "prompt", MAX_PROMPT_CHARS).strip()
    mode = body.get("mode", "ask")
    if mode not in MODES:
        raise PayloadError(f"`mode` must be one of {', '.join(MODES)}.")
    if mode == "agent" and kind != ASK:
        raise PayloadError("Agent mode takes a task (`kind: ask`), not explain or fix.")
    if require_prompt and mode == "agent" and not prompt:
        raise PayloadError("The task is empty: type what Mistral should do.")
    if require_prompt and kind == ASK and not prompt:
        raise PayloadError("The question is empty: type something to ask.")
    request_id = body.get("request_id")
    if request_id is not None and (
        not isinstance(request_id, str) or not _REQUEST_ID.match(request_id)
    ):
        raise PayloadError("`request_id` must be 1 to 64 letters, digits, '-' or '_'.")
    notebook = body.get("notebook") or {}
    if not isinstance(notebook, Mapping) or not isinstance(notebook.get("cells", []), list):
        raise PayloadError("`notebook` must be a notebook JSON object with a `cells` list.")
    sources = body.get("sources")
    if sources is None:
        sources = DEFAULT_SOURCES
    if not isinstance(sources, list | tuple) or not set(sources) <= SOURCES:
        raise PayloadError(f"`sources` must be a list of {', '.join(sorted(SOURCES))}.")
    variables = body.get("variables") or []
    if not isinstance(variables, list):
        raise PayloadError("`variables` must be a list.")
    exclude = body.get("exclude") or []
    if not isinstance(exclude, list) or not all(isinstance(e, str) for e in exclude):
        raise PayloadError("`exclude` must be a list of chip ids.")
    selection = body.get("selection") or ""
    if not isinstance(selection, str):
        raise PayloadError("`selection` must be a string.")
    selection_chars = max(len(selection), _optional_int(body, "selection_chars", 0, 1 << 40) or 0)
    model = _string(body, "model", 200).strip() or None
    temperature = body.get("temperature")
    if temperature is not None:
        if isinstance(temperature, bool) or not isinstance(temperature, int | float):
            raise PayloadError("`temperature` must be a number from 0 to 1.5.")
        if not 0 <= temperature <= 1.5:
            raise PayloadError("`temperature` must be a number from 0 to 1.5.")
    return ChatPayload(
        prompt=prompt,
        kind=kind,
        request_id=request_id,
        notebook=dict(notebook),
        notebook_path=_string(body, "notebook_path", 4096),
        active_cell=_optional_int(body, "active_cell", 0, 1_000_000),
        selection=selection[:KEPT_SELECTION_CHARS],
        selection_chars=selection_chars,
        error_cell=_optional_int(body, "error_cell", 0, 1_000_000),
        sources=tuple(dict.fromkeys(sources)),
        variables=[v for v in variables if isinstance(v, Mapping)],
        exclude=frozenset(exclude),
        model=model,
        temperature=None if temperature is None else float(temperature),
        context_budget=_optional_int(body, "context_budget", 0, CONTEXT_WINDOW),
        remember=body.get("remember", True) is not False,
        tools=parse_tools(body.get("tools")),
        mode=mode,
        confirmed=body.get("confirmed") is True,
    )
