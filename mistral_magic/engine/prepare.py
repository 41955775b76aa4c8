"""The request builder: the one place where a question, its context and the settings become
a request, for every face (the magics, the chat panel, the error buttons and ``%mistral
explain|fix``, ``apply``/``map``, the sidebar).

:func:`prepare` returns a :class:`PreparedRequest` whose ``body`` is the exact JSON that is
POSTed: built by the api's own body builder (:func:`~mistral_magic.api.request.build_chat_body`)
for the server's dialect, so ``--seed`` is ``random_seed`` on La Plateforme and ``seed`` on
vLLM, a named ``tool_choice`` is wrapped, ``stream_options`` is there for vLLM. ``--dry-run``
shows that body, the response cache keys on it, and the client sends it: it builds the body
with the same function from the same messages and parameters (:meth:`PreparedRequest.
send_arguments`) for the same dialect (:class:`WireTarget`, read from the client itself).
"""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..api.models import ASSUMED_WINDOW, Capabilities, ModelCatalog
from ..api.request import Dialect, build_chat_body, build_fim_body
from ..context.budget import (
    Packed,
    count_request_tokens,
    count_tokens,
    format_token_count,
    is_exact,
    omitted_note,
    pack,
    pack_whole,
    request_tokens_at_most,
    tokens_at_most,
)
from ..context.budget import render_context as render_context_block
from ..context.fit import printable
from ..context.items import KIND_NAMED, ContextItem, priority_for
from .conversation import Conversation
from .instructions import Instructions, instructions_block
from .prompts import ASK, INLINE_SYSTEM, SYSTEM_PROMPT, Kind, error_question, system_prompt

if TYPE_CHECKING:
    from ..api.async_client import AsyncChatStream, AsyncMistralClient
    from ..api.client import ChatStream, MistralClient
    from ..api.retry import OnNotice
    from ..api.types import Usage
    from ..config import Mistral
    from ..context.figures import Figure
    from ..context.redact import Redactor
    from ..tools.core import Toolbox
    from .inline import InlineContext
    from .tool_loop import ToolEvent

# `{name}` of a plain identifier; doubled braces (`{{name}}`, as in format strings and
# templates) are not placeholders and are sent as written.
_PLACEHOLDER = re.compile(r"(?<!\{)\{([A-Za-z_][A-Za-z0-9_]*)\}(?!\})")
# Code in the prompt (fenced blocks, `inline`) is left exactly as written.
_CODE = re.compile(r"(```.*?(?:```|\Z)|~~~.*?(?:~~~|\Z)|`[^`\n]*`)", re.DOTALL)
# The system message is the instructions, a blank line, then the context block.
_CONTEXT_SEPARATOR = "\n\n"
# Room kept for the headings of the context block when the window is nearly full.
_HEADINGS_MARGIN = 64
# Keys of a streamed body that a non-streamed one lacks (they never change the answer).
_STREAM_ONLY = ("stream", "stream_options")
#: The longest question kept in a reply's provenance, in characters.
ASKED_CHARS = 300
#: Chat parameters the settings fill in when a face does not give them.
SAMPLING_SETTINGS = ("temperature", "top_p", "max_tokens")


def expand_placeholders(
    prompt: str, namespace: Mapping[str, Any], describe: Callable[[object, str], str]
) -> tuple[str, list[str]]:
    """Replace ``{name}`` by the description of variable ``name``; leave every other brace
    alone (unknown names, JSON, sets, ``{{name}}``, anything inside code), so Python pasted
    into a question reaches the model as written. Returns the new prompt and the names
    expanded."""
    expanded: list[str] = []

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in namespace:
            return match.group(0)
        expanded.append(name)
        return f"\n```text\n{describe(namespace[name], name)}\n```\n"

    parts = _CODE.split(prompt)
    for i in range(0, len(parts), 2):  # even parts are prose, odd parts are code
        parts[i] = _PLACEHOLDER.sub(substitute, parts[i])
    return "".join(parts), expanded


@dataclass(frozen=True)
class WireTarget:
    """Where a request goes and in which dialect its body is written."""

    base_url: str
    dialect: Dialect


