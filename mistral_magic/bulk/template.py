"""Prompt templates: ``"Classify: {}"`` for a list or Series, ``"{title}: {body}"`` for a
DataFrame. The rules are ``str.format``'s: ``{}`` or ``{column}`` (optionally with a
conversion and format spec, ``{price:.2f}``) are fields; ``{{`` and ``}}`` are literal braces,
which is how to write JSON examples in a template: ``'Reply like {{"label": "spam"}}'``."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from string import Formatter
from typing import Any

ESCAPE_HINT = (
    "Braces that are not fields must be doubled, as in str.format: write {{ and }} for a "
    'literal { and } (for example a JSON example such as {{"label": "spam"}}).'
)


class TemplateError(ValueError):
    """A template that cannot be used with this data; the message says how to fix it."""


@dataclass(frozen=True)
class TemplateField:
    name: str  # "" for {}
    conversion: str | None
    spec: str

    @property
    def source(self) -> str:
        conv = f"!{self.conversion}" if self.conversion else ""
        spec = f":{self.spec}" if self.spec else ""
        return "{" + self.name + conv + spec + "}"


class Template:
    """A parsed template. ``render(values)`` takes a mapping from field name to value (the
    positional field ``{}`` has the name ``""``)."""

    def __init__(self, text: str) -> None:
        if not isinstance(text, str):
            raise TemplateError(f"The template must be a string, not {type(text).__name__}.")
        self.text = text
        try:
            parsed = list(Formatter().parse(text))
        except ValueError as exc:
            raise TemplateError(
                f"The template {_short(text)} is not valid ({exc}). {ESCAPE_HINT}"
            ) from None
        self.parts: list[tuple[str, TemplateField | None]] = []
        for literal, name, spec, conversion in parsed:
            field = None
            if name is not None:
                if conversion not in (None, "s", "r", "a"):
                    raise TemplateError(f"Unknown conversion !{conversion} in {_short(text)}.")
                field = TemplateField(name, conversion, spec or "")
                if "{" in field.spec:
                    raise TemplateError(
                        f"The field {field.source} nests another field in its format spec; "
                        f"only {{}} and {{column}} fields are supported. {ESCAPE_HINT}"
                    )
            self.parts.append((literal, field))

    @property
    def fields(self) -> list[TemplateField]:
        return [f for _, f in self.parts if f is not None]

    @property
    def names(self) -> list[str]:
        """Distinct field names in order of appearance (``""`` for ``{}``)."""
        return list(dict.fromkeys(f.name for f in self.fields))

    @property
    def is_positional(self) -> bool:
        return self.names == [""]

    def check_positional(self, what: str) -> None:
        """For a list or Series: only ``{}`` (or no field at all, see ``append_item``)."""
        named = [f for f in self.fields if f.name != ""]
        if named:
            raise TemplateError(
                f"The template names the field {named[0].source}, but {what} has no columns: "
                f"use {{}} for each item. {ESCAPE_HINT}"
            )
        if not self.fields:
            raise TemplateError(
                f"The template {_short(self.text)} has no {{}} field for the item, so every "
                f"request would be the same. Put {{}} where each item of {what} goes."
            )

    def check_named(self, columns: Sequence[str], what: str) -> None:
        """For a DataFrame (or a list of dicts): every field is a column name."""
        if not self.fields:
            raise TemplateError(
                f"The template {_short(self.text)} names no column, so every request would be "
                f"the same. Name the columns of {what} to use, e.g. "
                '"{title}: {body}".'
            )
        for field in self.fields:
            if field.name == "":
                raise TemplateError(
                    f"{{}} does not say which column of {what} to use: name it, e.g. "
                    f"{{{columns[0] if columns else 'text'}}}. Columns: {_listing(columns)}."
                )
            if field.name not in columns:
                raise TemplateError(
                    f"The template field {field.source} is not a column of {what} (columns: "
                    f"{_listing(columns)}). {ESCAPE_HINT}"
                )

    def render(self, values: Mapping[str, Any]) -> str:
        out: list[str] = []
        for literal, field in self.parts:
            out.append(literal)
            if field is not None:
                out.append(_format(values[field.name], field))
        return "".join(out)


def _format(value: Any, field: TemplateField) -> str:
    if is_missing(value):
        return ""
    converters: dict[str | None, Callable[[Any], Any]] = {
        None: lambda v: v,
        "s": str,
        "r": repr,
        "a": ascii,
    }
    value = converters[field.conversion](value)
    try:
        return format(value, field.spec)
    except (ValueError, TypeError) as exc:
        raise TemplateError(
            f"The value {value!r} cannot be formatted by {field.source} ({exc})."
        ) from None


def is_missing(value: Any) -> bool:
    """None, NaN, or pandas' NA/NaT."""
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    pandas = sys.modules.get("pandas")
    if pandas is not None and (value is pandas.NA or value is pandas.NaT):
        return True
    numpy = sys.modules.get("numpy")
    return bool(numpy is not None and isinstance(value, numpy.floating) and numpy.isnan(value))


def _short(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


def _listing(columns: Sequence[str], limit: int = 12) -> str:
    shown = ", ".join(repr(c) for c in columns[:limit])
    return shown + (f", … ({len(columns)} in all)" if len(columns) > limit else "") or "none"
