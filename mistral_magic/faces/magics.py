"""``%%mistral`` (the cell is the question) and ``%mistral`` (subcommands, or a one-line
question). Argument parsing -> the session's request (``engine.prepare``) -> streamed display
-> code offered as a new cell. ``%mistral explain|fix`` ask the same way about an error.

A face: it imports no other face. ``%mistral chat`` opens the chat panel through the
``open_chat`` callable :mod:`mistral_magic.extension` hands over."""

from __future__ import annotations

import argparse
import contextlib
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class, no_var_expand
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from ..engine.failures import REMEMBERED_ERRORS
from ..engine.prompts import EXPLAIN, FIX
from ..engine.provenance import FACE_MAGIC, METADATA_KEY, for_cell
from ..engine.usage import format_cost
from ..session import ALL_SOURCES, Session
from .cell_insert import cell_number, tag_next_input
from .hints import for_notebook
from .render import (
    StreamingDisplay,
    ThinkingDisplay,
    ToolCallDisplay,
    extract_code_blocks,
    in_notebook,
    python_cell,
    show_markdown,
    show_problem,
)

if TYPE_CHECKING:
    from ..engine.prepare import PreparedRequest

# The kernel never sees the Jupyter server's requests: the notebook page passes their count
# along after a run (engine.usage.InlineUsageReport); until it has, say where it is.
INLINE_USAGE_NOTE = (
    "Inline completions (ghost text in notebook cells) are asked by the Jupyter server, not "
    "by this kernel: their requests, tokens and estimated cost since the server started are "
    "in the Mistral sidebar (under its header) and in the tooltip of the Mistral item of the "
    "status bar; the JupyterLab / Notebook 7 page passes them to this kernel after a cell "
    "runs, and from then on they are shown here too."
)

HELP = """\
**mistral-magic** — ask Mistral about this notebook.

```
%%mistral [options]          the rest of the cell is your question
%mistral [options] question  a one-line question, exactly as typed
%mistral ask question        the same, when it starts with a subcommand's name
%mistral help | config | models | reset | usage | tools
%mistral explain [n] | fix [n]  explain / fix the last error (or cell n's)
%mistral errors on|off        Explain / Fix buttons under new tracebacks
%mistral chat                 a chat panel (also mistral_magic.chat())
%mistral cache info | clear   the response cache
%mistral audit                which cells hold AI-written code, and where it came from
%mistral replay n             send the exact request behind In[n]'s answer again
```

Options: `-m/--model ID`, `-t/--temperature T`, `--max-tokens N`, `--top-p P`, `--seed N`,
`--reasoning-effort LEVEL` (reasoning models only),
`--json` (JSON reply, parsed and returned), `--no-context`, `--context cells,vars,error`,
`--budget TOKENS`, `-o/--out VAR` (store the reply), `--no-insert`, `--new` (outside the
conversation), `--dry-run` (show the exact request and its cost; send nothing),
`--tools NAMES` (tools the model may call: names, `notebook` for the built-in notebook tools,
`all`, `none`; define your own with `from mistral_magic import tool`),
`--tool-choice auto|any|none|NAME`, `--cache` (answer a repeated question from the cache),
`--map DATA` (the cell is a template applied to each item of DATA, e.g. `df.text`; with
`--concurrency N`, `--batch` for Mistral's Batch API, `--json`, `--cache`).

Options go before the question. A question that starts with a subcommand's name is still a
question unless it fits the subcommand (`%mistral usage of pd.cut` asks; `%mistral usage`
shows usage).

`{name}` in a question inserts a description of variable `name`; every other brace is sent
as written (`{{name}}` too); `{name}` inside backticks stays literal.
Settings: `%config Mistral` lists them, e.g. `%config Mistral.temperature = 0.2`.
Key: the `MISTRAL_API_KEY` environment variable. Server: `MISTRAL_BASE_URL`.
"""


