"""Figures named by a question: found, downscaled to a bound, counted by the documented
estimate, described in words when the model cannot see."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from mistral_magic.context.figures import (
    MAX_IMAGE_SIDE,
    figure_from_png,
    figures_named,
    image_tokens,
    notebook_figures,
    title_from_source,
)


def png(width: int, height: int, **info: str) -> bytes:
    from PIL import PngImagePlugin

    meta = PngImagePlugin.PngInfo()
    for key, value in info.items():
        meta.add_text(key, value)
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(out, format="PNG", pnginfo=meta)
    return out.getvalue()


def test_the_token_estimate_is_the_documented_rule():
    # rows x (columns + 1) with 16-pixel patches
    assert image_tokens(640, 480) == 30 * 41 == 1230
    assert image_tokens(1024, 768) == 48 * 65 == 3120
    assert image_tokens(1, 1) == 2 and image_tokens(0, 10) == 0


def test_a_large_figure_is_downscaled_to_the_bound_and_a_small_one_kept_as_is():
    big = figure_from_png(base64.b64encode(png(3000, 1500)).decode(), "Out[3]")
    assert (big.width, big.height) == (MAX_IMAGE_SIDE, MAX_IMAGE_SIDE // 2)
    assert (big.original_width, big.original_height) == (3000, 1500)
    assert big.tokens == image_tokens(1024, 512)
    with Image.open(io.BytesIO(base64.b64decode(big.data_uri().split(",", 1)[1]))) as image:
        assert image.format == "PNG" and image.size == (1024, 512)
    small_bytes = png(200, 100)
    small = figure_from_png(small_bytes, "Out[4]")
    assert small.png == small_bytes and small.sendable
    assert small.chunk() == {
        "type": "image_url",
        "image_url": {"url": "data:image/png;base64," + base64.b64encode(small_bytes).decode()},
    }


def test_an_unreadable_image_is_described_never_sent():
    broken = figure_from_png(base64.b64encode(b"not a png").decode(), "Out[5]")
    assert not broken.sendable and broken.tokens == 0
    assert broken.problem == "the image could not be read"
    assert broken.description() == "Out[5] shows a figure (PNG, of unknown size)."


def test_titles_come_from_the_png_or_the_code():
    titled = figure_from_png(png(64, 48, Title="Revenue by month"), "Out[2]")
    assert titled.title == "Revenue by month"
    assert (
        titled.description() == "Out[2] shows a figure (PNG, 64×48 px), titled 'Revenue by month'."
    )
    assert title_from_source("plt.plot(x)\nplt.title('Sales')") == "Sales"
    assert title_from_source('ax.set_title("Errors per day")') == "Errors per day"
    assert title_from_source("fig.suptitle('A')\nax.set_title('B')") == "B"
    assert title_from_source("df.plot(kind='bar', title=\"Totals\")") == "Totals"
    assert title_from_source("plt.plot(x)") == ""
    described = figure_from_png(
        png(64, 48), "Out[9]", title="T", text="<Figure size 640x480 with 1 Axes>"
    )
    assert described.description() == (
        "Out[9] shows a figure (PNG, 64×48 px), titled 'T', shown as text as "
        "<Figure size 640x480 with 1 Axes>."
    )


@pytest.mark.parametrize(
    "question, cells, pointing",
    [
        ("Why is the plot above empty?", (), True),
        ("Why is my histogram empty?", (), True),
        ("What does this chart say about March?", (), True),
        ("Explain In[7]", (7,), False),
        ("compare Out[3] with cell 4", (3, 4), False),
        ("plot revenue by month as a bar chart", (), False),
        ("fix the typo in my function", (), False),
    ],
)
def test_what_a_question_names(question, cells, pointing):
    asked = figures_named(question)
    assert (asked.cells, asked.pointing) == (cells, pointing)


def test_notebook_figures_by_count_by_pointing_and_by_chip():
    encoded = base64.b64encode(png(100, 50)).decode()
    cells = [
        {"cell_type": "code", "execution_count": 1, "source": "x = 1", "outputs": []},
        {
            "cell_type": "code",
            "execution_count": 2,
            "source": ["plt.hist(x)\n", "plt.title('Ages')"],
            "outputs": [
                {
                    "output_type": "display_data",
                    "data": {"image/png": encoded, "text/plain": "<Figure size 100x50>"},
                }
            ],
        },
        {"cell_type": "code", "execution_count": 3, "source": "y = 2", "outputs": []},
    ]
    pointed = notebook_figures(cells, "why is the histogram above empty?")
    assert [f.label for f in pointed] == ["Out[2]"] and pointed[0].title == "Ages"
    assert [f.label for f in notebook_figures(cells, "what is in In[2]?")] == ["Out[2]"]
    assert notebook_figures(cells, "what is in In[3]?") == []
    assert [f.label for f in notebook_figures(cells, "what is this?", chosen=[1])] == ["Out[2]"]
    assert notebook_figures(cells, "sum the column") == []
    # pointing from another active cell: the newest figure above it
    assert [f.label for f in notebook_figures(cells, "fix the plot above", chosen=[2])] == [
        "Out[2]"
    ]
