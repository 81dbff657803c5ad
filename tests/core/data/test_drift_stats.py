"""KS and PSI of drift() on random data, against scipy and against a count done by hand in the test.

Sizes from 1 to 50,000 values a side, with ties (integers), NaN, +-inf and nulls mixed in: the
non-finite values and the nulls are no values at all, so the expected numbers are worked out on the
finite values alone. Both paths are checked: in memory (exact KS) and streaming (forced here by
lowering the row limit), which must give the same PSI and a KS within the grid's step of the exact one.
"""

from __future__ import annotations

import math
from bisect import bisect_right

import numpy as np
import polars as pl
import pytest
from scipy.stats import ks_2samp

from mltui.core.data import columns as cols
from mltui.core.data.columns import quantiles_sorted
from mltui.core.data.drift import KS_GRID, drift, ks_exact
from mltui.core.data.profile import QUANTILES, profile

EPS = 1e-4
SIZES = [(1, 1), (1, 4), (3, 8), (50, 70), (333, 250), (2000, 1500), (20_000, 30_000)]


# -- by hand ---------------------------------------------------------------------------------------------
def finite(values) -> list[float]:
    return sorted(float(v) for v in values if v is not None and math.isfinite(v))


def ks_by_hand(a, b) -> float:
    """The largest gap between the two empirical CDFs, over every finite value of either side."""
    xa, xb = finite(a), finite(b)
    return max(abs(bisect_right(xa, p) / len(xa) - bisect_right(xb, p) / len(xb)) for p in set(xa) | set(xb))


def lin_quantile(s: list[float], q: float) -> float:
    """Position h = (n - 1) q between the sorted values (numpy's and polars' "linear")."""
    h = (len(s) - 1) * q
    lo = math.floor(h)
    a, b = s[lo], s[min(lo + 1, len(s) - 1)]
    return a if a == b else (h - lo) * (b - a) + a


def psi_by_hand(a, b) -> tuple[float, list[float], list[float], list[float]]:
    """PSI over A's deciles (bins (-inf, e1], ..., (e9, inf), repeated edges merged), with EPS for empty bins."""
    xa, xb = finite(a), finite(b)
    edges = sorted({lin_quantile(xa, i / 10) for i in range(1, 10)})

    def shares(x):
        le = [bisect_right(x, e) for e in edges] + [len(x)]
        return [(hi - lo) / len(x) for lo, hi in zip([0] + le[:-1], le)]

    sa, sb = shares(xa), shares(xb)
    total = sum((max(q, EPS) - max(p, EPS)) * math.log(max(q, EPS) / max(p, EPS)) for p, q in zip(sa, sb))
    return total, edges, sa, sb


