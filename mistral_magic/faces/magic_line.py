"""How a ``%mistral`` line reads: options first, then a subcommand or the question.

The question is everything after the options, exactly as typed: quotes, apostrophes,
braces and words that look like options (``what does -t mean?``) belong to it. Only the
options part is split like a command line. A question that starts with a subcommand's name
is a question unless it fits that subcommand's syntax (``%mistral usage`` shows usage,
``%mistral usage of pd.cut`` asks); ``%mistral ask …`` always asks.
"""

from __future__ import annotations

import argparse
import builtins
import keyword
import re
from dataclasses import dataclass
from typing import Any

from IPython.core.error import UsageError

ASK = "ask"
_CELL_NUMBER = r"(In\[)?\d+\]?"
#: Each subcommand and the one argument it may take (None: no argument).
SUBCOMMANDS: dict[str, str | None] = {
    "help": None,
    "config": None,
    "models": None,
    "reset": None,
    "usage": None,
    "tools": None,
    "chat": None,
    "explain": _CELL_NUMBER,
    "fix": _CELL_NUMBER,
    "errors": "on|off",
    "cache": "info|clear",
    "audit": None,
    "replay": _CELL_NUMBER,
}
# One shell word: unquoted characters, backslash escapes, '…' or "…" (both closed).
_WORD = re.compile(r"""(?:[^\s'"\\]|\\.|'[^']*'|"(?:[^"\\]|\\.)*")+""", re.DOTALL)
_NUMBER = re.compile(r"-\d+(\.\d*)?|-\.\d+")
# Names IPython keeps in the namespace: _, __, ___, _i, _ii, _iii, _5, _i5, _ih, _oh, _dh.
_IPYTHON_NAME = re.compile(r"_{1,3}|_i{1,3}|_i?\d+|_[iod]h|__\w+__")


@dataclass(frozen=True)
class MagicLine:
    options: str  # the options part, to parse with the magic's argument parser
    subcommand: str | None  # set when the line is a subcommand
    arguments: list[str]  # the subcommand's arguments
    question: str  # the question, verbatim (empty for a subcommand)


def read_line(line: str, parser: argparse.ArgumentParser) -> MagicLine:
    """Split a line magic's ``line`` into options and a subcommand or a question."""
    end = options_end(line, parser)
    options, rest = line[:end], line[end:].strip()
    first, _, after = rest.partition(" ")
    if first == ASK:  # options may follow it too: `%mistral ask --no-context help`
        more = options_end(after, parser)
        return MagicLine(f"{options} {after[:more]}", None, [], after[more:].strip())
    words = rest.split()
    if not options.strip() and words and is_subcommand(words):
        return MagicLine(options, words[0], words[1:], "")
    return MagicLine(options, None, [], rest)


def options_end(line: str, parser: argparse.ArgumentParser) -> int:
    """Where the options at the start of ``line`` end (an option's value included)."""
    actions = getattr(parser, "_option_string_actions", {})
    position = 0
    waiting: str | None = None  # the option whose value comes next
    while True:
        match = _WORD.match(line, _skip_spaces(line, position))
        if match is None:  # the end, or a quote that is not closed
            if waiting is None:
                return position
            rest = line[position:].strip()
            raise UsageError(
                f"The value of {waiting} has an unclosed quote: {rest[:40]!r}."
                if rest
                else f"The option {waiting} needs a value."
            )
        word = match.group(0).strip("'\"")
        if waiting is not None:
            waiting = None
        elif word == "--":
            return match.end()
        elif not word.startswith("-") or word == "-" or _NUMBER.fullmatch(word):
            return position  # the question starts here
        elif _takes_value(word, actions):
            waiting = word
        position = match.end()


def _skip_spaces(line: str, position: int) -> int:
    while position < len(line) and line[position].isspace():
        position += 1
    return position


def _takes_value(word: str, actions: dict[str, Any]) -> bool:
    """Whether option ``word`` takes the next word as its value (``--opt=v`` and ``-t0.5``
    carry theirs; an unknown option is left for the parser to report)."""
    if "=" in word:
        return False
    action = actions.get(word)
    if action is None and word.startswith("--"):
        matches = {a for name, a in actions.items() if name.startswith(word)}
        action = matches.pop() if len(matches) == 1 else None
    if action is None:
        return False
    return action.nargs != 0


def is_subcommand(words: list[str]) -> bool:
    """``words`` fit a subcommand's syntax (its name, then at most its one argument)."""
    name, rest = words[0], words[1:]
    if name not in SUBCOMMANDS:
        return False
    pattern = SUBCOMMANDS[name]
    return not rest or bool(pattern and len(rest) == 1 and re.fullmatch(pattern, rest[0]))


def check_variable_name(name: str, shell: Any) -> None:
    """``-o NAME`` must be a plain variable name that does not replace a builtin or one of
    IPython's own names (``get_ipython``, ``In``, ``_``, ``_i3``…): every later cell
    relies on those."""
    if not name.isidentifier() or keyword.iskeyword(name):
        raise UsageError(f"-o needs a Python variable name such as reply, not {name!r}.")
    hidden = getattr(shell, "user_ns_hidden", {}) or {}
    if name in hidden or _IPYTHON_NAME.fullmatch(name):
        raise UsageError(f"-o {name} would replace IPython's own {name}: choose another name.")
    if hasattr(builtins, name):
        raise UsageError(f"-o {name} would hide Python's built-in {name}: choose another name.")