@magics_class
class MistralMagics(Magics):
    def __init__(
        self, shell: Any, session: Session, *, open_chat: Callable[[], Any] | None = None
    ) -> None:
        super().__init__(shell)
        self.session = session
        self.settings = session.settings
        self.open_chat = open_chat

    @magic_arguments()
    @argument("-m", "--model", help="model id (default: Mistral.model / MISTRAL_MODEL)")
    @argument("-t", "--temperature", type=float, help="sampling temperature, 0 to 1.5")
    @argument("--max-tokens", type=int, help="longest reply in tokens")
    @argument("--top-p", type=float, help="nucleus sampling, 0 to 1")
    @argument("--seed", type=int, help="random seed, for repeatable replies")
    @argument(
        "--reasoning-effort",
        metavar="LEVEL",
        help="how hard a reasoning model thinks: none, minimal, low, medium, high, xhigh "
        "(sent to reasoning models only)",
    )
    @argument("--json", action="store_true", help="ask for JSON; the parsed reply is returned")
    @argument("--no-context", action="store_true", help="send the question alone")
    @argument("--context", help="context sources, comma-separated: cells,vars,error")
    @argument("--budget", type=int, help="tokens of notebook context to send")
    @argument("-o", "--out", metavar="VAR", help="store the reply in variable VAR")
    @argument("--no-insert", action="store_true", help="do not offer code as a new cell")
    @argument("--new", action="store_true", help="ask outside the running conversation")
    @argument("--dry-run", action="store_true", help="show the request; send nothing")
    @argument(
        "--tools",
        metavar="NAMES",
        help="tools the model may call: names, 'notebook' (built-ins), 'all' or 'none'",
    )
    @argument("--tool-choice", metavar="CHOICE", help="auto, any, none or a tool's name")
    @argument("--map", metavar="DATA", help="apply the cell to each item of DATA (df.text, a list)")
    @argument("--concurrency", type=int, default=8, help="requests at once for --map")
    @argument("--batch", action="store_true", help="--map through Mistral's Batch API")
    @argument("--cache", action="store_true", help="answer from the response cache when it can")
    @argument("words", nargs="*", help="subcommand, or a one-line question")
    @line_cell_magic
    @no_var_expand  # `{name}` and `$x` are ours to read, never IPython's to evaluate
    def mistral(self, line: str, cell: str | None = None) -> Any:
        """Ask Mistral about this notebook. `%mistral help` for details."""
        from .magic_line import check_variable_name, read_line

        if cell is None:
            parsed = read_line(line, MistralMagics.mistral.parser)
            if parsed.subcommand is not None:
                return self._subcommand(parsed.subcommand, parsed.arguments)
            args = _parse_options(parsed.options)
            prompt = parsed.question
        else:
            args = _parse_options(line)
            if args.words:
                raise UsageError(
                    f"Unexpected words after %%mistral: {' '.join(args.words)!r}. Options go "
                    "on the %%mistral line; the question goes in the cell below it."
                )
            prompt = cell
        prompt = prompt.strip()
        if not prompt:
            raise UsageError(
                "Nothing to ask: write the question in the cell under %%mistral, or after "
                "%mistral on the same line. `%mistral help` lists the options."
            )
        if args.out is not None:
            check_variable_name(args.out, self.shell)
        if args.map is not None:
            return self._map(prompt, args)
        if args.batch:
            raise UsageError("--batch goes with --map: it sends one request per item.")
        return self._ask(prompt, args)

    def _map(self, template: str, args: Any) -> Any:
        from ..bulk.magic import run_map_magic

        if args.concurrency < 1:
            raise UsageError("--concurrency must be at least 1.")
        params = _params(args)
        params.pop("response_format", None)  # --json is apply's own json mode
        result = run_map_magic(
            self.shell,
            args.map,
            template,
            model=args.model,
            params=params,
            json=args.json,
            cache=args.cache,
            batch=args.batch,
            concurrency=args.concurrency,
        )
        if args.out:
            self.shell.user_ns[args.out] = result
            return None
        return result

    # -- asking ------------------------------------------------------------------------
    def _ask(self, prompt: str, args: Any) -> Any:
        params = _params(args)
        sources = _sources(args)
        remember = not args.new
        budget = args.budget
        if budget is not None and budget < 0:
            raise UsageError("--budget must be a number of tokens, 0 or more.")
        from ..tools.core import ToolSelectionError

        try:
            prepared = self.session.prepare(
                prompt,
                sources=sources,
                budget=budget,
                model=args.model,
                params=params,
                remember=remember,
                tools=args.tools,
            )
        except ToolSelectionError as error:
            raise UsageError(str(error)) from None
        if args.dry_run:
            show_markdown(self.shell, self._dry_run_report(prepared))
            if args.out:
                self.shell.user_ns[args.out] = prepared.body_copy()
            return None
        use_cache = args.cache and not prepared.toolbox
        completion = self._cached(prepared) if use_cache else None
        confirmed = False
        if completion is None:
            confirmed = self._cleared(prepared, args, remember)
            if not confirmed:
                return None
        display = StreamingDisplay(
            notebook=in_notebook(self.shell), code_language="json" if args.json else None
        )
        thinking = ThinkingDisplay(notebook=display.notebook, text_display=display)
        cached = completion is not None
        if completion is not None:
            footer = f"{completion.model} · from the response cache, no cost"
        else:
            self._tell(prepared)
            completion = self._stream_answer(prepared, display, thinking, confirmed=True)
            if completion is None:
                return None
            if use_cache and completion.finish_reason == "stop":
                self._store(prepared, completion)
            footer = self.session.footer(prepared, completion)
        code = None
        if self.settings.insert_code and not args.no_insert and not args.json:
            code = python_cell(extract_code_blocks(completion.content))
        record = self.session.record(
            prepared,
            completion,
            remember=remember,
            cached=cached,
            code=code,
            execution_count=cell_number(self.shell),
        )
        footer = self._offer_as_cell(code, record, footer, "code")
        display.finish(completion.content, footer, metadata={METADATA_KEY: record})
        thinking.finish()
        return self._result(completion.content, args)

    def _offer_as_cell(
        self, code: str | None, record: dict[str, Any], footer: str, what: str
    ) -> str:
        """Offer ``code`` as the next cell (not run), tagged with the reply's provenance;
        the footer says so."""
        if not code:
            return footer
        self.shell.set_next_input(code, replace=False)
        tag_next_input(self.session, code, {METADATA_KEY: for_cell(record, code)})
        return footer + f" · {what} added as a new cell below (not run)"

    def _cleared(self, prepared: PreparedRequest, args: Any, remember: bool) -> bool:
        """Whether ``prepared`` may go now: the cost guard's verdict, with a confirmation
        asked when it wants one. In a notebook the question is a widget that cannot be
        waited for: the request waits in it, and its Send button sends it (False here)."""
        from ..engine.guard import CONFIRM, REFUSE, limits_set

        if not limits_set(self.session.settings):  # the verdict is SEND: nothing to count
            return True
        check = self.session.check_cost(prepared)
        if check.verdict == REFUSE:
            show_problem(f"{check.reason} {budget_hint()}")
            return False
        if check.verdict != CONFIRM:
            return True
        if in_notebook(self.shell):
            self._confirm_in_widget(prepared, check, args, remember)
            return False
        from .confirm import ask_in_terminal

        if ask_in_terminal(check):
            return True
        show_problem("Not sent.")
        return False

    def _confirm_in_widget(
        self, prepared: PreparedRequest, check: Any, args: Any, remember: bool
    ) -> None:
        """Send / Cancel under the cell; Send streams the answer right there (a widget
        face from then on: code gets Insert buttons; ``-o`` is set when the answer ends)."""
        import ipywidgets as w

        from .confirm import confirm_row
        from .widgets import ReplyView, display_with_fallback, inserter_of

        box = w.VBox()
        count = cell_number(self.shell)
        out = args.out

        def finished(reply: ReplyView) -> None:
            if out and reply.status == "done":
                self.shell.user_ns[out] = reply.text

        def send() -> None:
            reply = ReplyView(
                self.session,
                inserter_of(self.session),
                on_finish=finished,
                face=FACE_MAGIC,
                execution_count=count,
            )
            box.children = (*box.children, reply)
            reply.show_notes(self.session.notices(prepared))
            reply.start(prepared, remember=remember, confirmed=True)

        box.children = (confirm_row(check, send),)
        self.session.remember(PENDING_CONFIRMATION, box)
        display_with_fallback(
            box,
            f"{check.reason} {check.summary()} Not sent: confirming needs a front end that "
            "shows widgets; or raise Mistral.confirm_above.",
        )

    def _tell(self, prepared: PreparedRequest) -> None:
        """One line each for what the user should know before the answer: a deprecated
        model, defaults assumed for it (once per model and session), a figure described in
        words, a setting left out."""
        for line in self.session.notices(prepared):
            print(f"ℹ️ Mistral: {line}", flush=True)

    def _stream_answer(
        self,
        prepared: Any,
        display: StreamingDisplay,
        thinking: ThinkingDisplay,
        *,
        confirmed: bool = False,
    ) -> Any:
        """The streamed reply, or None when it failed or was interrupted (the partial text
        stays on screen, marked, and a failure is explained in one paragraph). A reasoning
        model's thinking goes to ``thinking``, never into the text."""
        from ..api.errors import MistralError

        def notice(waiting: Any) -> None:  # e.g. a 429's Retry-After: say why nothing moves
            print(f"⏳ Mistral: {waiting.message}…", flush=True)

        try:
            on_tool = ToolCallDisplay(notebook=display.notebook, text_display=display)
            return self.session.answer(
                prepared,
                on_text=display.update,
                on_tool=on_tool,
                on_notice=notice,
                on_thinking=thinking.update,
                confirmed=confirmed,
            )
        except KeyboardInterrupt:
            display.finish_here("⏹ interrupted: the partial answer above is kept")
            thinking.finish()
        except MistralError as error:
            if display.started:
                display.finish_here("the answer above is incomplete")
            thinking.finish()
            show_problem(for_notebook(error))
        return None

    def _result(self, content: str, args: Any) -> Any:
        result: Any = content
        if args.json:
            try:
                result = json.loads(content)
            except ValueError:
                show_problem(
                    "The reply was meant to be JSON but does not parse; the text is kept "
                    "as a string."
                )
        if args.out:
            self.shell.user_ns[args.out] = result
        return result if args.json else None

    def _cached(self, prepared: PreparedRequest) -> Any:
        from ..engine.cache import CacheError

        try:
            with self.session.open_cache() as cache:
                return cache.get(prepared.cache_key)
        except CacheError as error:
            show_problem(f"The response cache is not usable ({error}); asking the model.")
            return None

    def _store(self, prepared: PreparedRequest, completion: Any) -> None:
        from ..engine.cache import CacheError

        try:
            with self.session.open_cache() as cache:
                cache.put(prepared.cache_key, completion)
        except CacheError as error:
            show_problem(f"The reply could not be cached ({error}).")

    def _dry_run_report(self, prepared: PreparedRequest) -> str:
        """The request exactly as it would be POSTed, its size and its cost."""
        from ..api.urls import display_url
        from ..engine.guard import SEND
        from .markdown_safe import fence_for, literal_inline

        count = "exact" if prepared.exact_count else "estimated"
        check = self.session.check_cost(prepared)
        price = check.price.describe() if check.price is not None else "no price in the table"
        body = json.dumps(prepared.readable_body(), indent=2, ensure_ascii=False)
        lines = [
            f"**Dry run** — nothing was sent. Model `{prepared.model}`, "
            f"**{prepared.prompt_tokens_text} prompt tokens** ({count}), "
            f"estimated cost at most {format_cost(check.worst_case)} (with a full "
            f"{check.reply_tokens:,}-token reply; {literal_inline(price)}).",
        ]
        if check.verdict != SEND:
            lines.append(literal_inline(check.reason))
        if prepared.instructions:
            sources = ", ".join(literal_inline(s) for s in prepared.instructions)
            lines.append(f"Instructions sent (in the system message): {sources}.")
        if prepared.packed is not None:
            labels = ", ".join(literal_inline(i.label) for i in prepared.packed.included) or "none"
            lines.append(f"Context sent: {labels}.")
        if prepared.context_note:
            lines.append(prepared.context_note)
        if prepared.figures:
            sent = ", ".join(
                f"{literal_inline(f.label)} ({f.width}×{f.height} px, ≈{f.tokens:,} tokens)"
                for f in prepared.figures
            )
            lines.append(f"Figures sent as images: {sent}.")
        lines += [literal_inline(note) + "." for note in prepared.notes]
        where = literal_inline(f"{display_url(prepared.target.base_url)}/chat/completions")
        lines.append(f"The body POSTed to {where} ({prepared.target.dialect} dialect):")
        fence = fence_for(body)
        lines.append(f"\n{fence}json\n{body}\n{fence}")
        return "\n\n".join(lines)

    # -- errors -------------------------------------------------------------------------
    def _explain(self, kind: str, rest: list[str]) -> None:
        """``%mistral explain [n]`` / ``%mistral fix [n]``: the answer streams under the
        running cell; a fix's corrected code goes to a new cell below."""
        count = parse_cell_number(rest)
        captured = self.session.errors.find(count)
        if captured is None:
            which = f"In[{count}] raised no error" if count is not None else "No error"
            show_problem(
                f"{which} that mistral-magic can explain (it remembers the last "
                f"{REMEMBERED_ERRORS} failing cells; interrupts and %mistral's own errors are "
                "not explained)."
            )
            return None
        from ..tools.core import ToolSelectionError

        try:
            prepared = self.session.prepare_error_help(
                captured, EXPLAIN if kind == EXPLAIN else FIX
            )
        except ToolSelectionError as error:
            raise UsageError(str(error)) from None
        if not self._cleared(prepared, _NO_OPTIONS, True):
            return None
        display = StreamingDisplay(notebook=in_notebook(self.shell))
        thinking = ThinkingDisplay(notebook=display.notebook, text_display=display)
        self._tell(prepared)
        completion = self._stream_answer(prepared, display, thinking, confirmed=True)
        if completion is None:
            return None
        footer = self.session.footer(prepared, completion)
        code = fixed_code(completion.content) if kind == FIX and self.settings.insert_code else None
        record = self.session.record(
            prepared,
            completion,
            remember=True,
            code=code,
            execution_count=cell_number(self.shell),
        )
        footer = self._offer_as_cell(code, record, footer, "corrected code")
        display.finish(completion.content, footer, metadata={METADATA_KEY: record})
        thinking.finish()
        return None

    def _error_help(self, rest: list[str]) -> None:
        """``%mistral errors on|off``: Explain / Fix buttons under new tracebacks."""
        if len(rest) > 1 or (rest and rest[0].lower() not in ("on", "off")):
            raise UsageError("Use `%mistral errors on` or `%mistral errors off`.")
        if rest:
            self.settings.error_help = rest[0].lower() == "on"
        self.session.errors.install()
        if self.settings.error_help:
            with contextlib.suppress(ImportError):  # pay the import now, not under a traceback
                import ipywidgets  # noqa: F401
            show_markdown(
                self.shell,
                "Error help is **on**: new tracebacks get **Explain** and **Fix** buttons "
                "(`%mistral errors off` to stop).",
            )
        else:
            show_markdown(
                self.shell,
                "Error help is **off**; `%mistral explain` and `%mistral fix` still work "
                "(`%mistral errors on` adds buttons under new tracebacks).",
            )

    # -- subcommands ------------------------------------------------------------------
    def _subcommand(self, name: str, rest: list[str]) -> Any:
        if name == "cache":
            from ..bulk.magic import cache_subcommand

            show_markdown(self.shell, cache_subcommand(rest[0] if rest else "info"))
            return None
        if name in (EXPLAIN, FIX):
            return self._explain(name, rest)
        if name == "errors":
            return self._error_help(rest)
        if name == "audit":
            return self._audit()
        if name == "replay":
            return self._replay(rest)
        if name == "chat":
            if self.open_chat is None:
                raise UsageError("The chat panel is not available here.")
            self.open_chat()
            return None
        if name == "help":
            show_markdown(self.shell, HELP)
        elif name == "config":
            values = self.settings.effective()
            values["dialect"] = self._dialect_in_effect()
            rows = ["| setting | value |", "|---|---|"]
            rows += [f"| {k} | {_cell_code(v)} |" for k, v in values.items()]
            show_markdown(self.shell, "\n".join(rows))
        elif name == "models":
            self._models()
        elif name == "reset":
            self.session.start_over()
            show_markdown(self.shell, "Started a new conversation.")
        elif name == "usage":
            from ..engine.usage import INLINE_USAGE

            inline = self.session.kept(INLINE_USAGE)
            note = inline.summary() if inline is not None else INLINE_USAGE_NOTE
            show_markdown(self.shell, self.session.ledger.summary_markdown() + "\n\n" + note)
        elif name == "tools":
            self._tools()
        return None

    # -- provenance ---------------------------------------------------------------------
    def _audit(self) -> None:
        """``%mistral audit``: the cells holding AI-written code, where each came from."""
        from ..engine.audit import audit, cells_of, read_notebook
        from ..engine.instructions import kernel_notebook_path
        from .cell_insert import live_notebook

        namespace = self.shell.user_ns
        history = namespace.get("In") or []
        live = live_notebook(self.session)
        cells, source = None, ""
        if live is not None:
            cells = cells_of(live)
            name = str(live.get("path") or "").rsplit("/", 1)[-1]
            source = f"the notebook {name} as it is open".replace("  ", " ")
        else:
            path = kernel_notebook_path(namespace)
            if path is not None and path.suffix == ".ipynb" and path.is_file():
                cells, source = read_notebook(path)
        report = audit(cells, self.session.answers.all(), history, source=source)
        show_markdown(self.shell, audit_markdown(report))

    def _replay(self, rest: list[str]) -> None:
        """``%mistral replay N``: the exact request behind In[N]'s answer, again: from the
        response cache when it has it (free, identical), else sent to the model."""
        from dataclasses import replace

        count = parse_cell_number(rest)
        if count is None:
            raise UsageError(
                "Which answer? `%mistral replay 7` sends the request behind In[7]'s answer again."
            )
        answer = self.session.answers.for_cell(count)
        if answer is None:
            show_problem(
                f"No answer of this kernel came from In[{count}]. Replay re-sends requests "
                "this kernel made (it keeps the last few in memory); a notebook keeps only "
                "their SHA-256 (body_sha256 in the answer's metadata), never the request."
            )
            return None
        prepared = replace(answer.prepared, tool_events=[], tool_note="", sent_sha256="")
        original = answer.provenance
        completion = self._cached(prepared) if not prepared.toolbox else None
        cached = completion is not None
        display = StreamingDisplay(notebook=in_notebook(self.shell))
        thinking = ThinkingDisplay(notebook=display.notebook, text_display=display)
        if completion is not None:
            footer = "from the response cache, no cost"
        else:
            if not self._cleared(prepared, _NO_OPTIONS, False):
                return None
            self._tell(prepared)
            completion = self._stream_answer(prepared, display, thinking, confirmed=True)
            if completion is None:
                return None
            footer = self.session.footer(prepared, completion)
        record = self.session.record(
            prepared,
            completion,
            remember=False,
            cached=cached,
            execution_count=cell_number(self.shell),
        )
        record["replay_of"] = count
        same_body = record["body_sha256"] == original.get("body_sha256")
        same_reply = record["reply_sha256"] == original.get("reply_sha256")
        notes = [
            f"replay of In[{count}]",
            "the same request" if same_body else "the request differs (the server changed)",
            "the same reply" if same_reply else "a different reply",
        ]
        display.finish(
            completion.content, f"{' · '.join(notes)} · {footer}", metadata={METADATA_KEY: record}
        )
        thinking.finish()
        return None

    def _tools(self) -> None:
        from ..tools.core import registry
        from .markdown_safe import literal_inline

        rows = ["| tool | kind | description |", "|---|---|---|"]
        builtins = self.session.notebook_tools().tools()
        for found in [*builtins, *registry.all()]:
            kind = "notebook" if found.builtin else ("asks first" if found.confirm else "yours")
            about = found.description.split("\n")[0]
            rows.append(f"| {_cell_code(found.name)} | {kind} | {literal_inline(about)} |")
        rows.append("\nUse them with `%%mistral --tools notebook` (or names, or `all`).")
        show_markdown(self.shell, "\n".join(rows))

    def _dialect_in_effect(self) -> str:
        """The wire dialect and why ("openai (from /models: owned_by vllm)")."""
        from ..api.errors import MistralError

        try:
            with self.session.client() as client:
                return str(client.resolve_dialect())
        except MistralError as error:
            return f"unknown ({error})"

    def _models(self) -> None:
        """``%mistral models``: what the server's cards say each model can do (asked again
        each time: the user wants the list as it is now; the capabilities the requests use
        are refreshed with it)."""
        from ..api.errors import MistralError
        from ..api.urls import display_url

        try:
            with self.session.client() as client:
                catalog = client.model_catalog(refresh=True)
                if catalog.unavailable:  # say why, with the api's full explanation
                    client.list_models()
        except MistralError as error:
            show_problem(for_notebook(error))
            return
        if catalog.unavailable:
            show_problem(f"The server's model list could not be read: {catalog.unavailable}.")
            return
        table = models_table(catalog, self.settings.model, self.settings.model_capabilities)
        where = f"From `GET {display_url(client.base_url)}/models`."
        legend = f" {MODELS_LEGEND}" if "| ? |" in table else ""
        show_markdown(self.shell, f"{table}\n\n{where}{legend}")


