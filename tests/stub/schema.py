"""A tiny pydantic-v2 look-alike: checks a JSON body and reports errors the way FastAPI does.

Each checker is ``check(value, loc, errors)`` and appends ``{"type", "loc", "msg", "input"
[, "ctx"]}`` dicts with pydantic's wording. Scalars follow pydantic's lax JSON mode (``"5"`` is
a valid int, ``1.0`` a valid int, ``"true"`` a valid bool). Model checkers report declared
fields first, then unknown keys as ``extra_forbidden`` in input order (pydantic's order).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

Loc = tuple[str | int, ...]
Errors = list[dict[str, Any]]
Checker = Callable[[Any, Loc, Errors], None]

_TRUE = {"1", "on", "t", "true", "y", "yes"}
_FALSE = {"0", "off", "f", "false", "n", "no"}


def error(errors: Errors, type_: str, loc: Loc, msg: str, value: Any, ctx: Any = None) -> None:
    entry: dict[str, Any] = {"type": type_, "loc": ["body", *loc], "msg": msg, "input": value}
    if ctx is not None:
        entry["ctx"] = ctx
    errors.append(entry)


def _fmt(number: float) -> str:
    """Numbers as pydantic-core (Rust) prints them: ``0``, ``1.5``, ``-2``."""
    return str(int(number)) if float(number).is_integer() else str(number)


def _range(
    value: float, loc: Loc, errors: Errors, ge: float | None, le: float | None, raw: Any
) -> None:
    if ge is not None and value < ge:
        msg = f"Input should be greater than or equal to {_fmt(ge)}"
        error(errors, "greater_than_equal", loc, msg, raw, {"ge": ge})
    if le is not None and value > le:
        msg = f"Input should be less than or equal to {_fmt(le)}"
        error(errors, "less_than_equal", loc, msg, raw, {"le": le})


def string(nullable: bool = False) -> Checker:
    def check(value: Any, loc: Loc, errors: Errors) -> None:
        if value is None and nullable:
            return
        if not isinstance(value, str):
            error(errors, "string_type", loc, "Input should be a valid string", value)

    return check


def as_int(value: Any) -> int | None:
    """``value`` as pydantic's lax mode would read an int, or None if it cannot."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


def as_float(value: Any) -> float | None:
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def integer(ge: int | None = None, le: int | None = None, nullable: bool = True) -> Checker:
    def check(value: Any, loc: Loc, errors: Errors) -> None:
        if value is None and nullable:
            return
        number = as_int(value)
        if number is None:
            if isinstance(value, float):
                msg = "Input should be a valid integer, got a number with a fractional part"
                error(errors, "int_from_float", loc, msg, value)
            elif isinstance(value, str):
                msg = "Input should be a valid integer, unable to parse string as an integer"
                error(errors, "int_parsing", loc, msg, value)
            else:
                error(errors, "int_type", loc, "Input should be a valid integer", value)
            return
        _range(number, loc, errors, ge, le, value)

    return check


def number(ge: float | None = None, le: float | None = None, nullable: bool = True) -> Checker:
    def check(value: Any, loc: Loc, errors: Errors) -> None:
        if value is None and nullable:
            return
        parsed = as_float(value)
        if parsed is None:
            if isinstance(value, str):
                msg = "Input should be a valid number, unable to parse string as a number"
                error(errors, "float_parsing", loc, msg, value)
            else:
                error(errors, "float_type", loc, "Input should be a valid number", value)
            return
        _range(parsed, loc, errors, ge, le, value)

    return check


def as_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
        return value.lower() in _TRUE
    return None


def boolean(nullable: bool = False) -> Checker:
    def check(value: Any, loc: Loc, errors: Errors) -> None:
        if value is None and nullable:
            return
        if as_bool(value) is None:
            if isinstance(value, (str, int)) and not isinstance(value, bool):
                msg = "Input should be a valid boolean, unable to interpret input"
                error(errors, "bool_parsing", loc, msg, value)
            else:
                error(errors, "bool_type", loc, "Input should be a valid boolean", value)

    return check


