"""Figures (PNG outputs of cells) for the question that names them: sent to a model that can
see as an ``image_url`` chunk, described in words to one that cannot.

A question names a figure by its cell (``In[7]``, ``Out[7]``, ``cell 7``) or by pointing at
it ("the plot above", "this chart"): then the newest cell with a figure. The PNG is
downscaled to :data:`MAX_IMAGE_SIDE` pixels on its longer side and counted with
:func:`image_tokens`. Images never go into the text of the context (no base64 there): only
as chunks of the user message, built by the engine.

**The token estimate** (:func:`image_tokens`): Mistral's vision encoders cut an image into
square patches, one token each, with one more token closing every row of patches
(``[IMG_BREAK]``, ``[IMG_END]`` for the last). With Pixtral-12B's 16-pixel patches a
``w × h`` image costs ``ceil(h/16) × (ceil(w/16) + 1)`` tokens; the newer models merge 2×2
patches of 14 pixels (28 pixels a token) and count about a third of that. The estimate uses
16 pixels, so it errs high: a 1024×768 figure counts 3,120 tokens, a 640×480 one 1,230.

In a kernel, :class:`FigureLog` remembers the figures of the last :data:`FIGURES_KEPT`
cells that showed one (ipykernel does not keep display outputs in IPython's history by
default): a hook of the kernel's display publisher notes each ``image/png`` shown, and the
``post_run_cell`` event files them under the cell that showed them.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import io
import math
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: The longer side of a figure sent to a model, in pixels (Pixtral-12B's largest input).
MAX_IMAGE_SIDE = 1024
#: Pixels per image token on a side, for :func:`image_tokens` (see the module docstring).
PATCH_PIXELS = 16
#: Cells with figures a kernel remembers.
FIGURES_KEPT = 8
#: A figure whose PNG is larger than this (as base64 text) is described, never decoded.
MAX_PNG_CHARS = 16 * 1024 * 1024
#: Characters of a cell's source searched for a title.
_TITLE_SOURCE_CHARS = 20_000

# "the plot above", "this chart", "my figure", "the last graph": a figure the question
# points at without a cell number.
_POINTING = re.compile(
    r"\b(?:the|this|that|my|last|previous|above)\s+(?:last\s+|previous\s+)?"
    r"(?:plot|figure|chart|graph|histogram|image|picture|heatmap|diagram|visuali[sz]ation)s?\b"
    r"|\b(?:plot|figure|chart|graph|histogram|image|heatmap)s?\s+(?:above|before)\b",
    re.IGNORECASE,
)
_TITLE = re.compile(
    r"(?:\b(?:suptitle|set_title|title)\s*\(|\btitle\s*=)\s*[rRuU]?(['\"])((?:(?!\1).){1,200})\1"
)


def image_tokens(width: int, height: int) -> int:
    """The estimated prompt tokens of a ``width × height`` image (see the module docstring)."""
    if width <= 0 or height <= 0:
        return 0
    rows = math.ceil(height / PATCH_PIXELS)
    columns = math.ceil(width / PATCH_PIXELS)
    return rows * (columns + 1)


@dataclass(frozen=True)
class Figure:
    """One PNG output of a cell, ready to send (downscaled) or to describe."""

    label: str  # "Out[7]", "cell 3"
    png: bytes  # downscaled; empty when the image could not be read
    width: int
    height: int
    original_width: int
    original_height: int
    title: str = ""
    text: str = ""  # the output's text/plain, e.g. "<Figure size 640x480 with 1 Axes>"
    problem: str = ""  # why it cannot be sent, when it cannot

    @property
    def sendable(self) -> bool:
        return bool(self.png) and not self.problem

    @property
    def tokens(self) -> int:
        return image_tokens(self.width, self.height) if self.sendable else 0

    def data_uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")

    def chunk(self) -> dict[str, Any]:
        """The user-message chunk carrying the figure (the object form both La Plateforme
        and OpenAI-compatible servers take)."""
        return {"type": "image_url", "image_url": {"url": self.data_uri()}}

    def description(self) -> str:
        """The figure in words, for a model that cannot see it."""
        size = (
            f"{self.original_width}×{self.original_height} px"
            if self.original_width
            else "of unknown size"
        )
        parts = [f"{self.label} shows a figure (PNG, {size})"]
        if self.title:
            parts.append(f"titled {self.title!r}")
        if self.text and self.text.strip() not in ("", self.label):
            parts.append(f"shown as text as {_clip(self.text.strip(), 200)}")
        return ", ".join(parts) + "."


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def png_of(bundle: Mapping[str, Any]) -> str | bytes | None:
    """The ``image/png`` of a MIME bundle (base64 text, or bytes), if any."""
    value = bundle.get("image/png")
    if isinstance(value, list):  # notebook JSON may split long strings into lines
        value = "".join(v for v in value if isinstance(v, str))
    return value if isinstance(value, (str, bytes)) and value else None


def text_of(bundle: Mapping[str, Any]) -> str:
    value = bundle.get("text/plain")
    if isinstance(value, list):
        value = "".join(v for v in value if isinstance(v, str))
    return value if isinstance(value, str) else ""


def figure_from_png(
    png: str | bytes, label: str, *, title: str = "", text: str = "", max_side: int = MAX_IMAGE_SIDE
) -> Figure:
    """A :class:`Figure` from base64 text (as in MIME bundles) or raw PNG bytes, downscaled
    so that its longer side is at most ``max_side``. An image that cannot be read becomes a
    figure with a ``problem`` (described, never sent)."""
    if isinstance(png, str):
        if len(png) > MAX_PNG_CHARS:
            return Figure(label, b"", 0, 0, 0, 0, title, text, "the image is too large to send")
        try:
            raw = base64.b64decode(png, validate=False)
        except (binascii.Error, ValueError):
            return Figure(label, b"", 0, 0, 0, 0, title, text, "the image is not valid base64")
    else:
        raw = png
    try:
        data, (width, height), (original_width, original_height), png_title = _downscale(
            raw, max_side
        )
    except Exception:  # Pillow refuses it (truncated, a decompression bomb, not a PNG)
        return Figure(label, b"", 0, 0, 0, 0, title, text, "the image could not be read")
    return Figure(
        label,
        data,
        width,
        height,
        original_width,
        original_height,
        title or png_title,
        text,
    )


def _downscale(raw: bytes, max_side: int) -> tuple[bytes, tuple[int, int], tuple[int, int], str]:
    # Pillow comes with mistral-common; imported here, when a figure is first needed.
    from PIL import Image

    with Image.open(io.BytesIO(raw)) as image:
        original = image.size
        title = image.info.get("Title") if isinstance(image.info.get("Title"), str) else ""
        if image.format == "PNG" and max(original) <= max_side:
            return raw, original, original, title or ""
        image.load()
        width, height = original
        scale = max_side / max(width, height)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        if scale < 1:
            # a box reduction by a whole factor first (cheap), then a good filter for the rest
            smaller = image.reduce(max(1, int(1 / scale) // 2 * 2 or 1))
            resized = smaller.resize(size, Image.Resampling.LANCZOS)
        else:  # another format within the bound: only re-encoded
            resized = image.copy()
    out = io.BytesIO()
    resized.save(out, format="PNG", compress_level=3)  # level 3: 1.5x faster than 6, +25% size
    return out.getvalue(), resized.size, original, title or ""


def title_from_source(source: str) -> str:
    """The title a cell's code gives its plot (``plt.title("…")``, ``ax.set_title``,
    ``suptitle``, ``title=`` of pandas' ``plot``), the last one written; "" if none."""
    found = _TITLE.findall(source[:_TITLE_SOURCE_CHARS])
    return found[-1][1] if found else ""


