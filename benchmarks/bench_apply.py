"""apply() benchmark: many rows through the concurrent pool, then the same run from the cache.

    python benchmarks/bench_apply.py [--quick] [--rows N] [--latency S] [--concurrency C]

The stub runs in its own process (``python -m tests.stub --latency S``), so its work does
not share this process's GIL. Ideal time = rows x latency / concurrency; target (issue #7):
2,000 rows at 100 ms with concurrency 16 within 15% of the ideal 12.5 s, and the cached
re-run under 1 s. The same requests through bare httpx clients are timed too, to separate
what apply adds from what the machine (a loaded 2-core box skews every figure) and the stub
cost. Figures are printed, not asserted.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.stub_process import start_stub  # noqa: E402


def bare_floor(base_url: str, items: list[str], concurrency: int) -> float:
    """The same requests through bare httpx clients (one connection per worker, no apply
    logic): what this machine's HTTP stack and the stub manage, for comparison."""
    import asyncio
    import json

    import httpx

    async def run() -> float:
        queue: asyncio.Queue[str] = asyncio.Queue()
        for item in items:
            queue.put_nowait(item)
        headers = {"Authorization": "Bearer bench-key", "Content-Type": "application/json"}
        one = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        clients = [httpx.AsyncClient(limits=one, timeout=60) for _ in range(concurrency)]

        async def worker(client: httpx.AsyncClient) -> None:
            while not queue.empty():
                prompt = queue.get_nowait()
                body = {
                    "model": "mistral-large-2407",
                    "messages": [{"role": "user", "content": f"Bare: {prompt}"}],
                }
                answer = await client.post(
                    base_url + "/chat/completions", content=json.dumps(body), headers=headers
                )
                answer.raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(worker(c) for c in clients))
        took = time.perf_counter() - started
        for client in clients:
            await client.aclose()
        return took

    return asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 rows (a CI smoke run)")
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    rows = 200 if args.quick else args.rows

    proc, base_url = start_stub("--latency", str(args.latency))
    cache_home = tempfile.mkdtemp(prefix="bench-apply-")
    os.environ.update(
        MISTRAL_API_KEY="bench-key",
        MISTRAL_BASE_URL=base_url,
        MISTRAL_MODEL="mistral-large-2407",
        MISTRAL_DIALECT="mistral",
        XDG_CACHE_HOME=cache_home,
    )
    try:
        import mistral_magic
        from mistral_magic.context.budget import warm_up

        warm_up()  # the tokenizer loads once per process; not part of the figure
        ticket = "Support ticket #{}: the app crashes when I export a report."
        items = [ticket.format(i) for i in range(rows)]
        ideal = rows * args.latency / args.concurrency

        started = time.perf_counter()
        first = mistral_magic.apply(
            items, "Classify: {}", concurrency=args.concurrency, progress=False, confirm=False
        )
        took = time.perf_counter() - started
        failed = sum(1 for v in first if isinstance(v, mistral_magic.ApplyError))
        print(
            f"{rows:,} rows, latency {args.latency * 1000:.0f} ms, concurrency "
            f"{args.concurrency}: {took:.2f} s (ideal {ideal:.2f} s, "
            f"{(took / ideal - 1) * 100:+.1f}%; target within +15%), {failed} failed"
        )

        floor = bare_floor(base_url, items, args.concurrency)
        print(
            f"bare httpx, same requests and concurrency: {floor:.2f} s "
            f"({(floor / ideal - 1) * 100:+.1f}% over ideal; apply adds "
            f"{(took / floor - 1) * 100:+.1f}%)"
        )

        started = time.perf_counter()
        again = mistral_magic.apply(
            items, "Classify: {}", concurrency=args.concurrency, progress=False, confirm=False
        )
        cached = time.perf_counter() - started
        same = "identical" if again == first else "DIFFERENT"
        print(f"cached re-run: {cached:.3f} s (target < 1 s), results {same}")
    finally:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    main()