MODELS_LEGEND = (
    "*?* = the server's card does not say (vLLM lists only the window); "
    "`Mistral.model_capabilities` declares it."
)


def warm_imports() -> None:
    """Import what the magic's first question goes through and ``%load_ext`` does not (for
    the session's background warm-up)."""
    from ..tools import core as _tools  # noqa: F401
    from . import magic_line as _line  # noqa: F401
    from . import markdown_safe as _safe  # noqa: F401
    from . import markdown_stream as _stream  # noqa: F401


def models_table(catalog: Any, current: str, declared: Any = None) -> str:
    """One row per model (a card and the cards of its aliases): id, aliases, window, tools,
    vision, FIM, reasoning, deprecation. Every id and date the server sent is escaped."""
    from ..api.models import parse_date
    from .markdown_safe import literal_inline

    rows = [
        "| model | aliases | window | tools | vision | FIM | reasoning | deprecation | in use |",
        "|---|---|---:|---|---|---|---|---|---|",
    ]
    for primary, names in model_groups(catalog):
        caps = catalog.capabilities(primary, declared)

        def said(name: str, value: bool, caps: Any = caps) -> str:
            return ("yes" if value else "no") if caps.said(name) else "?"

        deprecation = ""
        if caps.deprecation:
            when = parse_date(caps.deprecation)
            deprecation = when.isoformat() if when else literal_inline(caps.deprecation[:40])
            if caps.replacement:
                deprecation += f" → {literal_inline(caps.replacement)}"
        window = f"{caps.window:,}" if caps.said("max_context_length") else "?"
        aliases = ", ".join(literal_inline(n) for n in names if n != primary)
        rows.append(
            f"| {literal_inline(primary)} | {aliases} | {window} "
            f"| {said('function_calling', caps.function_calling)} "
            f"| {said('vision', caps.vision)} | {said('completion_fim', caps.completion_fim)} "
            f"| {said('reasoning', caps.reasoning)} | {deprecation} "
            f"| {'**current**' if current in names else ''} |"
        )
    return "\n".join(rows)


