"""Tools the model may call: the registry, ``@tool``, and running one call safely.

    from mistral_magic import tool

    @tool
    def lookup_customer(customer_id: int) -> dict:
        \"\"\"Return the CRM record for a customer.\"\"\"

    @tool(confirm=True)            # asks the user before every call
    def send_email(to: str, body: str) -> str: ...

Then ``%%mistral --tools lookup_customer`` (or ``--tools all``). The read-only notebook tools
(``list_variables``, ``describe_variable``, ``dataframe_head``, ``column_stats``, ``get_cell``,
``search_cells``, ``get_last_error``) live in :mod:`.notebook`; ``--tools notebook``
selects them. Every result is turned into text, redacted and clipped before the model sees it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import json
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar, overload

if TYPE_CHECKING:
    from ..context.redact import Redactor
    from .schema import ArgumentsSpec

#: The built-in notebook tools (:mod:`.notebook`); user tools may not take these names.
BUILTIN_NAMES = (
    "list_variables",
    "describe_variable",
    "dataframe_head",
    "column_stats",
    "get_cell",
    "search_cells",
    "get_last_error",
)
NAME_RULE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
NOTEBOOK = "notebook"  # --tools keyword: the built-in notebook tools
ALL = "all"  # --tools keyword: built-ins and every registered tool
NONE = "none"  # --tools keyword: no tools for this question

F = TypeVar("F", bound=Callable[..., Any])


class ToolSelectionError(ValueError):
    """``--tools`` / ``--tool-choice`` name something that does not exist."""


class ToolArgumentsError(ValueError):
    """The model's arguments do not fit the tool's parameters (text goes back to the model)."""


def check_name(name: str, where: str = "") -> str:
    if not isinstance(name, str) or not NAME_RULE.match(name):
        from .schema import ToolDefinitionError

        raise ToolDefinitionError(
            f"{where}Tool name {name!r} is not allowed: Mistral accepts 1 to 64 characters "
            "from a-z, A-Z, 0-9, '_' and '-'. Pass another one with @tool(name=\"...\")."
        )
    return name


@dataclass
class Tool:
    """One function the model may call."""

    name: str
    description: str
    parameters: dict[str, Any]
    function: Callable[..., Any]
    confirm: bool = False
    builtin: bool = False
    spec: ArgumentsSpec | None = field(default=None, repr=False)

    @classmethod
    def from_function(
        cls,
        function: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        confirm: bool = False,
        builtin: bool = False,
    ) -> Tool:
        from .schema import ToolDefinitionError, arguments_spec, describe_function

        if not callable(function):
            raise ToolDefinitionError(f"@tool needs a function, not {function!r}.")
        tool_name = check_name(name or getattr(function, "__name__", ""))
        spec = arguments_spec(function, tool_name)
        text = description if description is not None else describe_function(function)
        return cls(
            name=tool_name,
            description=text.strip(),
            parameters=spec.schema,
            function=function,
            confirm=confirm,
            builtin=builtin,
            spec=spec,
        )

    def to_wire(self) -> dict[str, Any]:
        function: dict[str, Any] = {"name": self.name, "parameters": self.parameters}
        if self.description:
            function["description"] = self.description
        return {"type": "function", "function": function}

    def call(self, arguments: Mapping[str, Any]) -> Any:
        """Validate ``arguments`` and call the function (its exceptions propagate)."""
        if self.spec is None:
            return self.function(**arguments)
        from pydantic import ValidationError

        try:
            args, kwargs = self.spec.bind(dict(arguments))
        except ValidationError as exc:
            raise ToolArgumentsError(_validation_text(exc)) from None
        if inspect.iscoroutinefunction(self.function):
            return _run_coroutine(self.function(*args, **kwargs))
        return self.function(*args, **kwargs)


def _validation_text(error: Any) -> str:
    problems = []
    for entry in error.errors(include_url=False)[:10]:
        where = ".".join(str(part) for part in entry.get("loc", ())) or "arguments"
        problems.append(f"{where}: {entry.get('msg', 'invalid')}")
    return "; ".join(problems)


def _run_coroutine(coroutine: Any) -> Any:
    """Run an ``async def`` tool to completion, also inside Jupyter's running event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["value"] = asyncio.run(coroutine)
        except BaseException as exc:  # handed back to the calling thread
            outcome["error"] = exc

    thread = threading.Thread(target=work, name="mistral-magic-async-tool")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


class ToolRegistry:
    """User tools by name. Registering a name again replaces the old tool (re-run cells)."""

    def __init__(self) -> None:
        self._tools: dict[str, Tool] = {}
        self._lock = threading.Lock()

    def add(self, new: Tool) -> Tool:
        from .schema import ToolDefinitionError

        if not new.builtin and new.name in BUILTIN_NAMES:
            raise ToolDefinitionError(
                f"{new.name!r} is the name of a built-in notebook tool; give yours another "
                'name with @tool(name="...").'
            )
        if new.name in (NOTEBOOK, ALL, NONE):
            raise ToolDefinitionError(
                f"{new.name!r} is a keyword of --tools; give the tool another name with "
                '@tool(name="...").'
            )
        with self._lock:
            self._tools[new.name] = new
        return new

    def remove(self, name: str) -> None:
        with self._lock:
            self._tools.pop(name, None)

    def get(self, name: str) -> Tool | None:
        with self._lock:
            return self._tools.get(name)

    def all(self) -> list[Tool]:
        with self._lock:
            return list(self._tools.values())

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._tools)

    def clear(self) -> None:
        with self._lock:
            self._tools.clear()


registry = ToolRegistry()