@dataclass
class PreparedRequest:
    """One request before it is sent: what ``--dry-run`` shows, what the cache keys on, what
    the client posts."""

    prompt: str  # the question as sent (placeholders expanded, redacted)
    model: str
    messages: list[dict[str, Any]]
    params: dict[str, Any]  # chat parameters in the api's vocabulary (before the dialect)
    body: dict[str, Any]  # the exact JSON POSTed
    target: WireTarget
    kind: Kind = ASK
    packed: Packed | None = None
    context_note: str = ""
    expanded: list[str] = field(default_factory=list)
    toolbox: Toolbox | None = None  # tools the model may call; their specs are in params
    tool_events: list[ToolEvent] = field(default_factory=list)  # filled in by the answer
    tool_note: str = ""  # why the tool loop stopped early, if it did
    capabilities: Capabilities | None = None  # what the model can do, as the request assumed
    figures: list[Figure] = field(default_factory=list)  # sent as images with the question
    described: list[Figure] = field(default_factory=list)  # named, but sent as words
    image_tokens: int = 0  # the estimate for ``figures`` (context/figures.py)
    notes: list[str] = field(default_factory=list)  # for the user, before the answer
    #: ``chat`` (``POST /chat/completions``) or ``fim`` (``POST /fim/completions``: then
    #: :attr:`fim` holds the prompt and suffix, and there are no messages).
    endpoint: str = "chat"
    fim: tuple[str, str] | None = None
    asked: str = ""  # the question as the user put it (redacted, short): for provenance
    sent_sha256: str = ""  # of the body as POSTed (the first request's), once it was sent
    instructions: list[str] = field(default_factory=list)  # their sources, e.g. "AGENTS.md"
    _prompt_tokens: int | None = field(default=None, repr=False)

    @property
    def prompt_tokens(self) -> int:
        """Tokens of the whole request as the model counts them (exact for models whose
        tokenizer ships with mistral-common, else estimated: see :attr:`exact_count`;
        images always by the estimate of :func:`~mistral_magic.context.figures.image_tokens`)."""
        if self._prompt_tokens is None:
            # A fill-in-the-middle request has no messages: its prompt and suffix are what
            # the model reads (counted as one message: a few tokens over, never under).
            messages = self.messages
            if self.fim is not None:
                messages = [{"role": "user", "content": "".join(self.fim)}]
            self._prompt_tokens = self.image_tokens + count_request_tokens(
                messages, self.counted_as, self.params.get("tools")
            )
        return self._prompt_tokens

    @property
    def exact_count(self) -> bool:
        return is_exact(self.counted_as) and not self.image_tokens

    @property
    def prompt_tokens_text(self) -> str:
        """``"1,234"`` when the count is exact, ``"≈1,234"`` when it is an estimate."""
        return format_token_count(self.prompt_tokens, self.exact_count)

    def calibrate(self, usage: Usage | None) -> None:
        """Let the server's ``prompt_tokens`` for this request correct later estimates for its
        model (:func:`~mistral_magic.context.tokenizers.record_prompt_tokens`). Only a request
        counted as one: tool rounds report the sum of several requests, and images are counted
        by an estimate of their own, so neither says how far the text estimate is off."""
        if usage is None or self.tool_events or self.image_tokens or self.exact_count:
            return
        from ..context.tokenizers import record_prompt_tokens

        record_prompt_tokens(self.counted_as, self.prompt_tokens, usage.prompt_tokens)

    @property
    def other_names(self) -> tuple[str, ...]:
        """The model's other names, as its card gives them (the dated model behind an
        alias, the card's id, its aliases): a price is looked up under them when the name
        asked for has none."""
        caps = self.capabilities
        if caps is None:
            return ()
        names = (caps.canonical, caps.card_id or "", *caps.aliases)
        return tuple(dict.fromkeys(n for n in names if n and n != self.model))

    @property
    def window(self) -> int:
        """The model's context window (its card's, or the conservative default)."""
        return self.capabilities.window if self.capabilities is not None else ASSUMED_WINDOW

    @property
    def counted_as(self) -> str:
        """The model whose tokenizer counts this request (an alias's dated model)."""
        caps = self.capabilities
        return caps.canonical if caps is not None and caps.canonical else self.model

    @property
    def cache_key(self) -> str:
        """The response cache's key: the server and the body, streamed or not."""
        body = self.body
        if "stream" in body:
            body = {k: v for k, v in body.items() if k not in _STREAM_ONLY}
        return _request_key()(self.target.base_url, body)

    def readable_body(self) -> dict[str, Any]:
        """The body to show a person: as posted, but each image's data cut to its size
        (``--dry-run`` shows the request, not megabytes of base64)."""
        body = copy.deepcopy(self.body)
        for message in body.get("messages", []):
            content = message.get("content")
            for chunk in content if isinstance(content, list) else []:
                image = chunk.get("image_url") if isinstance(chunk, dict) else None
                url = image.get("url") if isinstance(image, dict) else image
                if isinstance(url, str) and url.startswith("data:") and "," in url:
                    head, data = url.split(",", 1)
                    short = f"{head},… ({len(data):,} characters of base64)"
                    if isinstance(image, dict):
                        image["url"] = short
                    else:
                        chunk["image_url"] = short
        return body

    def body_copy(self) -> dict[str, Any]:
        """The body as a new dict (``--dry-run -o``): changing it changes nothing here."""
        return copy.deepcopy(self.body)

    def send_arguments(self) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """``(messages, params)`` for the client's ``stream``/``complete``: from them the
        client builds exactly :attr:`body` (same builder, same dialect)."""
        return self.messages, {"model": self.model, **self.params}

    def retarget(self, target: WireTarget) -> None:
        """Rewrite the body for another server or dialect (the settings changed between
        preparing and sending), so that :attr:`body` stays what is posted."""
        if target != self.target:
            self.target = target
            if self.endpoint == "fim":  # one dialect only: the body does not change
                return
            stream = bool(self.body.get("stream"))
            self.body = wire_body(self.messages, self.params, self.model, target, stream=stream)

    def open_stream(
        self, client: MistralClient | AsyncMistralClient, on_notice: OnNotice | None = None
    ) -> ChatStream | AsyncChatStream:
        """The client's stream for this request, posting exactly :attr:`body` (chat, or
        fill-in-the-middle)."""
        if self.fim is not None:
            prompt, suffix = self.fim
            return client.stream_fim(
                prompt, suffix, on_notice=on_notice, model=self.model, **self.params
            )
        messages, params = self.send_arguments()
        return client.stream(messages, on_notice=on_notice, **params)

    def follow_up(
        self, messages: list[dict[str, Any]], params: Mapping[str, Any] | None = None
    ) -> PreparedRequest:
        """The next request of the same exchange (a tool round, a correction): the same
        model, target and streaming, new messages (and parameters)."""
        chosen = dict(self.params if params is None else params)
        return PreparedRequest(
            prompt=self.prompt,
            model=self.model,
            messages=messages,
            params=chosen,
            body=wire_body(
                messages, chosen, self.model, self.target, stream=self.body.get("stream", False)
            ),
            target=self.target,
            kind=self.kind,
            toolbox=self.toolbox,
            capabilities=self.capabilities,
            figures=self.figures,
            image_tokens=self.image_tokens,
            asked=self.asked,
            instructions=self.instructions,
        )


