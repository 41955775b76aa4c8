"""One :class:`Session` per kernel shell (the Jupyter server keeps one per user): the state
every face of that shell shares.

It holds the settings, the model clients, the conversation, the usage ledger, the response
cache's settings, the tools the model may call, the errors the notebook raised, and a lock
for what the chat panel's background thread changes. Every face gets it from one place,
:func:`session_for`; the faces never reach into each other for it. The request itself is
built by :func:`mistral_magic.engine.prepare.prepare` (this module only gathers what goes
into it: the shell's namespace and context, the tools) and answered by
:func:`mistral_magic.engine.answer.answer`.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from .config import Mistral
from .engine.clients import AsyncClients, Clients
from .engine.conversation import Conversation
from .engine.prepare import PreparedRequest, WireTarget, prepare
from .engine.prompts import ASK, Kind, error_question
from .engine.provenance import FACE_MAGIC, Answer, AnswerLog, provenance
from .engine.usage import UsageLedger

if TYPE_CHECKING:
    from .api.client import MistralClient
    from .api.models import Capabilities
    from .api.retry import OnNotice
    from .api.types import Completion, Usage
    from .context.figures import Figure, FigureLog
    from .context.items import ContextItem
    from .context.redact import Redactor
    from .engine.cache import ResponseCache
    from .engine.failures import CapturedError, ErrorLog
    from .engine.guard import CostCheck
    from .engine.instructions import Instructions
    from .engine.tool_loop import Confirm, OnTool
    from .tools.core import Toolbox
    from .tools.notebook import NotebookTools

ALL_SOURCES = ("cells", "vars", "error")
#: Seconds the warm-up waits for the first answer before it loads the tokenizer anyway.
TOKENIZER_WARM_UP_AFTER = 2.0
TextCallback = Callable[[str], None]
T = TypeVar("T")


class Session:
    """The state of one shell (or one server user) behind every face."""

    def __init__(
        self, settings: Mistral, shell: Any = None, clients: Clients | AsyncClients | None = None
    ) -> None:
        self.settings = settings
        self.shell = shell
        # A kernel's own clients; a server user's session shares the server's one client.
        self.clients = clients if clients is not None else Clients(settings)
        self.conversation = Conversation()
        #: A model's other names (from its card), by the name its replies came under.
        self.price_names: dict[str, tuple[str, ...]] = {}

        def price(model: str) -> tuple[float, float] | None:
            return self.settings.price(model, self.price_names.get(model, ()))

        self.ledger = UsageLedger(price)
        #: Inline completions (ghost text) apart: many small requests, counted on their own.
        self.inline_usage = UsageLedger(price)
        #: This session's recent answers: their provenance, and the requests replay re-sends.
        self.answers = AnswerLog()
        #: Held while a reply's outcome is recorded (usage and conversation together), so
        #: the chat panel's thread and the main thread never interleave their updates.
        self.lock = threading.RLock()
        self._notebook_tools: NotebookTools | None = None
        self._errors: ErrorLog | None = None
        self._figures: FigureLog | None = None
        self._kept: dict[str, Any] = {}
        self._told: set[str] = set()  # notices said once per session (a model's deprecation)
        self._answered = threading.Event()  # set by the first recorded answer (the warm-up)

    # -- clients ---------------------------------------------------------------------------
    @contextmanager
    def client(self) -> Iterator[MistralClient]:
        """A client for one request (or one streamed reply): a settings change meanwhile
        never closes it under the reply."""
        clients = self.clients
        assert isinstance(clients, Clients), "a server session answers on the event loop"
        with clients.lease() as client:
            yield client

    def target(self) -> WireTarget:
        """Where this kernel's requests go, and in which dialect."""
        clients = self.clients
        assert isinstance(clients, Clients), "a server's target is awaited (MistralService)"
        return clients.target()

    def capabilities(self, model: str | None = None) -> Capabilities:
        """What ``model`` (default: the setting) can do, from the server's card (read once
        per base URL, with the dialect) and ``Mistral.model_capabilities``."""
        clients = self.clients
        assert isinstance(clients, Clients), "a server's capabilities are awaited"
        return clients.capabilities(model or self.settings.model)

    def start_over(self) -> None:
        """A new conversation, after which notices said once (a model's deprecation) are
        said again: ``%mistral reset`` is the user's fresh start."""
        self.conversation.reset()
        with self.lock:
            self._told.clear()

    def notices(self, prepared: PreparedRequest) -> list[str]:
        """What to tell the user before ``prepared`` is sent: its notes (every time), and
        once per model and session its deprecation or the defaults assumed for it."""
        lines: list[str] = []
        caps = prepared.capabilities
        if caps is not None:
            for line in (caps.deprecation_notice(), caps.assumption_notice()):
                if line is not None:
                    with self.lock:
                        fresh = line not in self._told
                        self._told.add(line)
                    if fresh:
                        lines.append(line)
        return [*lines, *prepared.notes]

    def warm_up(self, *also: Callable[[], object]) -> threading.Thread:
        """Pay the one-off costs before the first question: here, the imports a question
        goes through (the connection layer, the context collectors, the answer loop and
        ``also``: what the faces add of theirs); in the background, what waits on the
        network or can wait (the connection pool, the server's dialect from ``GET /models``,
        asked once per base URL, then the tokenizer)."""

        # The imports (~70 ms of CPU) are paid here, not in a background thread: a notebook
        # run top to bottom sends its first question the moment %load_ext returns, and a
        # thread importing under the GIL then only slowed both cells — %load_ext's own reply
        # waited on it, and the question waited for the rest (issue #12, measured with
        # benchmarks/bench_first_answer.py in fresh kernels: the first answer added
        # ~110 ms over a warm one, ~20 ms with the imports here; %load_ext stays under its
        # 150 ms target, bench_magics.py). What the thread does below mostly waits on I/O.
        try:
            from .api.client import import_connection_layer

            import_connection_layer()
            _import_question_path()
            for step in also:
                step()
        except Exception:  # only means the first question imports them itself
            pass

        def work() -> None:
            try:
                with self.client() as client:
                    _ = client.http  # the pool (an https server's CA bundle: GIL released)
                    client.resolve_dialect()  # GET /models, once per base URL
            except Exception:  # a warm-up that fails only means the first call is slower
                pass
            # The tokenizer (~25 ms of CPU) last, once the first answer is in or nobody
            # asked for a while: a question whose context fits by far needs no count
            # (context.budget: *Bounds without a tokenizer*), and a load racing it under the
            # GIL would only slow it down; later ones (earlier turns to fit) will count.
            self._answered.wait(TOKENIZER_WARM_UP_AFTER)
            try:
                from .context.budget import warm_up

                # the tokenizer that will count the setting's model: an alias's dated model
                # (its card, from the GET /models above)
                warm_up(self.capabilities().canonical or self.settings.model)
            except Exception:  # a warm-up that fails only means the first count is slower
                pass

        thread = threading.Thread(target=work, name="mistral-magic-warm-up", daemon=True)
        thread.start()
        return thread

    def close(self) -> None:
        for kept in self._kept.values():
            close = getattr(kept, "close", None)
            if callable(close):
                close()
        self._kept.clear()
        if self._errors is not None:
            self._errors.uninstall()
        if self._figures is not None:
            self._figures.uninstall()
        if isinstance(self.clients, Clients):
            self.clients.close()

    # -- what the faces keep per session ----------------------------------------------------
    def keep(self, name: str, make: Callable[[], T]) -> T:
        """The object a face keeps for this session under ``name`` (made on first use,
        closed with the session): e.g. the cell inserter of the widget faces."""
        with self.lock:
            if name not in self._kept:
                self._kept[name] = make()
            return self._kept[name]

    def remember(self, name: str, value: Any) -> None:
        """Keep ``value`` under ``name`` (replacing the previous one)."""
        with self.lock:
            self._kept[name] = value

    def kept(self, name: str) -> Any:
        with self.lock:
            return self._kept.get(name)

    # -- errors ------------------------------------------------------------------------------
    @property
    def errors(self) -> ErrorLog:
        """The failing cells of this shell (the hook is registered by the extension)."""
        if self._errors is None:
            from .engine.failures import ErrorLog

            self._errors = ErrorLog(self.shell)
        return self._errors

    @property
    def figures(self) -> FigureLog:
        """The figures this shell's cells showed (the hook is installed by the extension)."""
        if self._figures is None:
            from .context.figures import FigureLog

            self._figures = FigureLog(self.shell)
        return self._figures

    def named_figures(self, question: str) -> list[Figure]:
        """The figures ``question`` names (``In[7]``, "the plot above"), if any."""
        if self.shell is None:
            return []
        from .context.figures import figures_named

        if not figures_named(question).any:
            return []
        from .context.history import raw_inputs, running_count

        return self.figures.named(
            question, raw_inputs(self.shell), running=running_count(self.shell)
        )

    # -- requests ----------------------------------------------------------------------------
    def redactor(self) -> Redactor:
        from .context.redact import Redactor

        key = os.environ.get("MISTRAL_API_KEY")
        return Redactor([key] if key else [])

    def instructions(self) -> list[Instructions]:
        """``Mistral.instructions`` and the AGENTS.md nearest to the kernel's notebook."""
        from .engine.instructions import kernel_notebook_folder, load_instructions

        namespace = getattr(self.shell, "user_ns", None) or {}
        return load_instructions(
            self.settings,
            folder=kernel_notebook_folder(namespace) if self.shell is not None else None,
            redactor=self.redactor(),
        )

    def collect(self, prompt: str, sources: Collection[str]) -> list[ContextItem]:
        if self.shell is None or not sources:
            return []
        from .context.kernel import collect

        return collect(self.shell, prompt, sources=tuple(sources), redactor=self.redactor())

    def prepare(
        self,
        prompt: str = "",
        *,
        sources: Collection[str] = ALL_SOURCES,
        budget: int | None = None,
        model: str | None = None,
        params: dict[str, Any] | None = None,
        remember: bool = True,
        extra_items: Collection[ContextItem] = (),
        tools: str | Sequence[str] | None = None,
        kind: Kind = ASK,
        error_count: int | None = None,
    ) -> PreparedRequest:
        """The request for ``prompt`` from this shell: its namespace for ``{name}``, the
        context ``sources`` collect (with ``extra_items``, e.g. an error's context, first),
        the conversation unless not ``remember``, the tools named (``--tools`` words;
        default ``Mistral.tools``). Built by :func:`~mistral_magic.engine.prepare.prepare`."""
        from .context.kernel import GuardedDescriber, shell_redactor, visible_variables

        redactor = self.redactor()
        # {name} sees the user's variables only (not In, Out, _i3…), described under the same
        # guard as the context (a __repr__ that sleeps cannot hold the question)
        visible = visible_variables(self.shell) if self.shell is not None else {}
        describer = GuardedDescriber(shell_redactor(self.shell, redactor) if visible else redactor)
        # The question decides what is collected (the cells and variables it names).
        question = prompt if kind == ASK else error_question(kind, error_count)
        model = model or self.settings.model
        target = self.target()  # the dialect: GET /models, once per base URL
        capabilities = self.capabilities(model)  # the cards of that same GET /models
        notes: list[str] = []
        if tools is None:  # Mistral.tools: left out (not refused) for a model without tools
            tools = self.settings.tools
            if tools and not capabilities.function_calling:
                notes.append(f"tools not offered: {model} cannot call tools (Mistral.tools)")
                tools = None
        toolbox = self.toolbox(tools)
        figures = self.named_figures(question) if "cells" in sources else []
        return prepare(
            question,
            model=model,
            target=target,
            capabilities=capabilities,
            figures=figures,
            notes=notes,
            params=params,
            settings=self.settings,
            items=_merged(extra_items, self.collect(question, sources)),
            conversation=self.conversation if remember else None,
            budget=budget,
            toolbox=toolbox,
            kind=kind,
            error_count=error_count,
            namespace=visible,
            describe=describer,
            redactor=redactor,
            instructions=self.instructions(),
        )

    def prepare_error_help(self, captured: CapturedError, kind: Kind) -> PreparedRequest:
        """The request explaining or fixing ``captured``: its context first, then the
        notebook's cells and variables."""
        from .engine.failures import error_items

        items = error_items(self.shell, captured, self.redactor())
        return self.prepare(
            sources=("cells", "vars"),
            extra_items=items,
            kind=kind,
            error_count=captured.count,
        )

    # -- tools -------------------------------------------------------------------------------
    def notebook_tools(self) -> NotebookTools:
        """The built-in notebook tools bound to this shell (made once)."""
        if self._notebook_tools is None:
            from .tools.notebook import NotebookTools

            self._notebook_tools = NotebookTools(self.shell, self.redactor())
        return self._notebook_tools

    def toolbox(self, names: str | Sequence[str] | None) -> Toolbox:
        """The tools named by ``--tools`` words: tool names, ``notebook``, ``all``, ``none``."""
        from .tools.core import Toolbox, select, split_names

        if not split_names(names):
            return Toolbox()
        builtins = self.notebook_tools().tools() if self.shell is not None else []
        return select(names, builtins)

    # -- answers -----------------------------------------------------------------------------
    def check_cost(self, prepared: PreparedRequest) -> CostCheck:
        """What ``prepared`` holds and may cost, and whether the settings let it go
        (``Mistral.session_budget``) or want it confirmed first (``Mistral.confirm_above``)."""
        from .engine.guard import check_cost

        spent, unpriced = self.spent()
        return check_cost(prepared, self.settings, spent=spent, unpriced=unpriced)

    def check_budget(self, prepared: PreparedRequest) -> CostCheck:
        """``Mistral.session_budget`` alone, for a request that cannot be confirmed (inline
        completion's ghost text): refused past it, else sent."""
        from .engine.guard import check_cost

        spent, unpriced = self.spent()
        return check_cost(prepared, self.settings, spent=spent, unpriced=unpriced, ask=False)

    def spent(self) -> tuple[float, list[str]]:
        """USD this session spent — questions, tool rounds, agent steps, ``apply`` and inline
        completions alike: all count toward ``Mistral.session_budget`` — and the models it
        used that have no price."""
        spent, unpriced = self.ledger.spent()
        inline, inline_unpriced = self.inline_usage.spent()
        return spent + inline, list(dict.fromkeys([*unpriced, *inline_unpriced]))

    def answer(
        self,
        prepared: PreparedRequest,
        on_text: TextCallback,
        on_tool: OnTool | None = None,
        confirm: Confirm | None = None,
        on_notice: OnNotice | None = None,
        on_thinking: TextCallback | None = None,
        *,
        confirmed: bool = False,
    ) -> Completion:
        """Send ``prepared`` and stream the reply (see :func:`engine.answer.answer`); the
        tools run here, asking ``confirm`` (default: ``input()``) before ``confirm=True``
        tools. ``on_notice`` hears what the client waits for before a retry ("rate
        limited, retrying in 3 s").

        Nothing is sent (:class:`~.engine.guard.CostRefused`) when the cost guard refuses
        the request, or wants it confirmed and the face did not say it was (``confirmed``);
        with tools, each further round is checked against the budget too."""
        from .engine.answer import answer
        from .engine.guard import CONFIRM, REFUSE, CostRefused, limits_set, round_guard
        from .engine.tool_loop import LocalTools, ToolLimits

        spent = 0.0  # (only a budget's round guard reads it, and a budget sets limits)
        if limits_set(self.settings):  # else the verdict is SEND: nothing to count
            check = self.check_cost(prepared)
            if check.verdict == REFUSE or (check.verdict == CONFIRM and not confirmed):
                raise CostRefused(check.reason)
            spent = check.spent

        executor = None
        if prepared.toolbox:
            from .tools.notebook import tool_redactor

            executor = LocalTools(
                prepared.toolbox,
                confirm=confirm,
                redactor=tool_redactor(self.shell, self.redactor()),
            )
        limits = ToolLimits(
            max_rounds=self.settings.max_tool_rounds,
            max_seconds=self.settings.max_tool_seconds,
            result_chars=self.settings.tool_result_chars,
        )
        with self.client() as client:
            return answer(
                client,
                prepared,
                on_text,
                executor=executor,
                limits=limits,
                on_tool=on_tool,
                on_notice=on_notice,
                on_thinking=on_thinking,
                guard=round_guard(
                    self.settings,
                    prepared.model,
                    spent,
                    window=prepared.window,
                    also=prepared.other_names,
                ),
            )

    def footer(self, prepared: PreparedRequest, completion: Completion) -> str:
        from .engine.answer import footer

        names = (prepared.model, *prepared.other_names)
        return footer(prepared, completion, lambda model: self.settings.price(model, names))

    def record(
        self,
        prepared: PreparedRequest,
        completion: Completion,
        *,
        remember: bool,
        face: str = FACE_MAGIC,
        cached: bool = False,
        code: str | None = None,
        execution_count: int | None = None,
    ) -> dict[str, Any]:
        """Count the usage (unless the reply came from the cache) and, if ``remember``, add
        the turn to the conversation (both at once, under the session's lock: the chat panel
        records from its own thread). Returns the reply's provenance, which the session's
        answer log keeps with the request (``%mistral audit``, ``%mistral replay``);
        ``code`` is what the face offers as a new cell, ``execution_count`` the cell that
        asked."""
        model = completion.model or prepared.model
        names = self._price_names(prepared, model)
        with self.lock:
            if not cached:
                self._count(prepared, model, completion.usage)
            if remember and completion.content:
                self.conversation.add(prepared.prompt, completion.content)
        # the server's count corrects our estimates for this model (tokenizers has its lock);
        # a cached reply's count is of a request already counted
        if not cached:
            prepared.calibrate(completion.usage)
        record = provenance(
            prepared,
            completion,
            face=face,
            price=self.settings.price_info(model, names),
            sent_sha256="" if cached else prepared.sent_sha256,
            cached=cached,
            code=code,
            asked_in=execution_count,
        )
        self.answers.add(Answer(record, prepared, execution_count, [code] if code else []))
        self._answered.set()  # the warm-up's tokenizer may load now
        return record

    def record_usage(self, prepared: PreparedRequest, model: str, usage: Usage | None) -> None:
        """Count usage that makes no answer (a tool loop or an agent task ended early: its
        rounds were paid all the same). Not a calibration of our token counts: the usage
        may be the sum of several requests."""
        with self.lock:
            self._count(prepared, model, usage)

    @staticmethod
    def _price_names(prepared: PreparedRequest, model: str) -> tuple[str, ...]:
        return tuple(n for n in (prepared.model, *prepared.other_names) if n != model)

    def _count(self, prepared: PreparedRequest, model: str, usage: Usage | None) -> None:
        # The ledger prices what it counted under the name the server answered with: the
        # card's other names price it when that name is not in the table. (Under self.lock.)
        self.price_names[model] = self._price_names(prepared, model)
        self.ledger.record(model, usage)

    def open_cache(self) -> ResponseCache:
        """The response cache at ``Mistral.cache_dir`` (raises ``CacheError``)."""
        from .engine.cache import ResponseCache

        return ResponseCache.from_settings(self.settings)


