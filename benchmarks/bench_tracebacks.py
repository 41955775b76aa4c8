"""Error-hook benchmark: what mistral-magic adds to a cell that raises, in a real kernel.

    python benchmarks/bench_tracebacks.py [--quick]

Targets (issue #4): under 5 ms when error help is off (the hook only remembers the error),
under 20 ms when it is on (Explain / Fix buttons are built and displayed under the traceback).

Two figures per case: the hook's own time, measured inside the kernel around the
``post_run_cell`` callback (precise), and the round trip of the raising cell as a front end
sees it, compared with the same kernel before ``%load_ext`` (noisier; includes the widget
messages going out).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.kernel import Kernel  # noqa: E402

RAISING_CELL = "values = [1, 2, 3]\nvalues[10]"

TIME_THE_HOOK = """
import time
from mistral_magic.session import session_for
_shell = get_ipython()
_capture = session_for(_shell).errors
_hook_times = []
def _timed_hook(result, _hook=_capture.post_run_cell):
    started = time.perf_counter()
    _hook(result)
    if result.error_in_exec is not None:
        _hook_times.append(time.perf_counter() - started)
_shell.events.unregister("post_run_cell", _capture.post_run_cell)
_shell.events.register("post_run_cell", _timed_hook)
"""


def round_trips(kernel: Kernel, rounds: int) -> list[float]:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        run = kernel.execute(RAISING_CELL)
        times.append(time.perf_counter() - started)
        assert run.status == "error"
    return times


def hook_times(kernel: Kernel) -> list[float]:
    out = kernel.execute("print(json.dumps(_hook_times)); _hook_times.clear()").stdout
    return json.loads(out)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:6.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer rounds, for CI")
    args = parser.parse_args()
    rounds = 15 if args.quick else 100
    kernel = Kernel({})
    try:
        kernel.execute("import json")
        round_trips(kernel, 3)
        bare = statistics.median(round_trips(kernel, rounds))
        kernel.execute("%load_ext mistral_magic")
        # let the background warm-up (tokenizer, HTTP client) finish: it is not the hook's cost
        kernel.execute("from mistral_magic.context.budget import warm_up; warm_up()")
        time.sleep(0.5)
        kernel.execute(TIME_THE_HOOK)
        results = {}
        for label, setting in (("off", "False"), ("on", "True")):
            kernel.execute(f"%config Mistral.error_help = {setting}")
            if setting == "True":
                kernel.execute("import ipywidgets")  # what `%mistral errors on` does up front
            first = round_trips(kernel, 1)
            first_hook = hook_times(kernel)
            trips = round_trips(kernel, rounds)
            hooks = hook_times(kernel)
            results[label] = (first_hook[0], statistics.median(hooks), max(hooks), trips, first)
        print(f"raising cell round trip without the extension: {ms(bare)} (median of {rounds})")
        for label, target in (("off", 0.005), ("on", 0.020)):
            first, median, worst, trips, _ = results[label]
            added = statistics.median(trips) - bare
            verdict = "ok" if median < target else "OVER TARGET"
            print(
                f"error help {label:3}: hook {ms(median)} median, {ms(worst)} max, "
                f"{ms(first)} first time; round trip {ms(statistics.median(trips))} "
                f"({added * 1000:+.2f} ms vs no extension) -> target < {target * 1000:.0f} ms: "
                f"{verdict}"
            )
    finally:
        kernel.shutdown()


if __name__ == "__main__":
    main()
