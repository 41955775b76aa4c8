"""Which tokenizer counts a model's tokens, loaded once; and how far estimates are off.

**Exact** counts are for the models whose tokenizer ships inside mistral-common
(:data:`MODEL_TOKENIZERS`: La Plateforme ids from mistral-common's own model table, the
open-weights names of the same models, and the aliases that never move, such as
``open-mistral-nemo``). The v3 SentencePiece model (Large 2407, Codestral 2405, Mixtral 8x22B)
is loaded with ``sentencepiece`` directly: importing ``mistral_common`` costs most of a second,
loading the file ~20 ms. The others (v1, v2, v7, Tekken) are loaded through mistral-common
itself, the first time such a model is counted (or warmed up).

**Estimates** are for everything else, ``*-latest`` aliases included (they move to new models
with new tokenizers): other Mistral ids are counted with v3, other names by characters, and both
are multiplied by a per-model factor learned from the ``prompt_tokens`` the server reports
(:func:`record_prompt_tokens`, called by the engine after each reply), so that the estimates of
a session converge on the server's own count. Shown with "≈" (:func:`format_token_count`).

Loading is thread-safe and happens at most once per file. At interpreter exit a load in progress
is waited for and no new one starts: a background warm-up thread killed inside the C++
tokenizer aborts the whole process (``terminate called without an active exception``).
"""

from __future__ import annotations

import atexit
import functools
import importlib.util
import json
import math
import os
import threading
from collections.abc import Sequence
from typing import Any

V1 = "tokenizer.model.v1"
V2 = "mistral_instruct_tokenizer_240216.model.v2"
V3 = "mistral_instruct_tokenizer_240323.model.v3"
V7 = "mistral_instruct_tokenizer_241114.model.v7"
V7_MULTIMODAL = "mistral_instruct_tokenizer_241114.model.v7m1"
TEKKEN = "tekken_240718.json"
TEKKEN_MULTIMODAL = "tekken_240911.json"

#: Model ids (lower case; a served name that contains one counts as that model) and the
#: tokenizer file mistral-common bundles for them.
MODEL_TOKENIZERS: dict[str, str] = {
    # La Plateforme ids, as mistral-common maps them (MODEL_NAME_TO_TOKENIZER_CLS)
    "mistral-medium-2312": V1,
    "mistral-tiny-2312": V2,
    "mistral-small-2312": V2,
    "mistral-small-2402": V2,
    "mistral-large-2402": V2,
    "mistral-large-2407": V3,
    "mistral-tiny-2407": V3,
    "open-mixtral-8x22b-2404": V3,
    "codestral-2405": V3,
    "codestral-mamba-2407": V3,
    "mistral-large-2411": V7,
    "pixtral-large-2411": V7_MULTIMODAL,
    "open-mistral-nemo-2407": TEKKEN,
    "ministral-8b-2410": TEKKEN,
    "mistral-small-2409": TEKKEN,
    "pixtral-12b-2409": TEKKEN_MULTIMODAL,
    # aliases with a single version behind them
    "open-mistral-nemo": TEKKEN,
    "open-mixtral-8x22b": V3,
    # open weights (Hugging Face names, vLLM's default served names)
    "mistral-large-instruct-2407": V3,
    "mistral-large-instruct-2411": V7,
    "pixtral-large-instruct-2411": V7_MULTIMODAL,
    "mistral-nemo-instruct-2407": TEKKEN,
    "ministral-8b-instruct-2410": TEKKEN,
    "mixtral-8x22b-instruct-v0.1": V3,
    "codestral-22b-v0.1": V3,
    "mamba-codestral-7b-v0.1": V3,
    "mistral-7b-instruct-v0.3": V3,
}
_MISTRAL_FAMILY_MARKERS = (
    "mistral",
    "mixtral",
    "codestral",
    "pixtral",
    "ministral",
    "magistral",
    "devstral",
    "voxtral",
)

#: Character-based estimate for models without a known tokenizer.
ESTIMATE_CHARS_PER_TOKEN = 3.2
#: No piece of these SentencePiece vocabularies is longer (checked against the files by the
#: tests); computing it means a pass over all 32,768 pieces.
_MAX_PIECE_CHARS = {V1: 16, V2: 18, V3: 18, V7: 18}
#: How long the interpreter waits at exit for a tokenizer load to finish.
EXIT_WAIT_SECONDS = 10.0


def _normalized(model: str) -> str:
    return model.strip().lower().rsplit("/", 1)[-1]


