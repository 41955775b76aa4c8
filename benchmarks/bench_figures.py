"""Figures for vision models: what a question that names a plot costs before it is sent, and
what the kernel's figure log costs every display.

    python benchmarks/bench_figures.py [--quick]

Times (median of repeats): a matplotlib figure as the kernel shows it (base64 PNG) turned into
the image chunk of a request — decoded, downscaled to 1,024 px when larger, re-encoded — at
640×480 (matplotlib's default, no downscale) and 3,000×2,000 (downscaled); the display
publisher hook of ``FigureLog`` for a message without a figure and one with; and the whole
``prepare`` of a question with one figure for a vision model.

Targets (issue #16): a default figure adds under 5 ms to a question, a large one under
150 ms; the hook costs microseconds per display. Figures are printed, not asserted.
"""

from __future__ import annotations

import argparse
import base64
import io
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def plot_png(width: int, height: int) -> str:
    """A real matplotlib line plot of ``width × height`` pixels, base64 as a kernel sends it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dpi = 100
    figure = plt.figure(figsize=(width / dpi, height / dpi), dpi=dpi)
    plt.plot(range(1000), [i % 37 for i in range(1000)])
    plt.title("Revenue by month")
    out = io.BytesIO()
    figure.savefig(out, format="png", dpi=dpi)
    plt.close(figure)
    return base64.b64encode(out.getvalue()).decode()


def median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (CI smoke run)")
    args = parser.parse_args()
    repeats = 3 if args.quick else 15

    from mistral_magic.api.models import ModelCatalog
    from mistral_magic.context.figures import FigureLog, figure_from_png
    from mistral_magic.engine.prepare import WireTarget, prepare

    figure_from_png(plot_png(64, 48), "warm-up")  # Pillow's import, once
    for width, height in ((640, 480), (3000, 2000)):
        png = plot_png(width, height)
        shown = figure_from_png(png, "Out[1]")
        ms = median_ms(lambda png=png: figure_from_png(png, "Out[1]").chunk(), repeats)
        print(
            f"figure {width}×{height} ({len(png) / 1024:,.0f} kB base64) -> image chunk "
            f"{shown.width}×{shown.height}, ≈{shown.tokens:,} tokens: {ms:.1f} ms"
        )

    shell = SimpleNamespace(display_pub=None, events=None, history_manager=None)
    log = FigureLog(shell)
    plain = {"msg_type": "display_data", "content": {"data": {"text/markdown": "x" * 200}}}
    with_png = {"msg_type": "display_data", "content": {"data": {"image/png": png}}}
    n = 10_000 if args.quick else 100_000
    for name, message in (("without a figure", plain), ("with a figure", with_png)):
        started = time.perf_counter()
        for _ in range(n):
            log._on_message(message)
        per = (time.perf_counter() - started) / n * 1e6
        log._pending.clear()
        print(f"FigureLog hook, a display {name}: {per:.2f} µs")

    figure = figure_from_png(plot_png(640, 480), "Out[1]")
    catalog = ModelCatalog.from_payload(
        {
            "data": [
                {"id": "pixtral", "max_context_length": 131072, "capabilities": {"vision": True}}
            ]
        }
    )
    caps = catalog.capabilities("pixtral")
    target = WireTarget("http://127.0.0.1:8000/v1", "mistral")
    ms = median_ms(
        lambda: (
            prepare(
                "Why is the plot above empty?",
                model="pixtral",
                target=target,
                capabilities=caps,
                figures=[figure],
            ).prompt_tokens
        ),
        repeats,
    )
    print(f"prepare + count, one 640×480 figure for a vision model: {ms:.1f} ms")


if __name__ == "__main__":
    main()
