"""The shared vocabulary of the context engine: one piece of notebook context.

Everything the collectors produce and the packer consumes is a :class:`ContextItem`.
Lower ``priority`` means more important; items are packed in ascending priority.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

#: Item kinds, most important class first.
KIND_NAMED = "named"  # named in the prompt: a variable, or a cell like In[7]
KIND_ERROR = "error"  # the last error, if recent
KIND_DATAFRAME = "dataframe"  # pandas / polars DataFrame or Series
KIND_CELL = "cell"  # a recent cell: source and text output
KIND_VARIABLE = "variable"  # any other user variable

#: Where an item's text comes from: the live kernel (its variables, the cells it ran and the
#: outputs it made) or the notebook document (cells and outputs as last shown in the editor).
ORIGIN_KERNEL = "kernel"
ORIGIN_NOTEBOOK = "notebook"

#: Priority bands: an item's priority is its band plus its rank inside the band.
PRIORITY_BAND = {
    KIND_NAMED: 0,
    KIND_ERROR: 1_000,
    KIND_DATAFRAME: 2_000,
    KIND_CELL: 3_000,
    KIND_VARIABLE: 4_000,
}
BAND_WIDTH = 1_000


def priority_for(kind: str, rank: int = 0) -> int:
    """The priority of the ``rank``-th item (0-based) of a kind."""
    return PRIORITY_BAND[kind] + min(max(rank, 0), BAND_WIDTH - 1)


@dataclass(frozen=True)
class ContextItem:
    kind: str  # "named" | "error" | "dataframe" | "cell" | "variable" (priority classes)
    key: str  # stable id: "var:sales", "cell:7", "error"
    label: str  # short chip label for people: "sales · DataFrame 120,000×8", "In[7]"
    text: str  # exactly what the model sees for this item (already redacted)
    priority: int  # lower = more important; packing order
    origin: str = ORIGIN_KERNEL  # ORIGIN_KERNEL | ORIGIN_NOTEBOOK
    language: str | None = None  # the language of the code in it (its fences), if any


def code_language(items: Sequence[ContextItem]) -> str:
    """The language of the code the context shows (``"python"``, ``"r"``, ``"julia"``…): what
    the prompt builder asks the model to answer in. Python when nothing says otherwise."""
    return next((item.language for item in items if item.language), "python")