@functools.lru_cache(maxsize=256)
def tokenizer_file_for(model: str) -> str | None:
    """The bundled tokenizer file of ``model``, or None when its counts are estimates."""
    name = _normalized(model)
    if not name or name.endswith("-latest"):
        return None
    keys = [key for key in MODEL_TOKENIZERS if key in name]
    return MODEL_TOKENIZERS[max(keys, key=len)] if keys else None


def is_mistral_model(model: str) -> bool:
    lowered = model.lower()
    return any(marker in lowered for marker in _MISTRAL_FAMILY_MARKERS)


# --------------------------------------------------------------------------------------------
# Tokenizers


class Tokenizer:
    """One bundled tokenizer: raw text counts, and (except v3, whose chat layout the budget
    module reimplements) whole-request counts by mistral-common's own encoder."""

    file: str
    max_chars_per_token: int | None = None  # for cheap lower bounds; None if unknown

    def encode_count(self, text: str) -> int:
        raise NotImplementedError

    def count(self, text: str) -> int:
        """Tokens of ``text`` on its own (no special tokens)."""
        if not text:
            return 0
        try:
            return self.encode_count(text)
        except (RuntimeError, TypeError, UnicodeError):
            # a lone surrogate: the C++ side cannot take it; count it as it will be sent
            from mistral_magic.context.fit import printable

            return self.encode_count(printable(text))

    def count_request(self, messages: Sequence[dict[str, Any]], tools: Sequence[dict] | None):
        """Prompt tokens of a request in API shape, or None to use the v3 layout."""
        return None


class _SentencePieceV3(Tokenizer):
    def __init__(self, path: str) -> None:
        import sentencepiece

        self.file = V3
        self._processor = sentencepiece.SentencePieceProcessor(model_file=path)
        self.max_chars_per_token = _MAX_PIECE_CHARS.get(os.path.basename(path))
        if self.max_chars_per_token is None:  # another file than the one the table knows
            pieces = self._processor.id_to_piece(list(range(self._processor.vocab_size())))
            self.max_chars_per_token = max(map(len, pieces))

    def encode_count(self, text: str) -> int:
        return len(self._processor.encode(text))


class _MistralCommon(Tokenizer):
    def __init__(self, path: str) -> None:
        from mistral_common.protocol.instruct.validator import ValidationMode
        from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

        self.file = os.path.basename(path)
        self._tokenizer = MistralTokenizer.from_file(path, mode=ValidationMode.test)
        self._raw = self._tokenizer.instruct_tokenizer.tokenizer
        self.max_chars_per_token = _MAX_PIECE_CHARS.get(self.file)

    def encode_count(self, text: str) -> int:
        return len(self._raw.encode(text, bos=False, eos=False))

    def count_request(self, messages: Sequence[dict[str, Any]], tools: Sequence[dict] | None):
        from mistral_common.protocol.instruct.request import ChatCompletionRequest

        try:
            request = ChatCompletionRequest.from_openai(
                [_sendable(message) for message in messages], list(tools) if tools else None
            )
            return len(self._tokenizer.encode_chat_completion(request).tokens)
        except Exception:  # a layout mistral-common refuses: counted with the v3 layout
            return None


def _sendable(message: dict[str, Any]) -> dict[str, Any]:
    """A message as mistral-common's OpenAI reader takes it (text as sent, no extra keys)."""
    from mistral_magic.context.fit import printable

    kept = {k: v for k, v in message.items() if k in ("role", "content", "tool_calls")}
    if message.get("role") == "tool":
        kept["tool_call_id"] = message.get("tool_call_id")
    content = kept.get("content")
    if isinstance(content, str):
        kept["content"] = printable(content)
    calls = kept.get("tool_calls")
    if calls:
        kept["tool_calls"] = [
            {**call, "function": {**call["function"], "arguments": _arguments(call)}}
            for call in calls
        ]
    return kept


def _arguments(call: dict[str, Any]) -> str:
    arguments = (call.get("function") or {}).get("arguments")
    return arguments if isinstance(arguments, str) else json.dumps(arguments or {})


_load_lock = threading.Lock()
_loaded: dict[str, Tokenizer | None] = {}
_closing = False


def _data_dir() -> str | None:
    """mistral-common's bundled ``data`` folder, found without importing the package."""
    try:
        spec = importlib.util.find_spec("mistral_common")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = os.path.join(location, "data")
        if os.path.isdir(candidate):
            return candidate
    return None