@functools.cache
def _request_key() -> Callable[[str, Mapping[str, Any]], str]:
    # engine.cache imports sqlite3: only when a key is first needed, not at %load_ext.
    from .cache import request_key

    return request_key


def wire_body(
    messages: Sequence[Mapping[str, Any]],
    params: Mapping[str, Any],
    model: str,
    target: WireTarget,
    *,
    stream: bool,
) -> dict[str, Any]:
    """The JSON body exactly as the client will POST it."""
    return build_chat_body(messages, params, model=model, dialect=target.dialect, stream=stream)


def chat_params(
    settings: Mistral | None, given: Mapping[str, Any] | None, *, defaults: bool = True
) -> dict[str, Any]:
    """The request's chat parameters: the settings' temperature / top_p / max_tokens where
    the face gives none (``defaults``), then the face's own; None values are left out."""
    merged: dict[str, Any] = {}
    if defaults and settings is not None:
        merged.update({name: getattr(settings, name) for name in SAMPLING_SETTINGS})
    merged.update(given or {})
    return {k: v for k, v in merged.items() if v is not None}


def check_tools(offered: Toolbox | None, capabilities: Capabilities) -> None:
    """Refuse tools, before anything is sent, to a model whose card says it cannot call them
    (an unknown or silent card leaves it to the server)."""
    if not offered or capabilities.function_calling:
        return
    from ..tools.core import ToolSelectionError

    raise ToolSelectionError(
        f"{capabilities.model} cannot call tools (function_calling is false in its model "
        "card or Mistral.model_capabilities). Ask without tools, or choose a model that can "
        "call them."
    )


