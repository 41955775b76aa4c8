"""Describers on real pandas / numpy / polars objects: content, clipping and bounded cost."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pandas as pd
import pytest

from mistral_magic.context.describe import (
    NULL_SAMPLE_ROWS,
    _shallow_frame_bytes,
    describe,
    describe_brief,
    short_label,
)


def sales_frame(rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "date": pd.date_range("2024-01-01", periods=rows, freq="min"),
            "region": rng.choice(["north", "south", "east"], rows),
            "amount": rng.normal(100, 15, rows),
            "units": rng.integers(0, 50, rows),
            "category": pd.Categorical(rng.choice(["a", "b"], rows)),
            "note": ["x" * 500] * rows,
            "flag": rng.random(rows) > 0.5,
            "maybe": pd.array(rng.integers(0, 9, rows), dtype="Int64"),
        }
    )
    frame.loc[::7, "amount"] = np.nan
    return frame


def test_dataframe_description():
    frame = sales_frame(120)
    text = describe(frame, "sales")
    assert text.startswith("sales: pandas DataFrame, 120 rows × 8 columns\n")
    assert "index: RangeIndex 0..119" in text
    for column, dtype in frame.dtypes.items():
        assert f"{column}" in text and str(dtype) in text
    amount_line = next(line for line in text.splitlines() if line.strip().startswith("amount"))
    assert amount_line.split()[-1] == str(frame["amount"].isna().sum())  # exact, small frame
    assert "nulls in first" not in text
    assert "first 3 rows:" in text
    assert "x" * 30 not in text  # the 500-char strings are clipped in sample rows
    assert "xxxxxxxxxxxxxxxxxxxxxxx…" in text
    assert len(text) <= 1500


def test_memory_is_shallow_and_matches_pandas():
    frame = sales_frame(1000)
    expected = int(frame.memory_usage(deep=False).sum())
    dtypes = list(frame.dtypes)
    assert _shallow_frame_bytes(frame, dtypes) == expected


def test_large_frame_null_counts_are_sampled_and_said_so():
    frame = sales_frame(NULL_SAMPLE_ROWS * 3)
    text = describe(frame, "big")
    assert f"nulls in first {NULL_SAMPLE_ROWS:,} rows" in text
    amount_line = next(line for line in text.splitlines() if line.strip().startswith("amount"))
    expected = frame["amount"].iloc[:NULL_SAMPLE_ROWS].isna().sum()
    assert amount_line.split()[-1] == f"{expected:,}"


def test_large_frame_touches_only_bounded_slices(monkeypatch):
    frame = pd.DataFrame(np.zeros((1_000_000, 20)), columns=[f"c{i}" for i in range(20)])
    seen_rows: list[int] = []
    original_isna = pd.DataFrame.isna

    def recording_isna(self):
        seen_rows.append(len(self))
        return original_isna(self)

    def forbidden(*args, **kwargs):
        raise AssertionError("O(rows) method called")

    monkeypatch.setattr(pd.DataFrame, "isna", recording_isna)
    monkeypatch.setattr(pd.DataFrame, "memory_usage", forbidden)
    monkeypatch.setattr(pd.DataFrame, "describe", forbidden)
    monkeypatch.setattr(pd.DataFrame, "to_string", forbidden)
    text = describe(frame, "wide")
    assert "<could not describe" not in text
    assert seen_rows and max(seen_rows) <= NULL_SAMPLE_ROWS


def test_wide_frame_lists_a_bounded_number_of_columns():
    frame = pd.DataFrame(np.zeros((5, 300)), columns=[f"feature_{i}" for i in range(300)])
    text = describe(frame, "wide", max_chars=10_000)
    assert "feature_39" in text and "feature_40 " not in text
    assert "… 260 more columns" in text
    assert "first 3 rows (first 12 of 300 columns):" in text
    assert len(describe(frame, "wide")) <= 1500


def test_other_indexes():
    frame = pd.DataFrame(
        {"v": [1.0, 2.0, 3.0]}, index=pd.date_range("2024-03-01", periods=3, name="day")
    )
    expected = f"index: DatetimeIndex named day, dtype {frame.index.dtype}, from 2024-03-01"
    assert expected in describe(frame, "ts")
    multi = frame.set_index([frame.index, pd.Index(["a", "b", "c"], name="k")])
    assert "MultiIndex with 2 levels named day, k" in describe(multi, "m")
    assert "0 rows × 0 columns" in describe(pd.DataFrame(), "empty")


def test_series_description():
    series = pd.Series(np.arange(50_000, dtype="float64"), name="price")
    series.iloc[3] = np.nan
    text = describe(series, "prices")
    assert text.startswith("prices: pandas Series 'price', 50,000 values, dtype float64")
    assert f"nulls in first {NULL_SAMPLE_ROWS:,}: 1" in text
    assert "first 5: 0: 0.0, 1: 1.0, 2: 2.0, 3: NaN, 4: 4.0" in text
    assert short_label(series, "prices") == "prices · Series float64 (50,000)"


def test_ndarray_description_is_summarised():
    array = np.arange(3_000_000, dtype="float64").reshape(1_000_000, 3)
    text = describe(array, "arr")
    assert text.startswith("arr: numpy ndarray float64, shape (1000000, 3), 24.0 MB\n")
    assert "..." in text and len(text) < 1500
    assert short_label(np.zeros((1000, 3)), "arr") == "arr · ndarray float64 (1000, 3)"
    assert short_label(np.zeros(5, dtype="int32"), "v") == "v · ndarray int32 (5,)"


def test_builtin_containers():
    config = {f"key{i}": i for i in range(12)}
    assert short_label(config, "config") == "config · dict (12 keys)"
    text = describe(config, "config")
    assert text.startswith("config: dict (12 keys)\n{'key0': 0, 'key1': 1,")
    assert text.endswith("…}")
    assert describe([1, 2, 3], "xs") == "xs: list (3 items)\n[1, 2, 3]"
    assert describe((1,), "t") == "t: tuple (1 item)\n(1,)"
    assert describe(set(), "s") == "s: set (0 items)\nset()"
    ordered = OrderedDict(a=1)
    assert describe(ordered, "o") == "o: OrderedDict (1 key)\nOrderedDict({'a': 1})"


def test_nested_big_objects_are_summarised_not_printed():
    frame = sales_frame(10)
    text = describe({"frame": frame, "arr": np.zeros((100, 100)), "deep": [[[[1]]]]}, "bag")
    assert "'frame': <DataFrame 10×8>" in text
    assert "'arr': <ndarray float64 (100, 100)>" in text
    assert "'deep': [[[…]]]" in text


class CountedRepr:
    """One object repeated in a huge list: counts how many items a describer looks at."""

    calls = 0

    def __repr__(self) -> str:
        CountedRepr.calls += 1
        return "c"


def test_huge_builtins_stay_cheap():
    # Cost is asserted by work done, not by a clock: only the previewed items are repr'd.
    assert describe(list(range(5_000_000)), "xs") == (
        "xs: list (5,000,000 items)\n[0, 1, 2, 3, 4, 5, 6, 7, …]"
    )
    CountedRepr.calls = 0
    text = describe([CountedRepr()] * 5_000_000, "cs")
    assert text.startswith("cs: list (5,000,000 items)") and CountedRepr.calls <= 8
    assert describe(10**100_000, "big") == "big: int = <int with about 100,001 digits>"
    long_text = "word " * 100_000
    text = describe(long_text, "doc", max_chars=300)
    assert text.startswith("doc: str (500,000 chars)\n'word word")
    assert len(text) <= 300


def test_functions_classes_and_objects():
    def scale(values, factor: float = 2.0):
        """Multiply values by a factor.

        More text."""
        return values * factor

    class Point:
        """A point."""

        def __init__(self, x, y=0):
            self.x = x
            self.y = y

        def norm(self):
            return (self.x**2 + self.y**2) ** 0.5

    Point.__module__ = "__main__"  # as if defined in a notebook cell

    # (annotations are strings here because of ``from __future__ import annotations``)
    assert describe(scale, "scale") == (
        "scale: function scale(values, factor: 'float' = 2.0)\n  Multiply values by a factor."
    )
    assert describe(Point, "Point").startswith("Point: class Point, constructor Point(x, y=0)")
    assert "methods: norm" in describe(Point, "Point")
    assert describe(Point(3, 4), "p") == "p: Point\nattributes: x=3, y=4"
    assert short_label(scale, "scale") == "scale · function"


def test_failing_repr_is_reported_not_raised():
    class Broken:
        def __repr__(self):
            raise TypeError("no repr for you")

    Broken.__module__ = "__main__"

    assert describe(Broken(), "b") == "b: Broken <could not describe: TypeError>"
    assert short_label(Broken(), "b") == "b · Broken"


def test_max_chars_is_respected_and_name_comes_first():
    values = [sales_frame(50), np.ones((40, 40)), {"a": "x" * 5000}, "y" * 5000, object()]
    for value in values:
        for limit in (100, 400, 1500):
            text = describe(value, "thing", max_chars=limit)
            assert len(text) <= limit
            assert text.startswith("thing: ")


def test_short_labels_like_the_chips():
    frame = pd.DataFrame(np.zeros((120_000, 8)))
    assert short_label(frame, "sales") == "sales · DataFrame 120,000×8"
    assert short_label("hello", "s") == "s · str (5 chars)"
    assert short_label(3, "n") == "n · int"


def test_brief_frame_description_has_columns_but_no_sampling(monkeypatch):
    frame = sales_frame(100)
    monkeypatch.setattr(pd.DataFrame, "isna", lambda self: pytest.fail("sampled"))
    text = describe_brief(frame, "sales")
    assert text.startswith("sales: pandas DataFrame, 100 rows × 8 columns; columns: date (")
    assert "region (str)" in text or "region (object)" in text


def test_polars_frames_and_series():
    import polars as pl  # a test dependency: the polars describer must not go untested

    frame = pl.DataFrame({"a": [1, None, 3], "b": ["x" * 100, "y", None]})
    text = describe(frame, "pf")
    assert text.startswith("pf: polars DataFrame, 3 rows × 2 columns")
    a_line = next(line for line in text.splitlines() if line.strip().startswith("a "))
    assert a_line.split()[-1] == "1"
    assert "x" * 30 not in text
    assert short_label(frame, "pf") == "pf · polars DataFrame 3×2"
    series = pl.Series("s", [1.5, None])
    assert describe(series, "s").startswith("s: polars Series 's', 2 values, dtype Float64")
    assert "nulls: 1" in describe(series, "s")


ODD_FRAMES = {
    "duplicate columns": lambda: pd.DataFrame([[1, 2]], columns=["a", "a"]),
    "multiindex columns": lambda: pd.DataFrame(
        np.zeros((2, 2)), columns=pd.MultiIndex.from_tuples([("x", "a"), ("x", "b")])
    ),
    "integer column labels": lambda: pd.DataFrame(np.zeros((2, 2))),
    "rows without columns": lambda: pd.DataFrame(index=range(5)),
    "object cells": lambda: pd.DataFrame({"o": [object(), {"a": 1}]}),
    "sparse": lambda: pd.DataFrame({"s": pd.arrays.SparseArray([0, 0, 1])}),
    "intervals": lambda: pd.DataFrame({"i": pd.interval_range(0, 3)}),
    "period index": lambda: pd.DataFrame(
        {"v": [1, 2]}, index=pd.period_range("2024-01", periods=2, freq="M")
    ),
    "categorical index": lambda: pd.DataFrame({"v": [1, 2]}, index=pd.CategoricalIndex(["a", "b"])),
    "time zones": lambda: pd.DataFrame({"t": pd.date_range("2024", periods=2, tz="Europe/Paris")}),
    "series with multiindex": lambda: pd.Series(
        [1, 2], index=pd.MultiIndex.from_tuples([(1, 2), (3, 4)])
    ),
}


@pytest.mark.parametrize("make", ODD_FRAMES.values(), ids=ODD_FRAMES.keys())
def test_odd_frames_are_described(make):
    text = describe(make(), "odd")
    assert text.startswith("odd: pandas ")
    assert "could not describe" not in text