@overload
def tool(function: F, /) -> F: ...


@overload
def tool(
    *, name: str | None = None, description: str | None = None, confirm: bool = False
) -> Callable[[F], F]: ...


def tool(
    function: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    confirm: bool = False,
) -> Any:
    """Register a function as a tool Mistral may call (``%%mistral --tools NAME``).

    The JSON Schema of its parameters comes from the type hints and defaults; its description
    and the parameters' descriptions from the docstring (Google, NumPy or reST style).
    ``confirm=True`` asks the user before every call. The function itself is returned
    unchanged, so it can still be called directly.
    """

    def register(func: F) -> F:
        defined = Tool.from_function(func, name=name, description=description, confirm=confirm)
        registry.add(defined)
        return func

    if function is not None:
        return register(function)  # type: ignore[arg-type]
    return register


# ------------------------------------------------------------------------------ results


def result_text(value: Any, *, max_chars: int, redactor: Redactor | None = None) -> str:
    """What the model reads for a tool's return value: text, cleaned and redacted before it
    is clipped to at most ``max_chars`` (:func:`~mistral_magic.context.fit.fit`)."""
    from ..context.fit import fit

    marker = f"\n[… cut: the result was longer than {max_chars:,} characters]"
    text = fit(_as_text(value, 2 * max_chars, redactor), max_chars, redactor, marker=marker)
    return text or "(no output)"


def _as_text(value: Any, max_chars: int, redactor: Redactor | None = None) -> str:
    """JSON for JSON-like values, the context engine's description for frames and arrays,
    a bounded repr otherwise. About ``max_chars`` characters of work; a longer text comes
    back cut (:func:`~mistral_magic.context.fit.bound`) for ``fit`` to finish."""
    from ..context.fit import bound

    if isinstance(value, str):
        return bound(value, max_chars)
    dump = getattr(value, "model_dump", None)  # pydantic models
    if callable(dump) and not isinstance(value, type):
        with contextlib.suppress(Exception):
            value = dump(mode="json")
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if value is None or isinstance(value, (dict, list, tuple, int, float, bool)):
        try:
            return bound(_bounded_json(value, max_chars), max_chars)
        except (TypeError, ValueError, RecursionError):
            pass
    from ..context.describe import bounded_repr, describe

    if type(value).__module__.split(".")[0] in ("pandas", "polars", "numpy"):
        return describe(value, "result", max_chars=max_chars, redactor=redactor)
    return bounded_repr(value, max_chars, redactor=redactor)


def _bounded_json(value: Any, max_chars: int) -> str:
    encoder = json.JSONEncoder(ensure_ascii=False, default=_json_fallback)
    parts: list[str] = []
    size = 0
    for chunk in encoder.iterencode(value):
        parts.append(chunk)
        size += len(chunk)
        if size > max_chars:
            break
    return "".join(parts)


def _json_fallback(value: Any) -> Any:
    from ..context.describe import bounded_repr

    if isinstance(value, (set, frozenset)):
        return list(value)
    return bounded_repr(value, 2_000)


# ------------------------------------------------------------------------------ selection


@dataclass
class Toolbox:
    """The tools offered for one question, by name, in the order they are listed."""

    tools: dict[str, Tool] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.tools)

    def get(self, name: str) -> Tool | None:
        return self.tools.get(name)

    def names(self) -> list[str]:
        return list(self.tools)

    def to_wire(self) -> list[dict[str, Any]]:
        return [t.to_wire() for t in self.tools.values()]


def split_names(names: str | Iterable[str] | None) -> list[str]:
    if names is None:
        return []
    items = names.split(",") if isinstance(names, str) else list(names)
    return [n.strip() for n in items if n and n.strip()]


def select(
    names: str | Iterable[str] | None,
    builtins: Iterable[Tool],
    user_tools: ToolRegistry | None = None,
) -> Toolbox:
    """Resolve ``--tools`` words: tool names, ``notebook`` (the built-ins), ``all``, ``none``."""
    user_tools = registry if user_tools is None else user_tools
    builtin_by_name = {t.name: t for t in builtins}
    chosen: dict[str, Tool] = {}
    unknown: list[str] = []
    for word in split_names(names):
        if word == NONE:
            continue
        if word in (NOTEBOOK, ALL):
            chosen.update(builtin_by_name)
            if word == ALL:
                chosen.update({t.name: t for t in user_tools.all()})
            continue
        found = builtin_by_name.get(word) or user_tools.get(word)
        if found is None:
            unknown.append(word)
        else:
            chosen[found.name] = found
    if unknown:
        available = [*builtin_by_name, *user_tools.names()]
        listing = ", ".join(available) if available else "none registered"
        raise ToolSelectionError(
            f"Unknown tool(s) {', '.join(unknown)}. Available: {listing}; or '{NOTEBOOK}' "
            f"(the notebook tools), '{ALL}', '{NONE}'. Define your own with "
            "`from mistral_magic import tool` and `@tool`."
        )
    return Toolbox(chosen)


def check_tool_choice(choice: str | None, toolbox: Toolbox) -> str | None:
    """``auto``/``any``/``none``/``required`` or the name of an offered tool."""
    if choice is None:
        return None
    choice = choice.strip()
    if choice in ("auto", "any", "none", "required"):
        return choice
    if not toolbox:
        raise ToolSelectionError(f"--tool-choice {choice} needs tools: add --tools {choice}.")
    if toolbox.get(choice) is None:
        raise ToolSelectionError(
            f"--tool-choice {choice!r} is not one of the tools offered "
            f"({', '.join(toolbox.names())}); use auto, any, none or one of those names."
        )
    return choice