def model_groups(catalog: Any) -> list[tuple[str, list[str]]]:
    """The cards grouped by the model behind them (La Plateforme lists every alias as a card
    of its own, listing the other names): (the card named as the model, every name), by name."""
    parent: dict[str, str] = {}

    def root(name: str) -> str:
        while parent.setdefault(name, name) != name:
            parent[name] = parent[parent[name]]
            name = parent[name]
        return name

    for card in catalog:
        for alias in card.aliases:
            parent[root(alias)] = root(card.id)
    members: dict[str, set[str]] = {}
    for name in list(parent):
        members.setdefault(root(name), set()).add(name)
    for card in catalog:
        members.setdefault(root(card.id), set()).add(card.id)
    groups = []
    for names in members.values():
        cards = [c for c in catalog if c.id in names]
        if not cards:
            continue
        named = [c.id for c in cards if str(c.raw.get("name") or "") == c.id]
        primary = min(named or [c.id for c in cards])
        groups.append((primary, [primary, *sorted(names - {primary})]))
    return sorted(groups)


# What the explain/fix subcommands pass where the magic passes its options.
_NO_OPTIONS = argparse.Namespace(out=None)
#: Where the session keeps the newest request waiting for a confirmation (scripts, tests).
PENDING_CONFIRMATION = "pending_confirmation"