def reasoning_effort(
    chosen: dict[str, Any], settings: Mistral | None, defaults: bool, capabilities: Capabilities
) -> str | None:
    """Keep ``reasoning_effort`` in ``chosen`` (the face's, else the setting's) only for a
    model whose card says it reasons: servers and models that do not reason refuse the field.
    Returns a note when the face asked for it and it was left out."""
    effort = chosen.pop("reasoning_effort", None)
    asked = effort is not None
    if effort is None and defaults and settings is not None:
        effort = settings.reasoning_effort
    if effort is None:
        return None
    if capabilities.reasoning:
        chosen["reasoning_effort"] = effort
        return None
    if not asked:
        return None
    why = "says it does not" if capabilities.said("reasoning") else "does not say it does"
    return (
        f"reasoning effort not sent: {capabilities.model} is not a reasoning model (the "
        f"server's card {why})"
    )


def figure_items(figures: Sequence[Figure], redactor: Redactor | None) -> list[ContextItem]:
    """Figures described in words, as context items ranked with what the question names."""
    return [
        ContextItem(
            KIND_NAMED,
            f"figure:{figure.label}",
            f"{figure.label} (figure)",
            redactor.redact(figure.description()) if redactor else figure.description(),
            priority_for(KIND_NAMED, rank),
        )
        for rank, figure in enumerate(figures)
    ]


def figure_note(described: Sequence[Figure], capabilities: Capabilities) -> str:
    """What the user is told when named figures went as words."""
    labels = ", ".join(f.label for f in described)
    if not capabilities.vision:
        if capabilities.said("vision"):
            why = f"{capabilities.model} cannot see images"
        else:
            why = (
                f"the server does not say {capabilities.model} can see images "
                "(Mistral.model_capabilities can declare it)"
            )
        return (
            f"{labels}: {why}, so the model got a description (size, title); a model with "
            "vision would see the figure itself"
        )
    problems = "; ".join(f"{f.label}: {f.problem}" for f in described if f.problem)
    return f"{labels} sent as a description ({problems or 'no room left in the window'})"


def offer_tools(toolbox: Toolbox | None, params: dict[str, Any]) -> Toolbox | None:
    """Put the tools' specs and a checked ``tool_choice`` into ``params``; the toolbox if
    it offers any tool. A ``tool_choice`` with an empty toolbox is refused; without a
    toolbox (None) ``params`` are the caller's as they are (``apply(tools=[...])``)."""
    if toolbox is None:
        return None
    from ..tools.core import ToolSelectionError, check_tool_choice

    choice = params.get("tool_choice")
    if not toolbox:
        if choice is not None:
            raise ToolSelectionError(
                f"--tool-choice {choice} needs tools to choose from: add --tools."
            )
        params.pop("tool_choice", None)
        return None
    params["tools"] = toolbox.to_wire()
    params["tool_choice"] = check_tool_choice(choice, toolbox)
    if params["tool_choice"] is None:
        del params["tool_choice"]
    return toolbox


def context_budget(settings: Mistral, *, tools: bool, override: int | None = None) -> int:
    """Tokens of notebook context: the face's ``override``, else the setting (smaller with
    tools: the model pulls the rest)."""
    if override is not None:
        return override
    if tools:
        return min(settings.context_budget, settings.tools_context_budget)
    return settings.context_budget