def _expected(options: Sequence[str]) -> str:
    quoted = [f"'{o}'" for o in options]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]


def literal(options: Sequence[str], nullable: bool = False, kind: str = "literal_error") -> Checker:
    """A Literal (``literal_error``) or a str Enum (``kind="enum"``)."""

    def check(value: Any, loc: Loc, errors: Errors) -> None:
        if value is None and nullable:
            return
        if value not in options:
            expected = _expected(options)
            error(errors, kind, loc, f"Input should be {expected}", value, {"expected": expected})

    return check


def anything(value: Any, loc: Loc, errors: Errors) -> None:
    return


def mapping(nullable: bool = True) -> Checker:
    def check(value: Any, loc: Loc, errors: Errors) -> None:
        if value is None and nullable:
            return
        if not isinstance(value, dict):
            error(errors, "dict_type", loc, "Input should be a valid dictionary", value)

    return check


def list_of(item: Checker, nullable: bool = True) -> Checker:
    def check(value: Any, loc: Loc, errors: Errors) -> None:
        if value is None and nullable:
            return
        if not isinstance(value, list):
            error(errors, "list_type", loc, "Input should be a valid list", value)
            return
        for index, element in enumerate(value):
            item(element, (*loc, index), errors)

    return check


@dataclass(frozen=True)
class Field:
    check: Checker
    required: bool = False


def model(fields: dict[str, Field], forbid_extra: bool = True, nullable: bool = False) -> Checker:
    """A pydantic model with ``extra="forbid"`` (or ``"ignore"``)."""

    def check(value: Any, loc: Loc, errors: Errors) -> None:
        if value is None and nullable:
            return
        if not isinstance(value, dict):
            msg = "Input should be a valid dictionary or object to extract fields from"
            error(errors, "model_attributes_type", loc, msg, value)
            return
        for name, spec in fields.items():
            if name in value:
                spec.check(value[name], (*loc, name), errors)
            elif spec.required:
                error(errors, "missing", (*loc, name), "Field required", value)
        if forbid_extra:
            for name, extra in value.items():
                if name not in fields:
                    msg = "Extra inputs are not permitted"
                    error(errors, "extra_forbidden", (*loc, name), msg, extra)

    return check


def tagged(
    key: str, members: dict[str, Checker], infer: Callable[[dict[str, Any]], str | None]
) -> Checker:
    """A discriminated union: the tag value becomes a ``loc`` segment, as in pydantic."""

    def check(value: Any, loc: Loc, errors: Errors) -> None:
        if not isinstance(value, dict):
            msg = "Input should be a valid dictionary or object to extract fields from"
            error(errors, "model_attributes_type", loc, msg, value)
            return
        tag = value.get(key, None) if key in value else infer(value)
        if tag is None:
            msg = f"Unable to extract tag using discriminator '{key}'"
            error(errors, "union_tag_not_found", loc, msg, value, {"discriminator": f"'{key}'"})
            return
        if tag not in members:
            expected = ", ".join(f"'{m}'" for m in members)
            msg = (
                f"Input tag '{tag}' found using '{key}' does not match any of the expected "
                f"tags: {expected}"
            )
            ctx = {"discriminator": f"'{key}'", "tag": str(tag), "expected_tags": expected}
            error(errors, "union_tag_invalid", loc, msg, value, ctx)
            return
        members[tag](value, (*loc, str(tag)), errors)

    return check


def str_or_list(item: Checker, list_label: str, nullable: bool) -> Checker:
    """``str | list[item]``: pydantic's smart union reports one error per member."""

    def check(value: Any, loc: Loc, errors: Errors) -> None:
        if isinstance(value, str) or (value is None and nullable):
            return
        member_errors: Errors = []
        list_of(item, nullable=False)(value, (*loc, list_label), member_errors)
        if member_errors:
            error(errors, "string_type", (*loc, "str"), "Input should be a valid string", value)
            errors.extend(member_errors)

    return check
