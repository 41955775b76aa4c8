"""A local imitation of Mistral's La Plateforme chat API (and vLLM's dialect) for tests.

    from tests.stub import StubServer, Reply, ToolCallSpec, Fault, Drop, CaptureReplay

    with StubServer() as stub:                     # http://127.0.0.1:<port>/v1, key "test-key"
        stub.queue(Fault(429, headers={"Retry-After": "1"}), Reply("Hello"))
        ...                                        # point the client at stub.base_url

Run by hand: ``python -m tests.stub --port 8765 [--dialect vllm]``.
"""

import tests.stub.batch  # noqa: F401  (adds the Files and Batch routes)
from tests.stub.errors import ApiError
from tests.stub.hostile import ClientGone, Connection, HostileServer
from tests.stub.retired import RETIRED_2407
from tests.stub.script import CaptureReplay, Drop, Fault, Reply, ToolCallSpec
from tests.stub.server import DEFAULT_REPLY, StubServer
from tests.stub.transport import RecordedRequest, Response

__all__ = [
    "DEFAULT_REPLY",
    "RETIRED_2407",
    "ApiError",
    "CaptureReplay",
    "ClientGone",
    "Connection",
    "Drop",
    "Fault",
    "HostileServer",
    "RecordedRequest",
    "Reply",
    "Response",
    "StubServer",
    "ToolCallSpec",
]
