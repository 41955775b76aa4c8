"""Run the stub by hand: ``python -m tests.stub --port 8765 [--dialect vllm]``."""

from __future__ import annotations

import argparse
import threading

from tests.stub.retired import RETIRED_2407
from tests.stub.server import DIALECTS, StubServer


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.stub", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--dialect", choices=DIALECTS, default="mistral")
    parser.add_argument("--api-key", default="test-key", help="'' disables auth")
    parser.add_argument("--token-delay", type=float, default=0.0, help="seconds between chunks")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before answering")
    parser.add_argument("--model", action="append", default=[], help="extra model id")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    parser.add_argument(
        "--retired-2407",
        action="store_true",
        help="refuse mistral-large-2407 as La Plateforme does since 2025-03-30",
    )
    args = parser.parse_args(argv)

    retired = RETIRED_2407 if args.retired_2407 else ()
    stub = StubServer(
        args.api_key or None, args.dialect, args.model, args.host, args.port, retired=retired
    )
    stub.token_delay = args.token_delay
    stub.latency = args.latency
    stub.verbose = args.verbose
    stub.start()
    print(f"Mistral stub ({stub.dialect}) at {stub.base_url}", flush=True)
    print(f"  MISTRAL_BASE_URL={stub.base_url} MISTRAL_API_KEY={stub.api_key or ''}", flush=True)
    print("Ctrl-C to stop.", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        stub.stop()


if __name__ == "__main__":
    main()
