"""Rows in, results out: the prompt of each row, and the output in the input's shape
(a list for a list, a Series on the same index for a Series or DataFrame).

pandas is never imported here: data can only be a pandas object if the user imported it.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .template import Template, TemplateError, is_missing


@dataclass
class OutputShape:
    """How to give results back: ``kind`` "list" or "series" (with ``index`` and ``name``)."""

    kind: str = "list"
    index: Any = None
    name: Any = None

    def build(self, values: list[Any]) -> Any:
        if self.kind == "series":
            import pandas as pd

            return pd.Series(values, index=self.index, name=self.name, dtype=object)
        return values

    def to_record(self) -> dict[str, Any] | None:
        """A JSON form of the shape, for resuming a batch job in a new process; None when the
        index cannot be written as JSON (results then come back as a list, in order)."""
        if self.kind == "list":
            return {"kind": "list"}
        import pandas as pd

        name = self.name if _jsonable_label(self.name) else None
        index = self.index
        if isinstance(index, pd.RangeIndex):
            return {
                "kind": "series",
                "name": name,
                "range": [index.start, index.stop, index.step],
                "index_name": index.name if _jsonable_label(index.name) else None,
            }
        if isinstance(index, pd.MultiIndex) or not all(_jsonable_label(v) for v in index):
            return None
        return {
            "kind": "series",
            "name": name,
            "labels": [_plain(v) for v in index],
            "index_name": index.name if _jsonable_label(index.name) else None,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any] | None) -> OutputShape:
        if not record or record.get("kind") != "series":
            return cls()
        import pandas as pd

        if "range" in record:
            start, stop, step = record["range"]
            index = pd.RangeIndex(start, stop, step, name=record.get("index_name"))
        else:
            index = pd.Index(record["labels"], name=record.get("index_name"))
        return cls("series", index, record.get("name"))


def _jsonable_label(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool)) or _is_numpy_scalar(value)


def _is_numpy_scalar(value: Any) -> bool:
    numpy = sys.modules.get("numpy")
    return numpy is not None and isinstance(value, (numpy.integer, numpy.floating, numpy.bool_))


def _plain(value: Any) -> Any:
    return value.item() if _is_numpy_scalar(value) else value


@dataclass
class Rows:
    """The prompt per row (None: every field of the row is missing, so nothing is sent)."""

    prompts: list[str | None]
    labels: list[Any]  # index labels (pandas) or positions, for messages
    shape: OutputShape = field(default_factory=OutputShape)

    def __len__(self) -> int:
        return len(self.prompts)


def _pandas() -> Any:
    return sys.modules.get("pandas")


def rows_from(data: Any, template: Template, *, append_item: bool = False) -> Rows:
    """The prompts of ``data`` through ``template``.

    ``append_item``: a template without any field gets the item appended after a blank line
    (the ``%%mistral --map`` form, where the cell is the instruction).
    """
    pd = _pandas()
    if pd is not None and isinstance(data, pd.DataFrame):
        return _from_frame(data, template)
    if pd is not None and isinstance(data, pd.Series):
        items: Sequence[Any] = data.tolist()
        shape = OutputShape("series", data.index, data.name)
        labels = list(data.index)
        what = f"the Series {data.name!r}" if data.name is not None else "the Series"
        if data.name is not None and template.names == [str(data.name)]:
            return _render_each(template, items, labels, shape, key=str(data.name))
    else:
        if isinstance(data, (str, bytes)) or data is None or isinstance(data, Mapping):
            raise TypeError(
                "apply() takes many items (a list, a pandas Series or a DataFrame), not "
                f"{type(data).__name__}. For a single question use %%mistral, or wrap it in a "
                "list."
            )
        if not isinstance(data, Iterable):
            raise TypeError(
                f"apply() takes a list, a pandas Series or a DataFrame, not {type(data).__name__}."
            )
        items = list(data)
        shape = OutputShape()
        labels = list(range(len(items)))
        what = "the list"
        if template.fields and not template.is_positional and items:
            return _from_dicts(items, template, labels, shape)
    if append_item and not template.fields:
        template = Template(template.text.replace("{", "{{").replace("}", "}}") + "\n\n{}")
    template.check_positional(what)
    return _render_each(template, items, labels, shape, key="")


def _render_each(
    template: Template, items: Sequence[Any], labels: list[Any], shape: OutputShape, key: str
) -> Rows:
    prompts = [None if is_missing(item) else template.render({key: item}) for item in items]
    return Rows(prompts, labels, shape)


def _from_dicts(
    items: list[Any], template: Template, labels: list[Any], shape: OutputShape
) -> Rows:
    if not all(isinstance(item, Mapping) for item in items):
        template.check_positional("the list")  # raises: named fields need dict items
    names = template.names
    prompts: list[str | None] = []
    for position, item in enumerate(items):
        missing = [n for n in names if n not in item]
        if missing:
            raise TemplateError(
                f"Item {position} of the list has no key {missing[0]!r}, which the template "
                f"uses (its keys: {', '.join(map(repr, list(item)[:12]))})."
            )
        values = {n: item[n] for n in names}
        prompts.append(None if all(map(is_missing, values.values())) else template.render(values))
    return Rows(prompts, labels, shape)


def _from_frame(frame: Any, template: Template) -> Rows:
    by_name = {str(c): c for c in frame.columns}
    template.check_named(list(by_name), "the DataFrame")
    names = template.names
    columns = [by_name[n] for n in names]
    prompts: list[str | None] = []
    for row in frame[columns].itertuples(index=False, name=None):
        values = dict(zip(names, row, strict=True))
        prompts.append(None if all(map(is_missing, row)) else template.render(values))
    return Rows(prompts, list(frame.index), OutputShape("series", frame.index, None))
