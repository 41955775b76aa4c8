"""%load_ext side by side with jupyter-ai's magics, in one run on one machine.

    python benchmarks/bench_peer.py [--quick] [--peer-python /path/to/other/venv/bin/python]

jupyter-ai is not a dependency: give the Python of an environment where
``jupyter-ai-magics`` and ``ipykernel`` are installed (``--peer-python`` or
``JUPYTER_AI_PYTHON``); without one the comparison is skipped. Fresh kernels of both kinds
are started in turn (A B A B ...), so the ratio holds when the machine's speed drifts; the
figures printed are medians of the time a ``%load_ext`` cell takes over a bare cell.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from jupyter_client.manager import KernelManager

PEER_EXTENSION = "jupyter_ai_magics"


def peer_is_usable(python: str) -> bool:
    probe = f"import {PEER_EXTENSION}, ipykernel"
    return subprocess.run([python, "-c", probe], capture_output=True).returncode == 0


def kernelspec(folder: Path, name: str, python: str) -> None:
    spec = folder / "kernels" / name
    spec.mkdir(parents=True)
    argv = [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "language": "python"}))


def run_cell(client, code: str) -> float:
    """Seconds from sending ``code`` to its execute_reply."""
    started = time.perf_counter()
    reply = client.execute_interactive(code, timeout=120, output_hook=lambda msg: None)
    elapsed = time.perf_counter() - started
    if reply["content"]["status"] != "ok":
        raise RuntimeError(f"{code!r} failed: {reply['content'].get('evalue')}")
    return elapsed


def load_ext_cost(kernel_name: str, extension: str) -> float:
    """%load_ext time minus a bare cell's, in a fresh kernel."""
    manager = KernelManager(kernel_name=kernel_name)
    manager.start_kernel()
    client = manager.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=60)
        run_cell(client, "pass")
        bare = statistics.median(run_cell(client, "pass") for _ in range(5))
        return run_cell(client, f"%load_ext {extension}") - bare
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="CI smoke run: 1 kernel each")
    parser.add_argument("--peer-python", default=os.environ.get("JUPYTER_AI_PYTHON"))
    args = parser.parse_args()
    if not args.peer_python or not peer_is_usable(args.peer_python):
        print(
            f"jupyter-ai comparison skipped: no Python with {PEER_EXTENSION} and ipykernel "
            "(give --peer-python or JUPYTER_AI_PYTHON)"
        )
        return
    rounds = 1 if args.quick else 5
    with tempfile.TemporaryDirectory() as folder:
        kernelspec(Path(folder), "bench-ours", sys.executable)
        kernelspec(Path(folder), "bench-peer", args.peer_python)
        os.environ["JUPYTER_PATH"] = folder
        ours, peer = [], []
        for _ in range(rounds):
            ours.append(load_ext_cost("bench-ours", "mistral_magic"))
            peer.append(load_ext_cost("bench-peer", PEER_EXTENSION))
    a, b = statistics.median(ours), statistics.median(peer)
    ratios = sorted(p / o for o, p in zip(ours, peer, strict=True))
    print(
        f"{datetime.date.today()}: %load_ext added over a bare cell, median of {rounds} fresh "
        f"kernels each: mistral_magic {a * 1000:.0f} ms, {PEER_EXTENSION} {b * 1000:.0f} ms "
        f"-> jupyter-ai's costs {statistics.median(ratios):.0f}x ours "
        f"(pairwise {ratios[0]:.0f}x to {ratios[-1]:.0f}x)"
    )


if __name__ == "__main__":
    main()
