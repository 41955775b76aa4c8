"""``%%mistral`` (the cell is the question) and ``%mistral`` (subcommands, or a one-line
question). Argument parsing -> Assistant -> streamed display -> code offered as a new cell."""

from __future__ import annotations

import json
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class, no_var_expand
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from ..config import Mistral
from ..engine.usage import estimate_cost, format_cost
from ..session import ALL_SOURCES, Assistant
from .hints import for_notebook
from .render import (
    StreamingDisplay,
    ToolCallDisplay,
    extract_code_blocks,
    in_notebook,
    python_cell,
    show_markdown,
    show_problem,
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
```

Options: `-m/--model ID`, `-t/--temperature T`, `--max-tokens N`, `--top-p P`, `--seed N`,
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
    def __init__(self, shell: Any, settings: Mistral) -> None:
        super().__init__(shell)
        self.settings = settings
        self.assistant = Assistant(settings, shell)

    @magic_arguments()
    @argument("-m", "--model", help="model id (default: Mistral.model / MISTRAL_MODEL)")
    @argument("-t", "--temperature", type=float, help="sampling temperature, 0 to 1.5")
    @argument("--max-tokens", type=int, help="longest reply in tokens")
    @argument("--top-p", type=float, help="nucleus sampling, 0 to 1")
    @argument("--seed", type=int, help="random seed, for repeatable replies")
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
            prepared = self.assistant.prepare(
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
            return None
        display = StreamingDisplay(
            notebook=in_notebook(self.shell), code_language="json" if args.json else None
        )
        use_cache = args.cache and not prepared.toolbox
        completion = self._cached(prepared) if use_cache else None
        if completion is not None:
            if remember and completion.content:
                self.assistant.conversation.add(prepared.prompt, completion.content)
            footer = f"{completion.model} · from the response cache, no cost"
        else:
            completion = self._stream_answer(prepared, display)
            if completion is None:
                return None
            self.assistant.record(prepared, completion, remember=remember)
            if use_cache and completion.finish_reason == "stop":
                self._store(prepared, completion)
            footer = self.assistant.footer(prepared, completion)
        if self.settings.insert_code and not args.no_insert and not args.json:
            code = python_cell(extract_code_blocks(completion.content))
            if code:
                self.shell.set_next_input(code, replace=False)
                footer += " · code added as a new cell below (not run)"
        display.finish(completion.content, footer)
        return self._result(completion.content, args)

    def _stream_answer(self, prepared: Any, display: StreamingDisplay) -> Any:
        """The streamed reply, or None when it failed or was interrupted (the partial text
        stays on screen, marked, and a failure is explained in one paragraph)."""
        from ..api.errors import MistralError

        def notice(waiting: Any) -> None:  # e.g. a 429's Retry-After: say why nothing moves
            print(f"⏳ Mistral: {waiting.message}…", flush=True)

        try:
            on_tool = ToolCallDisplay(notebook=display.notebook, text_display=display)
            return self.assistant.answer(
                prepared, on_text=display.update, on_tool=on_tool, on_notice=notice
            )
        except KeyboardInterrupt:
            display.finish_here("⏹ interrupted: the partial answer above is kept")
        except MistralError as error:
            if display.started:
                display.finish_here("the answer above is incomplete")
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

    def _cache_key(self, prepared: Any) -> str:
        from ..api.request import build_chat_body
        from ..engine.cache import request_key

        client = self.assistant.client
        body = build_chat_body(
            prepared.messages,
            prepared.params,
            model=prepared.model,
            dialect=client.dialect,
            stream=False,
        )
        return request_key(client.base_url, body)

    def _cached(self, prepared: Any) -> Any:
        from ..engine.cache import CacheError, ResponseCache

        try:
            with ResponseCache.from_settings(self.settings) as cache:
                return cache.get(self._cache_key(prepared))
        except CacheError as error:
            show_problem(f"The response cache is not usable ({error}); asking the model.")
            return None

    def _store(self, prepared: Any, completion: Any) -> None:
        from ..engine.cache import CacheError, ResponseCache

        try:
            with ResponseCache.from_settings(self.settings) as cache:
                cache.put(self._cache_key(prepared), completion)
        except CacheError as error:
            show_problem(f"The reply could not be cached ({error}).")

    def _dry_run_report(self, prepared: Any) -> str:
        from .markdown_safe import fence_for, literal_inline

        count = "exact" if prepared.exact_count else "estimated"
        max_out = prepared.params.get("max_tokens") or 0
        cost = estimate_cost(prepared.model, prepared.prompt_tokens, max_out, self.settings.price)
        body = json.dumps(
            {"model": prepared.model, "messages": prepared.messages, **prepared.params},
            indent=2,
            ensure_ascii=False,
        )
        lines = [
            f"**Dry run** — nothing was sent. Model `{prepared.model}`, "
            f"**{prepared.prompt_tokens:,} prompt tokens** ({count}), "
            f"estimated cost at most {format_cost(cost)} (with a full {max_out:,}-token reply).",
        ]
        if prepared.packed is not None:
            labels = ", ".join(literal_inline(i.label) for i in prepared.packed.included) or "none"
            lines.append(f"Context sent: {labels}.")
        if prepared.context_note:
            lines.append(prepared.context_note)
        fence = fence_for(body)
        lines.append(f"\n{fence}json\n{body}\n{fence}")
        return "\n\n".join(lines)

    # -- subcommands ------------------------------------------------------------------
    def _subcommand(self, name: str, rest: list[str]) -> Any:
        if name == "cache":
            from ..bulk.magic import cache_subcommand

            show_markdown(self.shell, cache_subcommand(rest[0] if rest else "info"))
            return None
        if name in ("explain", "fix", "errors"):
            from .tracebacks import run_subcommand

            return run_subcommand(self, name, rest)
        if name == "chat":
            from .widgets import chat

            chat()
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
            self.assistant.conversation.reset()
            show_markdown(self.shell, "Started a new conversation.")
        elif name == "usage":
            show_markdown(self.shell, self.assistant.ledger.summary_markdown())
        elif name == "tools":
            self._tools()
        return None

    def _tools(self) -> None:
        from ..tools.core import registry
        from .markdown_safe import literal_inline

        rows = ["| tool | kind | description |", "|---|---|---|"]
        builtins = self.assistant.notebook_tools().tools()
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
            return str(self.assistant.client.resolve_dialect())
        except MistralError as error:
            return f"unknown ({error})"

    def _models(self) -> None:
        from ..api.errors import MistralError
        from .markdown_safe import literal_inline

        try:
            models = self.assistant.client.list_models()
        except MistralError as error:
            show_problem(for_notebook(error))
            return
        current = self.settings.model
        rows = ["| model | context | notes |", "|---|---:|---|"]
        for m in sorted(models, key=lambda m: m.id):
            notes = []
            if m.id == current:
                notes.append("**current**")
            if m.deprecation:
                notes.append(f"deprecated {literal_inline(m.deprecation[:10])}")
            if m.capabilities.get("function_calling"):
                notes.append("tools")
            context = f"{m.max_context_length:,}" if m.max_context_length else ""
            rows.append(f"| {literal_inline(m.id)} | {context} | {', '.join(notes)} |")
        show_markdown(self.shell, "\n".join(rows))


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
        "tool_choice": args.tool_choice,
    }
    if args.json:
        params["response_format"] = {"type": "json_object"}
    return {k: v for k, v in params.items() if v is not None}


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


_LOADED: dict[int, MistralMagics] = {}


def loaded_assistant(shell: Any = None) -> Assistant | None:
    """The Assistant of ``shell`` (default: the running one) if the extension is loaded."""
    if shell is None:
        from IPython import get_ipython

        shell = get_ipython()
    magics = _LOADED.get(id(shell)) if shell is not None else None
    return magics.assistant if magics is not None else None


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


def load(shell: Any) -> MistralMagics:
    """Register the magics and the ``Mistral`` settings on ``shell`` (idempotent)."""
    if id(shell) in _LOADED:
        return _LOADED[id(shell)]
    settings = Mistral(parent=shell)
    shell.configurables.append(settings)
    magics = MistralMagics(shell, settings)
    shell.register_magics(magics)
    shell.input_transformers_cleanup.append(keep_question_marks)
    _LOADED[id(shell)] = magics
    from . import tracebacks

    tracebacks.install(shell, settings)  # remembers errors; buttons only with error_help
    magics.assistant.warm_up()
    return magics


def unload(shell: Any) -> None:
    magics = _LOADED.pop(id(shell), None)
    if magics is None:
        return
    magics.assistant.close()
    from . import cell_insert, tracebacks

    tracebacks.uninstall(shell)
    cell_insert.close_inserter(shell)
    if keep_question_marks in shell.input_transformers_cleanup:
        shell.input_transformers_cleanup.remove(keep_question_marks)
    if magics.settings in shell.configurables:
        shell.configurables.remove(magics.settings)
    for kind in ("line", "cell"):
        shell.magics_manager.magics[kind].pop("mistral", None)