def budget_hint() -> str:
    return (
        "(`%config Mistral.session_budget = …` sets the budget; `%mistral usage` shows the "
        "spending.)"
    )


def audit_markdown(report: Any) -> str:
    """The audit as a Markdown table (plain columns in a terminal); every value escaped."""
    from .markdown_safe import literal_inline

    rows = report.rows
    where = f" Read from {literal_inline(report.source)}." if report.source else ""
    if not rows:
        lines = [f"No cell holds code inserted by Mistral.{where}"]
    else:
        edited = f" ({report.edited} edited since insertion)" if report.edited else ""
        plural = "s" if len(rows) != 1 else ""
        lines = [
            f"**AI-written code:** {len(rows)} cell{plural}{edited}.{where}",
            "",
            "| cell | code | from | model | when | question |",
            "|---|---|---|---|---|---|",
        ]
        for row in rows:
            record = row.provenance
            face = str(record.get("face", ""))
            asked = record.get("asked_in")
            source = f"{face} · In[{asked}]" if asked is not None else face
            if record.get("step") is not None:  # an agent task's cell: the step that wrote it
                source += f" · step {record.get('step')}"
            question = str(record.get("question", ""))
            if len(question) > 80:
                question = question[:79] + "…"
            status = f"**{row.status}**" if row.status != "as inserted" else row.status
            cells = [row.where, status, literal_inline(source)]
            cells += [_cell_code(record.get("model", "")), row.when, literal_inline(question)]
            lines.append("| " + " | ".join(cells) + " |")  # each cell's pipes are escaped
    lines.extend(f"\n{literal_inline(note)}" for note in report.notes)
    return "\n".join(lines)