@dataclass(frozen=True)
class FigureQuestion:
    """Which figures a question names: cells by number, and whether it points at one."""

    cells: tuple[int, ...]
    pointing: bool

    @property
    def any(self) -> bool:
        return bool(self.cells) or self.pointing


def figures_named(question: str) -> FigureQuestion:
    from mistral_magic.context.kernel import prompt_references  # the one reader of In[7]

    cells = prompt_references(question).cells
    return FigureQuestion(tuple(cells), bool(_POINTING.search(question)))


# --------------------------------------------------------------------------------------------
# In a kernel


class FigureLog:
    """The figures a kernel's cells showed (the newest :data:`FIGURES_KEPT` cells with one),
    and the ``image/png`` results IPython's history keeps."""

    def __init__(self, shell: Any, keep: int = FIGURES_KEPT) -> None:
        self.shell = shell
        self.keep = keep
        self._lock = threading.Lock()
        self._pending: list[tuple[str, str]] = []  # (png, text) shown by the running cell
        self._cells: OrderedDict[int, list[tuple[str, str]]] = OrderedDict()
        self._installed = False

    # -- hooks --------------------------------------------------------------------------------
    def install(self) -> None:
        """Start noting figures (idempotent). Where the display publisher takes no hooks
        (terminal IPython), IPython's own history of outputs is read instead."""
        if self._installed or self.shell is None:
            return
        publisher = getattr(self.shell, "display_pub", None)
        register = getattr(publisher, "register_hook", None)
        if callable(register):
            register(self._on_message)
        self.shell.events.register("post_run_cell", self._on_cell_done)
        self._installed = True

    def uninstall(self) -> None:
        if not self._installed:
            return
        publisher = getattr(self.shell, "display_pub", None)
        unregister = getattr(publisher, "unregister_hook", None)
        if callable(unregister):
            # (ValueError etc.: it was registered on another thread's hook list)
            with contextlib.suppress(ValueError, KeyError, AttributeError):
                unregister(self._on_message)
        with contextlib.suppress(ValueError):
            self.shell.events.unregister("post_run_cell", self._on_cell_done)
        self._installed = False

    def _on_message(self, message: Any) -> Any:
        """The display publisher's hook: note a PNG on its way out, pass the message on."""
        try:
            if message.get("msg_type") in ("display_data", "update_display_data"):
                data = message.get("content", {}).get("data", {})
                png = png_of(data) if isinstance(data, Mapping) else None
                if isinstance(png, str):
                    with self._lock:
                        self._pending.append((png, text_of(data)))
        except Exception:  # never break the kernel's displays
            pass
        return message

    def _on_cell_done(self, result: Any) -> None:
        count = getattr(result, "execution_count", None)
        with self._lock:
            pending, self._pending = self._pending, []
            if not pending or not isinstance(count, int):
                return
            self._cells[count] = pending
            self._cells.move_to_end(count)
            while len(self._cells) > self.keep:
                self._cells.popitem(last=False)

    # -- reading ------------------------------------------------------------------------------
    def pngs(self, count: int) -> list[tuple[str | bytes, str]]:
        """``(png, text/plain)`` of every figure cell ``count`` showed or returned."""
        with self._lock:
            found: list[tuple[str | bytes, str]] = list(self._cells.get(count, []))
        history = getattr(self.shell, "history_manager", None)
        outputs = getattr(history, "outputs", None)
        recorded = outputs.get(count) if isinstance(outputs, Mapping) else None
        for output in recorded or []:
            bundle = getattr(output, "bundle", None)
            png = png_of(bundle) if isinstance(bundle, Mapping) else None
            if png is not None and all(png != known for known, _ in found):
                found.append((png, text_of(bundle)))
        return found

    def cells_with_figures(self) -> list[int]:
        """Execution counts of the cells with a figure, oldest first."""
        with self._lock:
            counts = set(self._cells)
        history = getattr(self.shell, "history_manager", None)
        outputs = getattr(history, "outputs", None)
        if isinstance(outputs, Mapping):
            for count, recorded in list(outputs.items()):
                if isinstance(count, int) and any(
                    isinstance(getattr(o, "bundle", None), Mapping) and png_of(o.bundle) is not None
                    for o in recorded or []
                ):
                    counts.add(count)
        return sorted(counts)

    def named(
        self,
        question: str,
        sources: Sequence[str] | None = None,
        *,
        running: int | None = None,
        limit: int = 4,
    ) -> list[Figure]:
        """The figures ``question`` names (see :func:`figures_named`), at most ``limit``;
        ``sources`` are the cells' sources by execution count (for titles)."""
        asked = figures_named(question)
        if not asked.any:
            return []
        counts = [c for c in asked.cells if c != running]
        with_figures = [c for c in self.cells_with_figures() if c != running]
        if asked.pointing and with_figures and not set(counts) & set(with_figures):
            counts.append(with_figures[-1])  # "the plot above": the newest cell with one
        figures: list[Figure] = []
        for count in counts:
            source = sources[count] if sources is not None and 0 <= count < len(sources) else ""
            title = title_from_source(source or "")
            pngs = self.pngs(count)
            for index, (png, text) in enumerate(pngs):
                label = f"Out[{count}]" if len(pngs) == 1 else f"Out[{count}] (figure {index + 1})"
                figures.append(figure_from_png(png, label, title=title, text=text))
                if len(figures) >= limit:
                    return figures
        return figures