def prepare(
    question: str,
    *,
    model: str,
    target: WireTarget,
    params: Mapping[str, Any] | None = None,
    settings: Mistral | None = None,
    defaults: bool = True,
    items: Sequence[ContextItem] = (),
    conversation: Conversation | None = None,
    budget: int | None = None,
    history_budget: int | None = None,
    toolbox: Toolbox | None = None,
    kind: Kind = ASK,
    error_count: int | None = None,
    namespace: Mapping[str, Any] | None = None,
    describe: Callable[[object, str], str] | None = None,
    redactor: Redactor | None = None,
    system: str | None = SYSTEM_PROMPT,
    stream: bool = True,
    capabilities: Capabilities | None = None,
    figures: Sequence[Figure] = (),
    notes: Sequence[str] = (),
    instructions: Sequence[Instructions] = (),
) -> PreparedRequest:
    """Turn a question into the request to send.

    ``kind``: ``ask`` sends ``question``; ``explain`` / ``fix`` send the engine's own
    question about the error of cell ``error_count`` (``question`` is ignored). ``{name}``
    placeholders are expanded from ``namespace`` (with ``describe``), then the question is
    redacted with ``redactor``. ``items`` (context from a shell or a notebook document) are
    packed into the system message within ``budget`` tokens (default: the settings', less
    with tools) and what is left of the model's window. ``conversation`` gives the earlier
    turns (within ``history_budget``). ``params`` are the face's chat parameters; the
    settings fill in temperature, top_p, max_tokens and reasoning_effort unless ``defaults``
    is off. ``system=None`` sends no system message (``apply`` without ``system=``): then no
    context is packed either. ``stream``: the body asks for a streamed reply.

    ``capabilities`` (from the server's model card; conservative defaults when None) bound
    everything by the model's window less ``max_tokens``, refuse tools to a model that cannot
    call them (:class:`~mistral_magic.tools.core.ToolSelectionError`), keep
    ``reasoning_effort`` for reasoning models only, and decide what becomes of ``figures``
    the question names: image chunks of the question for a model with vision (counted by
    their estimate), a description in the context otherwise. ``notes`` are the face's own
    lines for the user (they come back in :attr:`PreparedRequest.notes`). ``instructions`` (the
    project's, :mod:`.instructions`) follow the system prompt, before the context.
    """
    caps = capabilities or ModelCatalog().capabilities(model)
    # Tokens are counted as the model behind the name (an alias's card names it): its
    # tokenizer, when mistral-common ships it.
    counted = caps.canonical or model
    put = _asked(question, kind, error_count, redactor)
    if kind != ASK:
        question = error_question(kind, error_count)
    expanded: list[str] = []
    if namespace is not None and describe is not None:
        question, expanded = expand_placeholders(question, namespace, describe)
    if redactor is not None:
        question = redactor.redact(question)
    # Undecodable text (lone surrogates, which JSON from the browser may carry) is escaped:
    # one behaviour for counting, caching and sending, in every face.
    question = printable(question)
    chosen = chat_params(settings, params, defaults=defaults)
    notes = [*notes, *[n for n in [reasoning_effort(chosen, settings, defaults, caps)] if n]]
    offered = offer_tools(toolbox, chosen)
    check_tools(offered, caps)
    if system == SYSTEM_PROMPT:
        system = system_prompt(tools=bool(offered))
    if system is not None and instructions:
        system = f"{system}{_CONTEXT_SEPARATOR}{instructions_block(instructions)}"
    if budget is None:
        budget = context_budget(settings, tools=bool(offered)) if settings is not None else 0
    if history_budget is None:
        history_budget = settings.history_budget if settings is not None else 0

    # The window less the reply bounds everything: images, earlier turns, then context.
    # (Counted only when something is to fit: apply() plans thousands of bare requests.)
    turns = conversation is not None and bool(conversation.snapshot())
    room = 0
    if figures or turns or (items and system is not None):
        reply_room = chosen.get("max_tokens") or 0
        bare = [*([{"role": "system", "content": system}] if system is not None else [])]
        asked_text = {"role": "user", "content": question}
        ceiling = caps.window - reply_room - _HEADINGS_MARGIN
        bound = None
        if not figures and not turns and not chosen.get("tools"):
            bound = request_tokens_at_most([*bare, asked_text], counted)
        if bound is not None and bound + budget <= ceiling:
            # the room left is at least the budget, and only the context uses it (no
            # images, no earlier turns): the budget is what the count would decide, and the
            # tokenizer is not needed (context.budget: *Bounds without a tokenizer*)
            room = budget
        else:
            fixed = count_request_tokens([*bare, asked_text], counted, chosen.get("tools"))
            room = max(0, ceiling - fixed)
    shown, described = _split_figures(figures, caps, room)
    image_tokens = sum(f.tokens for f in shown)
    room -= image_tokens
    if described:
        notes.append(figure_note(described, caps))
        items = [*figure_items(described, redactor), *items]
    # When both budgets do not fit, each gets its share of the room (a small window must not
    # go all to earlier turns, nor all to the notebook); context takes what turns leave.
    history_room = min(history_budget, room)
    wanted = history_budget + (budget if items and system is not None else 0)
    if wanted > room > 0:
        history_room = room * history_budget // wanted
    history = conversation.messages(history_room, counted) if turns else []
    if history:
        room = max(0, room - count_request_tokens(history, counted))
    content: Any = question
    if shown:
        content = [{"type": "text", "text": question}, *(f.chunk() for f in shown)]
    asked = {"role": "user", "content": content}
    packed: Packed | None = None
    if system is None:
        messages = [*history, asked]
    else:
        packed = _pack(items, counted, min(budget, room))
        text = system
        if packed is not None and packed.included:
            text = f"{system}{_CONTEXT_SEPARATOR}{render_context_block(packed.included)}"
        messages = [{"role": "system", "content": text}, *history, asked]
    return PreparedRequest(
        prompt=question,
        model=model,
        messages=messages,
        params=chosen,
        body=wire_body(messages, chosen, model, target, stream=stream),
        target=target,
        kind=kind,
        packed=packed,
        context_note=omitted_note(packed) if packed else "",
        expanded=expanded,
        toolbox=offered,
        capabilities=caps,
        figures=list(shown),
        described=list(described),
        image_tokens=image_tokens,
        notes=notes,
        asked=put,
        instructions=[i.source for i in instructions] if system is not None else [],
    )


