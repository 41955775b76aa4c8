"""jupyter_server extension: the back end of the JupyterLab sidebar.

Routes, all under ``{base_url}mistral-magic/`` (protocol notes in :mod:`.handlers`):

=====================  =======  ============================================================
``config``             GET      model, server host, dialect, whether a key is set (never it)
``context``            POST     the context chips a question would carry
``chat``               POST     ask; the answer streams back as server-sent events
``chat/cancel``        POST     stop a running answer by ``request_id``
``history``            GET      this user's chat (survives a page reload)
``history``            DELETE   clear it (New chat)
``tool_result``        POST     the result of a tool call the chat stream relayed to the browser
``complete``           GET      how inline completion asks (FIM / chat / off) and its usage
``complete``           POST     ghost text at the cursor, streamed as server-sent events
=====================  =======  ============================================================

Settings are the ``Mistral`` traitlets (``c.Mistral.model = ...`` in jupyter_server_config.py)
and, for the extension's own bounds, ``MistralServer`` (``c.MistralServer.max_request_mb``);
the key comes from ``MISTRAL_API_KEY`` in the server's environment only.
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import Any

from jupyter_server.utils import url_path_join

from mistral_magic.config import Mistral
from mistral_magic.server.handlers import (
    CancelHandler,
    ChatHandler,
    ConfigHandler,
    ContextHandler,
    HistoryHandler,
    ToolResultHandler,
)
from mistral_magic.server.history import HistoryStore
from mistral_magic.server.inline import CompleteHandler
from mistral_magic.server.inline_service import InlineCompletions
from mistral_magic.server.service import MistralService
from mistral_magic.server.settings import MistralServer

NAMESPACE = "mistral-magic"


def setup_handlers(serverapp: Any) -> MistralService:
    web_app = serverapp.web_app
    settings = Mistral(parent=serverapp)
    limits = MistralServer(parent=serverapp)
    service = MistralService(settings, limits, root_dir=getattr(serverapp, "root_dir", None))
    history_dir = Path(serverapp.data_dir) / "mistral_magic" / "history"
    web_app.settings["mistral_magic_service"] = service
    web_app.settings["mistral_magic_history"] = HistoryStore(history_dir)
    web_app.settings["mistral_magic_limits"] = limits
    web_app.settings["mistral_magic_inline"] = InlineCompletions(service)
    base = url_path_join(web_app.settings["base_url"], NAMESPACE)
    web_app.add_handlers(
        ".*$",
        [
            (url_path_join(base, "config"), ConfigHandler),
            (url_path_join(base, "context"), ContextHandler),
            (url_path_join(base, "chat"), ChatHandler),
            (url_path_join(base, "chat", "cancel"), CancelHandler),
            (url_path_join(base, "history"), HistoryHandler),
            (url_path_join(base, "tool_result"), ToolResultHandler),
            (url_path_join(base, "complete"), CompleteHandler),
        ],
    )
    return service


def _warm_up(model: str) -> None:
    """Load the model's tokenizer in the background, so the first question does not wait for
    it (mistral-common's, for models other than 2407, takes seconds to import)."""
    from mistral_magic.context.budget import warm_up

    with contextlib.suppress(Exception):  # a failure only makes the first request slower
        warm_up(model)


def _load_jupyter_server_extension(serverapp: Any) -> None:
    service = setup_handlers(serverapp)
    threading.Thread(
        target=_warm_up, args=(service.settings.model,), name="mistral-magic-warm-up", daemon=True
    ).start()
    serverapp.log.info("mistral-magic: server extension loaded at /%s/", NAMESPACE)


async def _unload_jupyter_server_extension(serverapp: Any) -> None:
    """On server shutdown: cancel running answers and close the model server connections."""
    inline = serverapp.web_app.settings.get("mistral_magic_inline")
    if inline is not None:
        await inline.close()
    service = serverapp.web_app.settings.get("mistral_magic_service")
    if service is not None:
        await service.close()


# jupyter_server < 2 name
load_jupyter_server_extension = _load_jupyter_server_extension
