"""Does the sidebar's server work block other Jupyter requests?

    python benchmarks/bench_server_loop.py [--quick] [--megabytes 5]

A real ``jupyter lab`` with the server extension and the stub as the model. While a client
asks the sidebar's ``POST mistral-magic/context`` (and ``chat``) about a ~5 MB notebook again
and again (parsing, cleaning, tokenizing and packing it), another client measures
``GET /api/status`` — any other Jupyter request would wait the same. Printed: the status
latency idle and under that load (median, 95th percentile, worst), and how long one
context request took. Work done on the event loop shows up as status latency.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.lab_server import TOKEN, start_lab  # noqa: E402
from tests.stub import Reply, StubServer  # noqa: E402

HEADERS = {"Authorization": f"token {TOKEN}", "Content-Type": "application/json"}


def notebook(megabytes: float, salt: int) -> dict:
    """Code cells with long sources and outputs, ``megabytes`` of JSON in all. ``salt``
    makes every request's text new, so no cache answers for the tokenizer."""
    cells = []
    size = 0
    index = 0
    while size < megabytes * 1_000_000:
        source = "\n".join(
            f"frame_{index}_{line} = compute(rows[{line}], salt={salt}) + {line * index}"
            for line in range(120)
        )
        output = "\n".join(f"{salt}-{index}-{line}: " + "value " * 12 for line in range(120))
        cells.append(
            {
                "cell_type": "code",
                "execution_count": index + 1,
                "source": source,
                "outputs": [{"output_type": "stream", "name": "stdout", "text": output}],
                "metadata": {},
            }
        )
        size += len(source) + len(output)
        index += 1
    return {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def probe_status(client, base: str, stop: threading.Event) -> list[float]:
    """``GET /api/status`` latencies until ``stop`` is set (one every ~10 ms)."""
    samples = []
    while not stop.is_set():
        started = time.perf_counter()
        client.get(f"{base}api/status", headers=HEADERS).raise_for_status()
        samples.append(time.perf_counter() - started)
        stop.wait(0.01)
    return samples


def describe(name: str, samples: list[float]) -> str:
    ms = [s * 1000 for s in samples]
    return (
        f"{name:<38} median {statistics.median(ms):7.2f} ms, p95 {percentile(ms, 0.95):7.2f} "
        f"ms, worst {max(ms):7.2f} ms ({len(ms)} requests)"
    )


def main() -> None:
    import httpx

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few requests (CI smoke)")
    parser.add_argument("--megabytes", type=float, default=5.0, help="notebook size")
    args = parser.parse_args()
    rounds = 2 if args.quick else 8
    bodies = [
        json.dumps(
            {
                "prompt": "What does this notebook do?",
                "notebook": notebook(args.megabytes, salt),
                "active_cell": 0,
                "sources": ["cells", "active", "error"],
                "remember": False,
            }
        )
        for salt in range(rounds * 2 + 1)
    ]
    print(f"notebook: {len(bodies[0]) / 1e6:.1f} MB of JSON per request")
    with StubServer() as stub, tempfile.TemporaryDirectory() as home:
        stub.responder = lambda body: Reply(text="It computes frames.")
        lab = start_lab(stub, Path(home))
        try:
            with httpx.Client(timeout=120) as status_client, httpx.Client(timeout=300) as asker:
                base = lab.base_url
                # warm up: tokenizer, imports, connections
                asker.post(f"{base}mistral-magic/context", content=bodies[-1], headers=HEADERS)
                stop = threading.Event()
                idle: list[float] = []
                worker = threading.Thread(
                    target=lambda: idle.extend(probe_status(status_client, base, stop))
                )
                worker.start()
                stop.wait(1.0 if args.quick else 3.0)
                stop.set()
                worker.join()

                stop = threading.Event()
                busy: list[float] = []
                worker = threading.Thread(
                    target=lambda: busy.extend(probe_status(status_client, base, stop))
                )
                worker.start()
                took: list[float] = []
                try:
                    for n in range(rounds):
                        asks = (("context", bodies[2 * n]), ("chat", bodies[2 * n + 1]))
                        for route, body in asks:
                            started = time.perf_counter()
                            response = asker.post(
                                f"{base}mistral-magic/{route}", content=body, headers=HEADERS
                            )
                            response.raise_for_status()
                            if route == "context":
                                took.append(time.perf_counter() - started)
                finally:
                    stop.set()
                    worker.join()
        finally:
            lab.stop()
    print(describe("GET /api/status, idle", idle))
    print(describe("GET /api/status, while packing", busy))
    print(
        f"POST context with the notebook: median {statistics.median(took) * 1000:7.1f} ms "
        f"over {len(took)}"
    )


if __name__ == "__main__":
    main()