# --------------------------------------------------------------------------------------------
# In a notebook document (the sidebar)


def notebook_figures(
    cells: Sequence[Any],
    question: str,
    *,
    chosen: Iterable[int] = (),
    limit: int = 4,
) -> list[Figure]:
    """The figures of a notebook's JSON ``cells`` that ``question`` names (by execution
    count, or pointing: the last cell with a figure) or that are among ``chosen`` cell
    indices (the sidebar's chip on the active cell)."""
    asked = figures_named(question)
    chosen = [i for i in chosen if 0 <= i < len(cells)]
    by_count = {
        cell.get("execution_count"): i
        for i, cell in enumerate(cells)
        if isinstance(cell, Mapping) and isinstance(cell.get("execution_count"), int)
    }
    indices = [*chosen, *(by_count[c] for c in asked.cells if c in by_count)]
    with_figures = [i for i, cell in enumerate(cells) if _cell_pngs(cell)]
    if asked.pointing and with_figures and not set(indices) & set(with_figures):
        # "the plot above": the newest figure above the active cell, else the newest one
        above = [i for i in with_figures if chosen and i < chosen[0]]
        indices.append((above or with_figures)[-1])
    figures: list[Figure] = []
    seen: set[int] = set()
    for index in indices:
        if index in seen:
            continue
        seen.add(index)
        cell = cells[index]
        pngs = _cell_pngs(cell)
        count = cell.get("execution_count") if isinstance(cell, Mapping) else None
        name = f"Out[{count}]" if isinstance(count, int) else f"cell {index + 1}"
        source = cell.get("source", "") if isinstance(cell, Mapping) else ""
        source = "".join(source) if isinstance(source, list) else str(source or "")
        title = title_from_source(source)
        for k, (png, text) in enumerate(pngs):
            label = name if len(pngs) == 1 else f"{name} (figure {k + 1})"
            figures.append(figure_from_png(png, label, title=title, text=text))
            if len(figures) >= limit:
                return figures
    return figures


def _cell_pngs(cell: Any) -> list[tuple[str | bytes, str]]:
    if not isinstance(cell, Mapping):
        return []
    found: list[tuple[str | bytes, str]] = []
    for output in cell.get("outputs") or []:
        data = output.get("data") if isinstance(output, Mapping) else None
        png = png_of(data) if isinstance(data, Mapping) else None
        if png is not None:
            found.append((png, text_of(data)))
    return found