def _cell_code(value: object) -> str:
    """``value`` as code in a Markdown table cell (its pipes escaped, as GFM wants)."""
    from .markdown_safe import code_span

    return code_span(str(value)).replace("|", "\\|")


def _parse_options(options: str) -> Any:
    """The options part of a magic's line, parsed; a bad one is one clear UsageError."""
    try:
        return parse_argstring(MistralMagics.mistral, options)
    except ValueError as error:  # shlex: an unclosed quote
        raise UsageError(
            f"Could not read the options {options.strip()!r}: an unclosed quote ({error}). "
            "Quote option values with matching ' or \"."
        ) from None


def _params(args: Any) -> dict[str, Any]:
    if args.temperature is not None and not 0 <= args.temperature <= 1.5:
        raise UsageError(f"--temperature must be between 0 and 1.5, not {args.temperature}.")
    if args.top_p is not None and not 0 < args.top_p <= 1:
        raise UsageError(f"--top-p must be above 0 and at most 1, not {args.top_p}.")
    if args.max_tokens is not None and args.max_tokens < 1:
        raise UsageError(f"--max-tokens must be at least 1, not {args.max_tokens}.")
    params: dict[str, Any] = {
        "temperature": args.temperature,
        "top_p": args.top_p,
        "max_tokens": args.max_tokens,
        "random_seed": args.seed,
        "reasoning_effort": _reasoning_effort(args.reasoning_effort),
        "tool_choice": args.tool_choice,
    }
    if args.json:
        params["response_format"] = {"type": "json_object"}
    return {k: v for k, v in params.items() if v is not None}