def _merged(extra: Collection[ContextItem], collected: list[ContextItem]) -> list[ContextItem]:
    keys = {item.key for item in extra}
    return [*extra, *(item for item in collected if item.key not in keys)]


def _import_question_path() -> None:
    """Import what a kernel question goes through beyond the extension itself: the context
    collectors (their redaction patterns are compiled on import), the answer and tool loop,
    the cost guard (asked before every send)."""
    from .context import kernel as _kernel  # noqa: F401
    from .engine import answer as _answer  # noqa: F401
    from .engine import guard as _guard  # noqa: F401


# ------------------------------------------------------------------------------------------
# One session per shell

_SESSIONS: weakref.WeakKeyDictionary[Any, Session] = weakref.WeakKeyDictionary()


_SESSIONS_LOCK = threading.Lock()


def session_for(shell: Any, *, create: bool = True) -> Session | None:
    """The session of ``shell``: made (with its ``Mistral`` settings registered on the shell,
    so ``%config Mistral.…`` reaches them) on first use, unless not ``create``."""
    with _SESSIONS_LOCK:
        session = _SESSIONS.get(shell)
        if session is None and create:
            settings = Mistral(parent=shell)
            shell.configurables.append(settings)
            session = _SESSIONS[shell] = Session(settings, shell)
        return session


def current_session(*, create: bool = False) -> Session | None:
    """The session of the running IPython shell, if there is a shell (and a session)."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is a dependency
        return None
    shell = get_ipython()
    return session_for(shell, create=create) if shell is not None else None


def end_session(shell: Any) -> Session | None:
    """Forget ``shell``'s session and close it (``%unload_ext``); its settings leave the
    shell's configurables."""
    with _SESSIONS_LOCK:
        session = _SESSIONS.pop(shell, None)
    if session is not None:
        session.close()
        if session.settings in getattr(shell, "configurables", []):
            shell.configurables.remove(session.settings)
    return session
