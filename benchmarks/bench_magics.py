"""Magic benchmarks: %load_ext cost in a fresh kernel, magic overhead over a raw client call,
keeping up with a fast 5,000-token stream, and what a long reply costs on the kernel's
iopub channel (display updates must grow with the reply, not with its square).

    python benchmarks/bench_magics.py [--quick]

Targets (issue #3): %load_ext under 150 ms over a bare cell (the comparison with jupyter-ai's
magics is bench_peer.py: both in one run, as a ratio); magic overhead under 10 ms; rendering
never lags behind the stream.
Issue #11: the display messages of a long reply total a small multiple of its size, and
none is larger than one block (``HARD_BLOCK_CHARS``) however long the reply.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.kernel import Kernel  # noqa: E402
from tests.stub import Reply, StubServer  # noqa: E402


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def timed_cell(kernel: Kernel, code: str) -> float:
    t = time.perf_counter()
    kernel.execute(code)
    return time.perf_counter() - t


def bench_load_ext(kernels: int) -> None:
    bare, load = [], []
    for _ in range(kernels):
        k = Kernel({})
        try:
            k.execute("pass")
            bare.append(statistics.median(timed_cell(k, "pass") for _ in range(5)))
            load.append(timed_cell(k, "%load_ext mistral_magic"))
        finally:
            k.shutdown()
    b, l_ = statistics.median(bare), statistics.median(load)
    print(
        f"%load_ext mistral_magic: {l_ * 1000:6.1f} ms vs a bare cell {b * 1000:5.1f} ms "
        f"-> {(l_ - b) * 1000:+.1f} ms added (target < 150 ms; against jupyter-ai: "
        "bench_peer.py)"
    )


def bench_overhead(stub: StubServer, calls: int) -> None:
    from IPython.testing.globalipapp import start_ipython

    from mistral_magic.api import MistralClient

    shell = start_ipython()
    shell.run_line_magic("load_ext", "mistral_magic")
    shell.user_ns["small"] = list(range(10))
    client = MistralClient(
        api_key=stub.api_key, base_url=stub.base_url, model="mistral-large-2407", dialect="mistral"
    )
    messages = [{"role": "user", "content": "Hi"}]

    def raw():
        for _ in client.stream(messages):
            pass

    def magic():
        with contextlib.redirect_stdout(io.StringIO()):
            shell.run_cell("%%mistral --no-insert --new\nHi", store_history=False)

    raw(), magic()
    raws, magics = [], []
    for _ in range(calls):
        raws.append(timed(raw))
        magics.append(timed(magic))
    r, m = statistics.median(raws), statistics.median(magics)
    print(
        f"%%mistral (context on, small namespace): {m * 1000:6.2f} ms vs raw client.stream "
        f"{r * 1000:6.2f} ms -> {(m - r) * 1000:+.2f} ms overhead (target < 10 ms)"
    )


def bench_render(stub: StubServer, tokens: int) -> None:
    from IPython.utils.capture import capture_output

    from mistral_magic.api import MistralClient
    from mistral_magic.faces.render import StreamingDisplay

    text = " ".join(f"tok{i}" for i in range(tokens))
    client = MistralClient(api_key=stub.api_key, base_url=stub.base_url, dialect="mistral")
    messages = [{"role": "user", "content": "Hi"}]

    def plain():
        stub.queue(Reply(text=text))
        for _ in client.stream(messages):
            pass

    def rendered():
        stub.queue(Reply(text=text))
        display = StreamingDisplay(notebook=True)
        shown = ""
        with capture_output():
            for delta in client.stream(messages):
                shown += delta.text
                display.update(shown)
            display.finish(shown)
        return display.renders

    plain()
    p = statistics.median(timed(plain) for _ in range(3))
    renders = []
    r = statistics.median(timed(lambda: renders.append(rendered())) for _ in range(3))
    print(
        f"{tokens:,}-token stream at full speed: {p * 1000:7.1f} ms bare, {r * 1000:7.1f} ms "
        f"with live Markdown ({max(renders)} renders, throttled to 15/s): "
        f"{r / p:.2f}x (1.0x = no lag)"
    )


def bench_long_reply(stub: StubServer, megabytes: float, seconds: float = 0.0) -> None:
    """A reply of ``megabytes`` in 10 kB pieces, at full speed or spread over ``seconds``,
    through a real kernel: the bytes of every display message on iopub, against the reply's
    own size (re-sending the whole text on each update grows with the stream's duration)."""
    import json

    from tests.kernel import stub_env

    paragraph = "Revenue grows in the north while the south stays flat. " * 8
    count = max(1, int(megabytes * 1e6 / (len(paragraph) + 8)))
    text = "\n\n".join(f"{i}. {paragraph}" for i in range(count))
    chunks = [text[i : i + 10_000] for i in range(0, len(text), 10_000)]
    kernel = Kernel(stub_env(stub))
    try:
        kernel.execute("%load_ext mistral_magic\n%config Mistral.max_tokens = None")
        stub.queue(Reply(text=text, chunks=chunks))
        stub.token_delay = seconds / len(chunks)
        started = time.perf_counter()
        run = kernel.execute("%%mistral --no-context --no-insert\nA long answer", timeout=1800)
        elapsed = time.perf_counter() - started
    finally:
        stub.token_delay = 0.0
        kernel.shutdown()
    sizes = [
        len(json.dumps(m["content"]))
        for m in run.messages
        if m["msg_type"] in ("display_data", "update_display_data")
    ]
    total = sum(sizes)
    pace = f"over {seconds:g} s" if seconds else "at full speed"
    print(
        f"{len(text) / 1e6:5.1f} MB reply {pace}: {len(sizes):,} display messages, "
        f"{total / 1e6:6.1f} MB on iopub ({total / len(text):.2f}x the reply), largest "
        f"{max(sizes) / 1e3:.1f} kB, {elapsed:.1f} s in the kernel"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer rounds, for CI")
    args = parser.parse_args()
    with StubServer() as stub:
        os.environ.update(
            MISTRAL_API_KEY=stub.api_key,
            MISTRAL_BASE_URL=stub.base_url,
            MISTRAL_DIALECT="mistral",
            MISTRAL_MODEL="mistral-large-2407",
        )
        bench_load_ext(kernels=1 if args.quick else 3)
        bench_overhead(stub, calls=10 if args.quick else 50)
        bench_render(stub, tokens=1000 if args.quick else 5000)
        for megabytes, seconds in [(0.2, 2.0)] if args.quick else [(2, 0), (2, 10), (20, 0)]:
            bench_long_reply(stub, megabytes, seconds)


if __name__ == "__main__":
    main()
