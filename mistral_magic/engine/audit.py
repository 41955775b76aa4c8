"""``%mistral audit``: which cells of the notebook hold AI-written code, where each came from
(model, when, which question, which face) and whether it was edited since it was inserted.

What it reads, best first:

* the notebook's cells: as they are open in JupyterLab / Notebook 7 (the labextension sends
  them before it runs the audit's cell), else the notebook file as last saved. A cell whose
  ``metadata.mistral`` holds a provenance record was inserted by a face; its source is
  compared with the hash of the inserted code (``code_sha256``). An answer's output records
  which code it offered, so a cell inserted without metadata (``set_next_input`` where no
  labextension listens) is found by its hash, or, edited, as the code cell right below the
  answer;
* this session's own answers (:class:`~.provenance.AnswerLog`), with the kernel's history
  when there is no notebook (terminal IPython): the inserted code is looked for among the
  cells run since.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .provenance import METADATA_KEY, code_hash

if TYPE_CHECKING:
    from .provenance import Answer

AS_INSERTED = "as inserted"
EDITED = "edited since insertion"
# The cell below an answer, untagged and not the offered code; only the code's hash is left
# to compare with, so whether it was edited or replaced cannot be told.
DIFFERS = "differs from the code offered above it"
NOT_RUN = "not run yet"
#: A notebook file larger than this is not read for an audit (bytes).
MAX_NOTEBOOK_BYTES = 64 * 1024 * 1024
#: Lines compared when deciding whether a cell is an edited copy of inserted code.
SIMILAR_LINES = 400
SIMILAR_RATIO = 0.5
#: Code of at most this many lines is also compared by characters, and must then be this
#: alike (a stricter bar: unrelated one-liners share many characters).
SIMILAR_CHARS_LINES = 5
SIMILAR_CHARS_RATIO = 0.75


@dataclass(frozen=True)
class Cell:
    """A notebook cell as the audit needs it."""

    position: int  # 1-based, in notebook order
    kind: str
    execution_count: int | None
    source: str
    tag: Mapping[str, Any] | None  # metadata.mistral: the provenance of inserted code
    offers: tuple[Mapping[str, Any], ...] = ()  # provenance of answers in its outputs


@dataclass(frozen=True)
class Row:
    """One cell holding AI-written code."""

    position: int | None
    execution_count: int | None
    status: str
    provenance: Mapping[str, Any]

    @property
    def where(self) -> str:
        parts = []
        if self.position is not None:
            parts.append(f"cell {self.position}")
        if self.execution_count is not None:
            parts.append(f"In[{self.execution_count}]")
        return " · ".join(parts) or "—"

    @property
    def when(self) -> str:
        stamp = self.provenance.get("inserted") or self.provenance.get("timestamp") or ""
        return local_time(str(stamp))


@dataclass
class Audit:
    rows: list[Row] = field(default_factory=list)
    source: str = ""  # what was read: the open notebook, a saved file, the history
    notes: list[str] = field(default_factory=list)

    @property
    def edited(self) -> int:
        return sum(1 for row in self.rows if row.status == EDITED)


def local_time(stamp: str) -> str:
    """``2026-08-21 14:03`` in local time, from an ISO 8601 timestamp."""
    try:
        when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return stamp
    return when.astimezone().strftime("%Y-%m-%d %H:%M")


def _text(source: Any) -> str:
    if isinstance(source, list):
        return "".join(s for s in source if isinstance(s, str))
    return source if isinstance(source, str) else ""


def _record(value: Any) -> Mapping[str, Any] | None:
    return value if isinstance(value, Mapping) and value.get("version") else None


def cells_of(notebook: Mapping[str, Any]) -> list[Cell]:
    """The cells of notebook JSON (a saved ``.ipynb``, or what the labextension sends)."""
    cells = []
    for position, raw in enumerate(notebook.get("cells") or [], 1):
        if not isinstance(raw, Mapping):
            continue
        metadata = raw.get("metadata") if isinstance(raw.get("metadata"), Mapping) else {}
        offers = []
        for output in raw.get("outputs") or []:
            meta = output.get("metadata") if isinstance(output, Mapping) else None
            found = _record(meta.get(METADATA_KEY)) if isinstance(meta, Mapping) else None
            if found is not None:
                offers.append(found)
        count = raw.get("execution_count")
        cells.append(
            Cell(
                position=position,
                kind=str(raw.get("cell_type", "")),
                execution_count=count if isinstance(count, int) else None,
                source=_text(raw.get("source")),
                tag=_record(metadata.get(METADATA_KEY)),
                offers=tuple(offers),
            )
        )
    return cells


def read_notebook(path: Path) -> tuple[list[Cell] | None, str]:
    """The cells of the notebook file at ``path`` and a line saying what was read (None
    and why, when it cannot be read)."""
    try:
        size = path.stat().st_size
        if size > MAX_NOTEBOOK_BYTES:
            return None, f"{path.name} is larger than {MAX_NOTEBOOK_BYTES // 2**20} MB"
        notebook = json.loads(path.read_text(encoding="utf-8"))
        saved = datetime.fromtimestamp(path.stat().st_mtime).strftime("%Y-%m-%d %H:%M")
    except (OSError, ValueError) as error:
        return None, f"{path.name} could not be read ({type(error).__name__})"
    if not isinstance(notebook, Mapping):
        return None, f"{path.name} is not a notebook"
    return cells_of(notebook), (
        f"the notebook file {path.name} as saved at {saved} (changes since are not seen)"
    )


def _similar(a: str, b: str) -> bool:
    """Whether ``b`` may be ``a`` edited: by lines, or for short code (where one changed
    character changes the only line) by characters."""
    left, right = a.splitlines()[:SIMILAR_LINES], b.splitlines()[:SIMILAR_LINES]
    if not left or not right:
        return False
    matcher = difflib.SequenceMatcher(None, left, right, autojunk=False)
    if matcher.ratio() >= SIMILAR_RATIO:
        return True
    if max(len(left), len(right)) > SIMILAR_CHARS_LINES:
        return False
    chars = difflib.SequenceMatcher(None, "\n".join(left), "\n".join(right), autojunk=False)
    return chars.ratio() >= SIMILAR_CHARS_RATIO


@dataclass(frozen=True)
class _Offer:
    record: Mapping[str, Any]
    code_sha256: str
    below: int | None  # position of the cell that asked (the code went right below it)
    asked_in: int | None  # its execution count
    code: str | None = None  # the code itself, while this session remembers it


def audit(
    cells: Sequence[Cell] | None,
    answers: Sequence[Answer],
    history: Sequence[str] = (),
    *,
    source: str = "",
) -> Audit:
    """The audit of ``cells`` (None: no notebook, use the kernel's ``history``) together
    with this session's ``answers``."""
    if cells is None:
        return _from_history(answers, history, source)
    report = Audit(source=source)
    claimed: set[str] = set()
    taken: set[int] = set()
    code_cells = [c for c in cells if c.kind == "code"]
    for cell in code_cells:
        tag = cell.tag
        wanted = str(tag.get("code_sha256", "")) if tag is not None else ""
        if not wanted:
            continue
        status = AS_INSERTED if code_hash(cell.source) == wanted else EDITED
        report.rows.append(Row(cell.position, cell.execution_count, status, tag or {}))
        claimed.add(wanted)
        taken.add(cell.position)
    by_count = {c.execution_count: c for c in cells if c.execution_count is not None}
    by_hash: dict[str, Cell] = {}
    for cell in code_cells:
        if cell.position not in taken:
            by_hash.setdefault(code_hash(cell.source), cell)
    for offer in _offers(cells, answers, by_count):
        if offer.code_sha256 in claimed:
            continue
        claimed.add(offer.code_sha256)
        match = by_hash.get(offer.code_sha256)
        status = AS_INSERTED
        if match is None or match.position in taken:
            match = _below(offer, cells, taken)
            status = EDITED if offer.code is not None else DIFFERS
        if match is None:
            asked = f" by In[{offer.asked_in}]" if offer.asked_in is not None else ""
            report.notes.append(
                f"Code offered{asked} ({offer.record.get('model', '?')}) is in no cell."
            )
            continue
        taken.add(match.position)
        report.rows.append(Row(match.position, match.execution_count, status, offer.record))
    report.rows.sort(key=lambda row: row.position or 0)
    return report


def _offers(
    cells: Sequence[Cell], answers: Sequence[Answer], by_count: Mapping[int | None, Cell]
) -> list[_Offer]:
    offers = []
    for cell in cells:
        for record in cell.offers:
            wanted = record.get("code_sha256")
            if wanted:
                offers.append(_Offer(record, str(wanted), cell.position, cell.execution_count))
    for answer in answers:
        asking = by_count.get(answer.execution_count)
        for code in answer.codes:
            offers.append(
                _Offer(
                    answer.provenance,
                    code_hash(code),
                    asking.position if asking is not None else None,
                    answer.execution_count,
                    code,
                )
            )
    # Offers whose code this session still has first: they can tell edited from replaced.
    return sorted(offers, key=lambda offer: offer.code is None)


def _below(offer: _Offer, cells: Sequence[Cell], taken: set[int]) -> Cell | None:
    """The untagged code cell right below the answer (where ``set_next_input`` put the
    code), when it may be the code edited: like it, while this session still has the code
    to compare; otherwise (only a hash left) any such cell."""
    if offer.below is None or offer.below >= len(cells):
        return None
    cell = cells[offer.below]  # positions are 1-based: this is the next cell
    if cell.kind != "code" or cell.tag is not None or cell.position in taken:
        return None
    if offer.code is not None and not _similar(offer.code, cell.source):
        return None
    return cell


def _from_history(answers: Sequence[Answer], history: Sequence[str], source: str) -> Audit:
    """Without a notebook: the code this session offered, looked for among the cells run
    since it was offered (``In``)."""
    report = Audit(source=source or "this kernel's history (no notebook file was found)")
    used: set[int] = set()
    for answer in answers:
        start = (answer.execution_count or 0) + 1
        for code in answer.codes:
            wanted = code_hash(code)
            found, status = None, NOT_RUN
            for count in range(start, len(history)):
                if count not in used and code_hash(history[count]) == wanted:
                    found, status = count, AS_INSERTED
                    break
            if found is None:
                for count in range(start, len(history)):
                    if count not in used and _similar(code, history[count]):
                        found, status = count, EDITED
                        break
            if found is not None:
                used.add(found)
            report.rows.append(Row(None, found, status, answer.provenance))
    return report