# -- random data -------------------------------------------------------------------------------------------
def sample(rng, n: int, kind: str, shift: float = 0.0) -> list[float | None]:
    """n values: normal floats or integers 0..9 (ties), with NaN, +-inf and nulls mixed in."""
    if kind == "ties":
        x = rng.integers(0, 10, n).astype(float) + round(shift * 3)
    else:
        x = rng.normal(shift, 1.0, n)
    out: list[float | None] = list(x)
    if n >= 3:
        for i, odd in zip(rng.choice(n, min(n - 1, 2 + n // 50), replace=False),
                          [math.nan, math.inf, -math.inf, None] * n):
            out[int(i)] = odd
    return out


def write(tmp_path, name: str, columns: dict, fmt: str) -> str:
    df = pl.DataFrame({k: pl.Series(k, v, dtype=pl.Float64) for k, v in columns.items()})
    path = tmp_path / f"{name}.{fmt}"
    if fmt == "parquet":
        df.write_parquet(path)
    else:
        df.write_csv(path)
    return str(path)


# -- KS alone ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["continuous", "ties"])
@pytest.mark.parametrize(("n", "m"), SIZES)
def test_ks_matches_scipy_and_the_hand_count(n, m, kind):
    rng = np.random.default_rng(n * 7 + m)
    a, b = sample(rng, n, kind), sample(rng, m, kind, shift=0.3)
    xa, xb = finite(a), finite(b)
    if not xa or not xb:
        assert math.isnan(ks_exact([math.nan if v is None else v for v in a], b))
        return
    expected = ks_by_hand(a, b)
    got = ks_exact(np.array([math.nan if v is None else v for v in a]), [math.nan if v is None else v for v in b])
    assert got == expected
    assert got == pytest.approx(ks_2samp(xa, xb).statistic, abs=1e-15)  # scipy's own arithmetic, to the last bits


def test_ks_of_equal_and_disjoint_samples():
    assert ks_exact([3.0, 1.0, 2.0, math.nan], [2.0, 3.0, 1.0, math.inf]) == 0.0
    assert ks_exact([1.0, 1.0, 1.0], [2.0, 2.0]) == 1.0
    assert ks_exact([5.0, 5.0, 1.0, 1.0], [5.0, 1.0, 1.0, 1.0, 5.0, 5.0]) == pytest.approx(0.0, abs=1e-15)
    assert math.isnan(ks_exact([math.nan, math.inf], [1.0]))


def test_quantiles_are_polars_linear_ones_to_the_bit():
    rng = np.random.default_rng(5)
    qs = [i / 10 for i in range(1, 10)] + [0.05, 0.25, 0.5, 0.75, 0.95]
    for n in (1, 2, 3, 10, 97, 1000, 12_345):
        for x in (rng.normal(0, 1e3, n), np.round(rng.gamma(2.0, 2.0, n), 1)):
            want = pl.DataFrame({"x": x}).select(
                [pl.col("x").quantile(q, interpolation="linear").alias(str(i)) for i, q in enumerate(qs)]).row(0)
            assert quantiles_sorted(np.sort(x), qs) == list(want)
            assert quantiles_sorted(pl.Series(x).sort(), qs) == list(want)
    assert quantiles_sorted(np.array([]), [0.5]) == [None]


# -- drift of tables on disk -------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["parquet", "csv"])
@pytest.mark.parametrize(("n", "m"), [(10, 12), (1000, 800), (50_000, 40_000)])
def test_drift_matches_scipy_and_the_hand_computation(tmp_path, fmt, n, m):
    rng = np.random.default_rng(n + m)
    a = {"cont": sample(rng, n, "continuous"), "ties": sample(rng, n, "ties"), "same": sample(rng, n, "continuous")}
    b = {"cont": sample(rng, m, "continuous", 0.4), "ties": sample(rng, m, "ties", 0.4),
         "same": sample(rng, m, "continuous")}
    got = drift(write(tmp_path, "a", a, fmt), fmt, write(tmp_path, "b", b, fmt), fmt)
    assert (got["rows_a"], got["rows_b"], got["read"], got["ks_method"]) == (n, m, "in memory", "exact")
    cols = {c["name"]: c for c in got["columns"]}
    for name in a:
        c = cols[name]
        want_psi, edges, shares_a, shares_b = psi_by_hand(a[name], b[name])
        assert c["bins"] == pytest.approx(edges, rel=1e-15), name
        assert c["shares_a"] == pytest.approx(shares_a, abs=1e-15)
        assert c["shares_b"] == pytest.approx(shares_b, abs=1e-15)
        assert c["psi"] == pytest.approx(want_psi, rel=1e-12, abs=1e-15), name
        assert c["ks"] == ks_by_hand(a[name], b[name]), name
        assert c["ks"] == pytest.approx(ks_2samp(finite(a[name]), finite(b[name])).statistic, abs=1e-15), name
        assert (c["nulls_a"], c["nulls_b"]) == (a[name].count(None), b[name].count(None))
    # ranked by PSI, the moved columns first
    assert [c["name"] for c in got["columns"]] == sorted(a, key=lambda k: -cols[k]["psi"])


def test_a_column_with_no_finite_values_has_no_psi(tmp_path):
    a = write(tmp_path, "a", {"x": [1.0, 2.0, 3.0]}, "parquet")
    b = write(tmp_path, "b", {"x": [math.nan, None, math.inf]}, "parquet")
    [x] = drift(a, "parquet", b, "parquet")["columns"]
    assert (x["psi"], x["ks"], x["nulls_b"]) == (None, None, 1)
    assert x["bins"] == [1.2, 1.4, 1.6, 1.8, 2.0, 2.2, 2.4, 2.6, 2.8]  # A's deciles are still there


# -- the streaming path and the thread pool ------------------------------------------------------------------
def no_errors(result: dict) -> dict:
    assert [c["error"] for c in result["columns"] if "error" in c] == []
    return result


def tables(tmp_path, n: int = 6000, m: int = 5000) -> tuple[str, str]:
    rng = np.random.default_rng(11)
    a = pl.DataFrame({"cont": sample(rng, n, "continuous"), "ties": sample(rng, n, "ties"),
                      "cat": rng.choice(["x", "y", "z", None], n).tolist()}, strict=False)
    b = pl.DataFrame({"cont": sample(rng, m, "continuous", 0.2), "ties": sample(rng, m, "ties", 0.5),
                      "cat": rng.choice(["x", "y", "w"], m, p=[0.5, 0.3, 0.2]).tolist()}, strict=False)
    a.write_parquet(tmp_path / "a.parquet")
    b.write_parquet(tmp_path / "b.parquet")
    return str(tmp_path / "a.parquet"), str(tmp_path / "b.parquet")


@pytest.mark.parametrize("budget", [cols.MEMORY_BUDGET, 1], ids=["one-query-a-side", "a-query-per-column"])
def test_the_streaming_path_gives_the_same_psi_and_a_ks_within_the_grid(tmp_path, monkeypatch, budget):
    a, b = tables(tmp_path)
    exact = no_errors(drift(a, "parquet", b, "parquet"))
    monkeypatch.setattr(cols, "EXACT_KS_ROWS", 1000)
    monkeypatch.setattr(cols, "MEMORY_BUDGET", budget)
    grid = no_errors(drift(a, "parquet", b, "parquet"))
    assert (exact["read"], grid["read"]) == ("in memory", "streaming")
    assert grid["ks_method"].startswith(f"grid of {KS_GRID - 1} quantiles")
    assert [c["name"] for c in grid["columns"]] == [c["name"] for c in exact["columns"]]
    for e, g in zip(exact["columns"], grid["columns"]):
        assert g["psi"] == pytest.approx(e["psi"], rel=1e-12), e["name"]
        assert (g["nulls_a"], g["nulls_b"]) == (e["nulls_a"], e["nulls_b"])
        if e["kind"] == "number":
            assert g["bins"] == e["bins"] and g["shares_a"] == e["shares_a"] and g["shares_b"] == e["shares_b"]
            # the grid's gap is a real gap between the CDFs (never above the exact one), and misses it by
            # at most a grid step on each side
            assert e["ks"] - 2 / KS_GRID <= g["ks"] <= e["ks"] + 1e-15, e["name"]
        else:
            assert g["changes"] == e["changes"]


def test_row_formats_over_the_budget_are_parsed_a_group_of_columns_at_a_time(tmp_path, monkeypatch):
    a, b = tables(tmp_path)
    csv_a, csv_b = tmp_path / "a.csv", tmp_path / "b.csv"
    pl.read_parquet(a).write_csv(csv_a)
    pl.read_parquet(b).write_csv(csv_b)
    whole = no_errors(drift(str(csv_a), "csv", str(csv_b), "csv"))
    whole_profile = profile(str(csv_a), "csv")
    parses = []
    real = cols.collect
    monkeypatch.setattr(cols, "collect", lambda lf: parses.append(lf) or real(lf))
    monkeypatch.setattr(cols, "MEMORY_BUDGET", 2 * 8 * 6000)  # two columns of A's 6,000 rows
    assert drift(str(csv_a), "csv", str(csv_b), "csv", threads=2) == whole
    assert profile(str(csv_a), "csv", threads=2) == whole_profile
    # drift: a count of the rows and a parse per column (the budget is split between the sides) a side;
    # profile: the count, then two parses (two columns, then one)
    assert len(parses) == 2 * (1 + 3) + (1 + 2)
    assert drift(a, "parquet", b, "parquet") == whole  # the same tables as Parquet, read a column at a time


def test_large_parquet_is_read_a_column_at_a_time_with_the_same_answers(tmp_path, monkeypatch):
    a, b = tables(tmp_path)
    whole, whole_profile = no_errors(drift(a, "parquet", b, "parquet")), profile(a, "parquet")
    reads = []
    real_select = pl.LazyFrame.select
    monkeypatch.setattr(pl.LazyFrame, "select", lambda self, *e, **k: reads.append(e) or real_select(self, *e, **k))
    monkeypatch.setattr(cols, "SMALL_TABLE", 0)  # every table is "large"
    assert drift(a, "parquet", b, "parquet") == whole
    # a side: the row count, then one query a column (numbers: read; categories: counted while streamed)
    assert len(reads) == 2 * (1 + 3)
    assert profile(a, "parquet") == whole_profile


def test_threads_do_not_change_the_answers(tmp_path):
    a, b = tables(tmp_path)
    one = no_errors(drift(a, "parquet", b, "parquet", threads=1))
    assert drift(a, "parquet", b, "parquet", threads=4) == one
    assert profile(a, "parquet", threads=1) == profile(a, "parquet", threads=4)


def test_profile_in_memory_and_streaming_agree(tmp_path, monkeypatch):
    a, _ = tables(tmp_path)
    mem = profile(a, "parquet")
    monkeypatch.setattr(cols, "EXACT_KS_ROWS", 10)
    stream = profile(a, "parquet")
    assert (mem["read"], stream["read"], mem["rows"], stream["rows"]) == ("in memory", "streaming", 6000, 6000)
    for m, s in zip(mem["columns"], stream["columns"], strict=True):
        assert (m["name"], m["kind"], m["nulls"]) == (s["name"], s["kind"], s["nulls"])
        if m["kind"] == "number":
            assert (m["min"], m["max"], m["quantiles"]) == (s["min"], s["max"], s["quantiles"])
            assert (m["mean"], m["std"]) == pytest.approx((s["mean"], s["std"]), rel=1e-12)
        else:
            assert m["top"] == s["top"]
    x = finite(pl.read_parquet(a)["cont"].to_list())
    cont = mem["columns"][0]
    assert cont["quantiles"] == {str(q): lin_quantile(x, q) for q in QUANTILES}
    assert (cont["min"], cont["max"]) == (x[0], x[-1])
    assert cont["mean"] == pytest.approx(sum(x) / len(x), rel=1e-12)
