"""Which models count exactly (the tokenizers bundled with mistral-common), calibrated
estimates for the rest, and a tokenizer that never crashes the interpreter or the request."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from mistral_magic.context import tokenizers
from mistral_magic.context.budget import count_request_tokens, count_tokens
from mistral_magic.context.tokenizers import (
    format_token_count,
    is_exact,
    record_prompt_tokens,
    tokenizer_file_for,
)

CONVERSATION = [
    {"role": "system", "content": "You are a careful data analyst. Answer briefly."},
    {"role": "user", "content": "Which region sold the most in March? Café numbers ☕ 12,5 %"},
    {"role": "assistant", "content": "The north, with 1,204 units."},
    {"role": "user", "content": "And in April?\n```python\nsales.groupby('region').sum()\n```"},
]


@pytest.mark.parametrize(
    ("model", "file"),
    [
        ("mistral-large-2407", tokenizers.V3),
        ("mistralai/Mistral-Large-Instruct-2407", tokenizers.V3),
        ("mistral-large-2411", tokenizers.V7),
        ("Mistral-Large-Instruct-2411", tokenizers.V7),
        ("pixtral-large-2411", tokenizers.V7_MULTIMODAL),
        ("open-mistral-nemo", tokenizers.TEKKEN),
        ("mistralai/Mistral-Nemo-Instruct-2407", tokenizers.TEKKEN),
        ("codestral-2405", tokenizers.V3),
        ("open-mixtral-8x22b", tokenizers.V3),
        ("mistral-small-2402", tokenizers.V2),
        ("mistral-medium-2312", tokenizers.V1),
        ("pixtral-12b-2409", tokenizers.TEKKEN_MULTIMODAL),
        ("mistral-large-latest", None),  # aliases that move to new models are estimates
        ("codestral-latest", None),
        ("mistral-small-2503", None),
        ("gpt-4o", None),
    ],
)
def test_models_map_to_the_tokenizers_bundled_with_mistral_common(model, file):
    assert tokenizer_file_for(model) == file
    assert is_exact(model) is (file is not None)


@pytest.mark.filterwarnings("ignore:.*from_model.*:FutureWarning")
@pytest.mark.parametrize(
    "model",
    ["mistral-large-2411", "open-mistral-nemo-2407", "mistral-small-2402", "pixtral-12b-2409"],
)
def test_exact_counts_of_other_tokenizers_equal_mistral_common(model):
    from mistral_common.protocol.instruct.request import ChatCompletionRequest
    from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

    reference = MistralTokenizer.from_model(model, strict=True)
    request = ChatCompletionRequest.from_openai(CONVERSATION)
    expected = len(reference.encode_chat_completion(request).tokens)
    assert count_request_tokens(CONVERSATION, model) == expected
    raw = reference.instruct_tokenizer.tokenizer
    text = CONVERSATION[3]["content"]
    assert count_tokens(text, model) == len(raw.encode(text, bos=False, eos=False))


def test_the_precomputed_longest_pieces_are_those_of_the_files():
    import sentencepiece

    for file, longest in tokenizers._MAX_PIECE_CHARS.items():
        path = tokenizers._path_of(file)
        assert path is not None, file
        processor = sentencepiece.SentencePieceProcessor(model_file=path)
        pieces = processor.id_to_piece(list(range(processor.vocab_size())))
        assert max(map(len, pieces)) == longest, file


def test_estimates_converge_on_what_the_server_reports(monkeypatch):
    monkeypatch.setattr(tokenizers, "_calibration", {})
    model = "mistral-large-latest"
    first = count_request_tokens(CONVERSATION, model)
    record_prompt_tokens(model, first, round(first * 1.3))  # the server's tokenizer differs
    second = count_request_tokens(CONVERSATION, model)
    assert abs(second - first * 1.3) <= 1
    for _ in range(5):  # a steady ratio leaves the factor where it is
        record_prompt_tokens(model, count_request_tokens(CONVERSATION, model), round(first * 1.3))
    assert abs(count_request_tokens(CONVERSATION, model) - first * 1.3) <= 1
    assert count_tokens("some context", model) >= count_tokens("some context", "mistral-large-2407")
    # exact models and absurd ratios (images, usage summed over tool rounds) change nothing
    record_prompt_tokens("mistral-large-2407", 100, 130)
    assert tokenizers.calibration_factor("mistral-large-2407") == 1.0
    record_prompt_tokens("gpt-4o", 100, 10_000)
    assert tokenizers.calibration_factor("gpt-4o") == 1.0


def test_token_counts_say_when_they_are_estimates():
    assert format_token_count(1234, exact=True) == "1,234"
    assert format_token_count(1234, exact=False) == "≈1,234"


def test_lone_surrogates_are_counted_not_a_crash():
    text = "r\udcfcckblick \ud800 end"
    for model in ("mistral-large-2407", "mistral-large-2411", "mistral-large-latest"):
        assert count_tokens(text, model) > 0
        messages = [{"role": "user", "content": text}]
        assert count_request_tokens(messages, model) > 0


EXITING_SCRIPT = '%load_ext mistral_magic\nraise ValueError("the script fails right away")\n'


def _run_script(path: Path) -> int:
    env = {**os.environ, "MISTRAL_API_KEY": "", "PYTHONFAULTHANDLER": ""}
    result = subprocess.run(
        [sys.executable, "-m", "IPython", "--quick", "--no-banner", str(path)],
        env=env,
        capture_output=True,
        timeout=120,
    )
    return result.returncode


@pytest.mark.timeout(600)
def test_a_script_that_loads_the_extension_and_raises_exits_cleanly(tmp_path):
    """The tokenizer warm-up thread used to be killed inside the C++ tokenizer at exit:
    ``terminate called without an active exception``, exit status 134, in about 1 of 3 runs
    of this script. It must exit with the script's own error every time."""
    script = tmp_path / "fails.ipy"
    script.write_text(EXITING_SCRIPT)
    runs = 20
    with ThreadPoolExecutor(max_workers=3) as pool:
        codes: list[Any] = list(pool.map(lambda _: _run_script(script), range(runs)))
    assert codes == [1] * runs
