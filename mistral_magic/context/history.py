"""A live shell's cell history: sources as typed, text outputs, which cells ran.

Shared by the collector (:mod:`kernel`), error context (:mod:`errors`) and the notebook tools.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from mistral_magic.context.describe import bounded_repr
from mistral_magic.context.fit import ANSI, bound_join, clean_text, fit
from mistral_magic.context.redact import Redactor

__all__ = ["ANSI", "cell_text", "executed_counts", "history_outputs", "raw_inputs"]

CELL_SOURCE_CHARS = 4000
#: Of an output kept by IPython, at most this much of its head and of its tail is read: a
#: 50 MB stream costs what 128 kB do (later clipping keeps far less; searches see this much).
OUTPUT_WORK_CHARS = 64_000

INPUT_FILENAME = re.compile(r"<ipython-input-(\d+)-[0-9a-f]+>")
_MISTRAL_MAGIC = re.compile(
    r"^\s*(?:%%?mistral\b|get_ipython\(\)\.run_(?:cell|line)_magic\(\s*['\"]mistral['\"])"
)


def raw_inputs(shell: Any) -> list[str]:
    """Cell sources indexed by execution count (index 0 is empty), as typed."""
    history = getattr(shell, "history_manager", None)
    raw = getattr(history, "input_hist_raw", None)
    if isinstance(raw, list) and len(raw) > 1:
        return raw
    parsed = shell.user_ns.get("In")
    return parsed if isinstance(parsed, list) else [""]


def running_count(shell: Any) -> int | None:
    """Execution count of the cell running right now (e.g. the %%mistral cell), if any."""
    result = getattr(getattr(shell, "displayhook", None), "exec_result", None)
    count = getattr(result, "execution_count", None)
    return count if isinstance(count, int) else None


def is_mistral_invocation(source: str) -> bool:
    return bool(_MISTRAL_MAGIC.match(source or ""))


def executed_counts(shell: Any, inputs: list[str], limit: int | None = None) -> list[int]:
    """The last ``limit`` (default: all) finished cells, oldest first, without %mistral
    invocations. (Also used by :mod:`mistral_magic.tools.notebook`.)"""
    running = running_count(shell)
    found: list[int] = []
    for n in range(len(inputs) - 1, 0, -1):
        if limit is not None and len(found) >= limit:
            break
        if n != running and inputs[n].strip() and not is_mistral_invocation(inputs[n]):
            found.append(n)
    found.reverse()
    return found


def _bounded(parts: list[Any]) -> str:
    texts = [part if isinstance(part, str) else str(part) for part in parts]
    return bound_join(texts, OUTPUT_WORK_CHARS, OUTPUT_WORK_CHARS)


def history_outputs(
    shell: Any, count: int, redactor: Redactor | None = None
) -> Iterator[tuple[str, str]]:
    """(kind, text) for a cell's outputs: stdout, stderr, result, display, error. Texts are
    bounded (:data:`OUTPUT_WORK_CHARS`), not yet cleaned or clipped: pass them through
    :func:`~mistral_magic.context.fit.fit` (``redactor`` is used for reprs made here)."""
    history = getattr(shell, "history_manager", None)
    outputs = getattr(history, "outputs", None)
    recorded = outputs.get(count) if isinstance(outputs, dict) else None
    if recorded:
        for output in recorded:
            bundle = getattr(output, "bundle", {}) or {}
            kind = getattr(output, "output_type", "")
            if kind in ("out_stream", "err_stream"):
                text = _bounded(list(bundle.get("stream", [])))
                yield ("stdout" if kind == "out_stream" else "stderr"), text
            elif "text/plain" in bundle:
                text = bundle["text/plain"]
                text = _bounded(text if isinstance(text, list) else [text])
                yield ("result" if kind == "execute_result" else "display"), text
    else:
        reprs = getattr(history, "output_hist_reprs", None)
        if isinstance(reprs, dict) and count in reprs:
            yield "result", _bounded([reprs[count]])
        else:
            out = shell.user_ns.get("Out")
            if isinstance(out, dict) and count in out:
                yield "result", bounded_repr(out[count], 4000, redactor=redactor)
    exceptions = getattr(history, "exceptions", None)
    if isinstance(exceptions, dict) and count in exceptions:
        record = exceptions[count]
        yield "error", _bounded([f"{record.get('ename', 'Error')}: ", record.get("evalue", "")])


def _output_clean(text: str) -> str:
    return INPUT_FILENAME.sub(r"In[\1]", clean_text(text)).rstrip()


def cell_text(
    shell: Any,
    count: int,
    source: str,
    redactor: Redactor,
    output_chars: int,
    *,
    language: str = "python",
) -> str:
    """A cell as the model sees it: its source in a fence, then its text outputs."""
    source = fit(source, CELL_SOURCE_CHARS, redactor)
    parts = [f"```{language}\n{source.rstrip()}\n```"]
    for kind, text in history_outputs(shell, count, redactor):
        text = fit(text, output_chars, redactor, middle=True, clean=_output_clean)
        if not text:
            continue
        if kind == "result":
            parts.append(f"Out[{count}]:\n{text}")
        else:
            parts.append(f"{kind}:\n{text}")
    return "\n".join(parts)