def _reasoning_effort(value: str | None) -> str | None:
    from ..config import REASONING_EFFORTS

    if value is None:
        return None
    if value.lower() not in REASONING_EFFORTS:
        raise UsageError(
            f"--reasoning-effort must be one of {', '.join(REASONING_EFFORTS)}, not {value!r}."
        )
    return value.lower()


def parse_cell_number(rest: list[str]) -> int | None:
    if not rest:
        return None
    text = rest[0].strip().removeprefix("In[").removesuffix("]")
    if len(rest) > 1 or not text.isdigit():
        raise UsageError(
            f"Expected a cell number such as `%mistral explain 12`, not {' '.join(rest)!r}."
        )
    return int(text)


def fixed_code(reply: str) -> str | None:
    """The corrected code a fix ends with: its last Python block."""
    blocks = [b for b in extract_code_blocks(reply) if b.is_python and b.code.strip()]
    return blocks[-1].code.strip("\n") if blocks else None


def _sources(args: Any) -> tuple[str, ...]:
    if args.no_context:
        return ()
    if not args.context:
        return ALL_SOURCES
    chosen = tuple(s.strip() for s in args.context.split(",") if s.strip())
    unknown = [s for s in chosen if s not in ALL_SOURCES]
    if unknown:
        raise UsageError(
            f"Unknown context source(s) {', '.join(unknown)}: choose from "
            f"{', '.join(ALL_SOURCES)} (comma-separated), or --no-context."
        )
    return chosen


def keep_question_marks(lines: list[str]) -> list[str]:
    """IPython reads a line ending in ``?`` as a help request; for ``%mistral`` it is a
    question. Such lines are turned into the magic call before IPython's help syntax sees
    them."""
    if lines and lines[0].lstrip().startswith("%%"):
        return lines
    out = []
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("%mistral ") and stripped.endswith("?"):
            indent = line[: len(line) - len(line.lstrip())]
            argument = stripped[len("%mistral ") :]
            line = f"{indent}get_ipython().run_line_magic('mistral', {argument!r})\n"
        out.append(line)
    return out