def _path_of(file: str) -> str | None:
    folder = _data_dir()
    path = os.path.join(folder, file) if folder else None
    return path if path and os.path.isfile(path) else None


def available(file: str) -> bool:
    """Whether ``file`` can be loaded (without loading it)."""
    if file in _loaded:
        return _loaded[file] is not None
    if _path_of(file) is None:
        return False
    needed = "sentencepiece" if file == V3 else "mistral_common"
    try:
        return importlib.util.find_spec(needed) is not None
    except (ImportError, ValueError):
        return False


def load(file: str) -> Tokenizer | None:
    """The tokenizer of ``file`` (loaded once, thread-safe), or None if it cannot be."""
    if file in _loaded:
        return _loaded[file]
    with _load_lock:
        if file not in _loaded:
            if _closing:  # the interpreter is exiting: no C++ load may start now
                return None
            path = _path_of(file)
            try:
                if path is None:
                    tokenizer: Tokenizer | None = None
                elif file == V3:
                    tokenizer = _SentencePieceV3(path)
                else:
                    tokenizer = _MistralCommon(path)
            except Exception:  # missing/broken sentencepiece or mistral-common: estimates
                tokenizer = None
            _loaded[file] = tokenizer
    return _loaded[file]


def _stop_loading_at_exit() -> None:
    """Wait (bounded) for a load in progress, then let none start."""
    global _closing
    acquired = _load_lock.acquire(timeout=EXIT_WAIT_SECONDS)
    _closing = True
    if acquired:
        _load_lock.release()


atexit.register(_stop_loading_at_exit)


def exact_tokenizer(model: str) -> Tokenizer | None:
    """The tokenizer that counts ``model`` exactly, loaded, or None."""
    file = tokenizer_file_for(model)
    return load(file) if file is not None else None


def is_exact(model: str) -> bool:
    """True if counts for ``model`` are exact: its tokenizer ships with mistral-common and can
    be loaded here."""
    file = tokenizer_file_for(model)
    return file is not None and available(file)


def estimate_tokenizer(model: str) -> Tokenizer | None:
    """What estimates for a Mistral model without a bundled tokenizer count with (v3)."""
    return load(V3) if is_mistral_model(model) else None


def warm_up(model: str | None = None) -> bool:
    """Load what counting ``model`` will need, now (safe from a background thread); True if
    its counts are exact."""
    model = model or "mistral-large-2407"
    tokenizer = exact_tokenizer(model) or estimate_tokenizer(model)
    return tokenizer is not None and is_exact(model)


# --------------------------------------------------------------------------------------------
# Calibration of estimates


_calibration_lock = threading.Lock()
_calibration: dict[str, tuple[float, int]] = {}  # model -> (factor, replies seen)
#: Observed/estimated ratios outside this range are not a tokenizer's difference (a request
#: with images, usage summed over several requests): ignored.
_PLAUSIBLE_RATIO = (0.25, 4.0)


def calibration_factor(model: str) -> float:
    """What estimates for ``model`` are multiplied by (1.0 until a reply said otherwise)."""
    return _calibration.get(_normalized(model), (1.0, 0))[0]


def record_prompt_tokens(model: str, counted: int, actual: int) -> None:
    """The server reported ``actual`` prompt tokens for a request to ``model`` that was
    counted as ``counted`` (with the factor in effect then): correct later estimates.

    The first reply sets the factor; later ones move it by a shrinking step (a fifth at
    least), so it settles on the typical ratio. Exact models are left alone."""
    if counted <= 0 or actual <= 0 or is_exact(model):
        return
    ratio = actual / counted
    if not _PLAUSIBLE_RATIO[0] <= ratio <= _PLAUSIBLE_RATIO[1]:
        return
    key = _normalized(model)
    with _calibration_lock:
        factor, seen = _calibration.get(key, (1.0, 0))
        weight = max(1.0 / (seen + 1), 0.2)
        _calibration[key] = (factor * ratio**weight, seen + 1)


def calibrated(tokens: int, model: str) -> int:
    """An estimate of ``tokens`` corrected by the model's factor."""
    factor = calibration_factor(model)
    return tokens if factor == 1.0 else math.ceil(tokens * factor)


def format_token_count(tokens: int, exact: bool) -> str:
    """``"1,234"`` for an exact count, ``"≈1,234"`` for an estimate."""
    return f"{tokens:,}" if exact else f"≈{tokens:,}"