def _asked(question: str, kind: Kind, count: int | None, redactor: Redactor | None) -> str:
    """The question in a reply's provenance: as put (redacted, then cut), or which error."""
    if kind != ASK:
        return f"{kind} the error" + (f" in In[{count}]" if count is not None else "")
    # Redacted whole before it is cut (a secret across the cut goes whole); without a
    # redactor (apply's rows, maybe long documents) only the start is looked at.
    text = redactor.redact(question) if redactor is not None else question[: ASKED_CHARS * 4]
    text = " ".join(text.split())
    return text if len(text) <= ASKED_CHARS else text[: ASKED_CHARS - 1] + "…"


def _split_figures(
    figures: Sequence[Figure], caps: Capabilities, room: int
) -> tuple[list[Figure], list[Figure]]:
    """(sent as images, described in words): images only to a model with vision, readable,
    and while they fit the room left in the window."""
    if not caps.vision:
        return [], list(figures)
    shown: list[Figure] = []
    described: list[Figure] = []
    for figure in figures:
        if figure.sendable and figure.tokens <= room:
            shown.append(figure)
            room -= figure.tokens
        else:
            described.append(figure)
    return shown, described


def _pack(items: Sequence[ContextItem], model: str, allowed: int) -> Packed | None:
    """The context that fits ``allowed`` tokens (the budget, within what is left of the
    model's window after the instructions, the earlier turns, the question, the tools, the
    images and the reply)."""
    if not items:
        return None
    allowed = max(0, allowed)
    # The blank line joining the instructions and the context block is part of the block
    # (by its bound first: if everything fits that, the tokenizer is not needed).
    packed = pack_whole(items, allowed - tokens_at_most(_CONTEXT_SEPARATOR, model), model=model)
    if packed is None:
        packed = pack(items, max(0, allowed - count_tokens(_CONTEXT_SEPARATOR, model)), model=model)
    packed.budget = allowed
    return packed


def prepare_inline(
    ctx: InlineContext,
    *,
    fim: bool,
    model: str,
    target: WireTarget,
    settings: Mistral,
    redactor: Redactor | None = None,
    capabilities: Capabilities | None = None,
) -> PreparedRequest:
    """The request for ghost text at the cursor (see :mod:`mistral_magic.engine.inline`):
    fill-in-the-middle when ``fim`` (Codestral), else a compact chat question to ``model``
    whose answer :class:`~mistral_magic.engine.inline.InsertionCut` cuts to the insertion.
    Short (``Mistral.inline_max_tokens``), streamed, redacted then clipped to the settings'
    budgets; the temperature is 0 (the same code asks for the same completion).

    A chat model whose card says it reasons (``capabilities``) is asked for the least
    thinking there is (``reasoning_effort: "none"``) and gets :data:`~mistral_magic.engine.
    inline.THINKING_ROOM` more tokens, for a model that thinks anyway: its thinking is never
    inserted (only the answer's text is), and one that thinks past the bound gets a status
    saying so (the server's relay)."""
    from .inline import THINKING_ROOM, chat_question, fim_prompt

    budgets = {
        "prefix_chars": settings.inline_prefix_chars,
        "suffix_chars": settings.inline_suffix_chars,
        "redactor": redactor,
    }
    params = {"max_tokens": settings.inline_max_tokens, "temperature": 0.0}
    if not fim:
        question = chat_question(ctx, **budgets)
        if capabilities is not None and capabilities.reasoning:
            params["reasoning_effort"] = "none"
            params["max_tokens"] = settings.inline_max_tokens + THINKING_ROOM
        return prepare(
            question,
            model=model,
            target=target,
            params=params,
            defaults=False,
            system=INLINE_SYSTEM,
            stream=True,
            capabilities=capabilities,
        )
    prompt, suffix = fim_prompt(ctx, **budgets)
    return PreparedRequest(
        prompt=prompt,
        model=model,
        messages=[],
        params=params,
        body=build_fim_body(prompt, suffix, params, model=model, stream=True),
        target=target,
        endpoint="fim",
        fim=(prompt, suffix),
    )
