"""Profiles and drift of small tables, checked against numbers worked out by hand in the test.

Reference table A (10 rows) and table B (11 rows, the last one mostly empty):

    x: A = 1..10                      B = 2 3 3 4 5 6 8 10 12 15, null
    y: A = 3 1 4 1 5 9 2 6 5 3        B = the same values, null      (no drift)
    c: A = a*5 b*3 c*2                B = a*3 b*3 d*4, null
    t: A = 1..10 (Int64)              B = p..z (String)               (type changed)
    w: A = 1..10 (Int64)              B = 1.0..10.0, null (Float64)   (type changed, same values)
    gone: only in A;  new: only in B
"""

from __future__ import annotations

import math
import os
import time
from contextlib import closing

import numpy as np
import polars as pl
import pytest

from mltui.core.data.columns import format_of
from mltui.core.data.drift import drift, ks_exact, psi
from mltui.core.data.profile import profile
from mltui.core.data.tables import drift_of, locate, pick, profile_of
from mltui.core.data.versions import add, cache_of, files
from mltui.base.errors import MltuiError, NotFound
from mltui.core.data.hashing import RACY_NS
from mltui.store.opening import open_store

EPS = 1e-4

A_CSV = """x,y,c,t,w,gone
1,3,a,1,1,0
2,1,a,2,2,0
3,4,a,3,3,0
4,1,a,4,4,0
5,5,a,5,5,0
6,9,b,6,6,0
7,2,b,7,7,0
8,6,b,8,8,0
9,5,c,9,9,0
10,3,c,10,10,0
"""
B_CSV = """x,y,c,t,w,new
2,3,a,p,1.0,1
3,1,a,q,2.0,1
3,4,a,r,3.0,1
4,1,b,s,4.0,1
5,5,b,t,5.0,1
6,9,b,u,6.0,1
8,2,d,v,7.0,1
10,6,d,w,8.0,1
12,5,d,x,9.0,1
15,3,d,y,10.0,1
,,,z,,1
"""
A_X = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
B_X = [2, 3, 3, 4, 5, 6, 8, 10, 12, 15]  # finite, non-null values only
Y = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3]


# -- by hand --------------------------------------------------------------------------------------------
def lin_quantile(values, q: float) -> float:
    """numpy's default ("linear"): position h = (n - 1) q between the sorted values."""
    s = sorted(values)
    h = (len(s) - 1) * q
    lo = math.floor(h)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (h - lo) * (s[hi] - s[lo])


def term(e: float, a: float) -> float:
    e, a = max(e, EPS), max(a, EPS)
    return (a - e) * math.log(a / e)


# x: A's deciles are 1 + 9q: 1.9, 2.8, ..., 9.1, one A value in each of the ten bins.
X_EDGES = [1.9, 2.8, 3.7, 4.6, 5.5, 6.4, 7.3, 8.2, 9.1]
X_SHARES_A = [0.1] * 10
# B's 10 finite values per bin: (-inf,1.9]: none; (1.9,2.8]: 2; (2.8,3.7]: 3,3; (3.7,4.6]: 4; (4.6,5.5]: 5;
# (5.5,6.4]: 6; (6.4,7.3]: none; (7.3,8.2]: 8; (8.2,9.1]: none; (9.1,inf): 10,12,15
X_SHARES_B = [0.0, 0.1, 0.2, 0.1, 0.1, 0.1, 0.0, 0.1, 0.0, 0.3]
# three empty bins give (1e-4 - 0.1) ln(1e-4 / 0.1) each; the 0.2 bin 0.1 ln 2; the 0.3 bin 0.2 ln 3
X_PSI = 3 * ((EPS - 0.1) * math.log(EPS / 0.1)) + 0.1 * math.log(2) + 0.2 * math.log(3)
# the empirical CDFs are furthest apart at 9 (and 10): F_A(9) = 9/10, F_B(9) = 7/10
X_KS = 0.2

# c: shares of each category, nulls as "(null)"
C_A = {"a": 5 / 10, "b": 3 / 10, "c": 2 / 10}
C_B = {"a": 3 / 11, "b": 3 / 11, "d": 4 / 11, "(null)": 1 / 11}
C_PSI = ((3 / 11 - 0.5) * math.log((3 / 11) / 0.5)            # a
         + (3 / 11 - 0.3) * math.log((3 / 11) / 0.3)          # b
         + (EPS - 0.2) * math.log(EPS / 0.2)                  # c: gone, so its share is 1e-4
         + (4 / 11 - EPS) * math.log((4 / 11) / EPS)          # d: new
         + (1 / 11 - EPS) * math.log((1 / 11) / EPS))         # (null): new
# t: "1".."10" (a tenth each) against "p".."z" (an eleventh each), no category in common
T_PSI = 10 * (EPS - 0.1) * math.log(EPS / 0.1) + 11 * (1 / 11 - EPS) * math.log((1 / 11) / EPS)


def test_hand_numbers_agree_with_numpy():
    """The hand arithmetic above is what numpy computes (a check of the test itself)."""
    assert [lin_quantile(A_X, i / 10) for i in range(1, 10)] == pytest.approx(X_EDGES)
    assert list(np.quantile(A_X, [i / 10 for i in range(1, 10)])) == pytest.approx(X_EDGES)
    counts = np.histogram(B_X, bins=[-np.inf, *X_EDGES, np.inf])[0]  # [a, b) bins; no B value sits on an edge
    assert list(counts / 10) == pytest.approx(X_SHARES_B)
    grid = sorted(set(A_X + B_X))
    fa = [sum(v <= g for v in A_X) / 10 for g in grid]
    fb = [sum(v <= g for v in B_X) / 10 for g in grid]
    assert max(abs(p - q) for p, q in zip(fa, fb)) == pytest.approx(X_KS)
    assert X_PSI == pytest.approx(2.359291, abs=1e-6)
    assert C_PSI == pytest.approx(5.258950, abs=1e-6)
    assert T_PSI == pytest.approx(13.705799, abs=1e-6)


# -- the formulas alone ------------------------------------------------------------------------------------
def test_psi_by_hand():
    assert psi([0.25] * 4, [0.25] * 4) == 0.0
    expected = sum((a - 0.25) * math.log(a / 0.25) for a in (0.1, 0.2, 0.3, 0.4))
    assert psi([0.25] * 4, [0.1, 0.2, 0.3, 0.4]) == pytest.approx(expected, rel=1e-12)
    assert psi([0.5, 0.5], [1.0, 0.0]) == pytest.approx(0.5 * math.log(2) + (EPS - 0.5) * math.log(EPS / 0.5))
    assert psi([0.5, 0.5], [0.2, 0.8]) == psi([0.2, 0.8], [0.5, 0.5])  # symmetric
    assert psi(X_SHARES_A, X_SHARES_B) == pytest.approx(X_PSI, rel=1e-12)


def test_ks_by_hand():
    assert ks_exact(A_X, B_X) == pytest.approx(X_KS)
    assert ks_exact([1, 2, 3], [1, 2, 3]) == 0.0
    assert ks_exact([1, 2], [3, 4]) == 1.0
    assert ks_exact([1, 2, 3, 4], [3]) == pytest.approx(0.5)  # F_A(2) = 0.5, F_B(2) = 0
    assert math.isnan(ks_exact([], [1.0]))


# -- tables on disk ------------------------------------------------------------------------------------------
def write_tables(tmp_path, fmt: str) -> tuple[str, str]:
    """A and B in one format; returns their paths."""
    (tmp_path / "A.csv").write_text(A_CSV)
    (tmp_path / "B.csv").write_text(B_CSV)
    if fmt == "csv":
        return str(tmp_path / "A.csv"), str(tmp_path / "B.csv")
    ext = {"parquet": "parquet", "ndjson": "jsonl"}[fmt]
    out = []
    for side in ("A", "B"):
        df = pl.read_csv(tmp_path / f"{side}.csv")
        path = tmp_path / f"{side}.{ext}"
        if fmt == "parquet":
            df.write_parquet(path)
        else:
            df.write_ndjson(path)
        out.append(str(path))
    return out[0], out[1]


FORMATS = ["csv", "parquet", "ndjson"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_drift_matches_the_hand_computation(tmp_path, fmt):
    a, b = write_tables(tmp_path, fmt)
    assert format_of(a) == format_of(b) == fmt
    got = drift(a, fmt, b, fmt)
    assert (got["rows_a"], got["rows_b"]) == (10, 11)
    cols = {c["name"]: c for c in got["columns"]}

    # ranking: schema changes first (by PSI, ties by name), then PSI descending
    assert [c["name"] for c in got["columns"]] == ["t", "gone", "new", "w", "c", "x", "y"]
    assert [cols[n]["schema"] for n in ("t", "gone", "new", "w", "c", "x", "y")] == [
        "type changed", "removed", "added", "type changed", None, None, None]
    assert (cols["gone"]["dtype_a"], cols["gone"]["dtype_b"]) == ("Int64", None)
    assert (cols["new"]["dtype_a"], cols["new"]["dtype_b"]) == (None, "Int64")
    assert (cols["t"]["dtype_a"], cols["t"]["dtype_b"], cols["t"]["kind"]) == ("Int64", "String", "category")
    assert (cols["w"]["dtype_a"], cols["w"]["dtype_b"], cols["w"]["kind"]) == ("Int64", "Float64", "number")

    x = cols["x"]
    assert x["kind"] == "number"
    assert x["bins"] == pytest.approx(X_EDGES)
    assert x["shares_a"] == pytest.approx(X_SHARES_A)
    assert x["shares_b"] == pytest.approx(X_SHARES_B)
    assert x["psi"] == pytest.approx(X_PSI, rel=1e-9)
    assert x["ks"] == pytest.approx(X_KS, rel=1e-9)
    assert (x["nulls_a"], x["nulls_b"]) == (0, 1)

    y = cols["y"]  # the same finite values on both sides: the null in B is not a value
    assert y["psi"] == pytest.approx(0.0, abs=1e-12) and y["ks"] == pytest.approx(0.0, abs=1e-12)
    assert y["shares_a"] == pytest.approx(y["shares_b"])
    assert sum(y["shares_a"]) == pytest.approx(1.0)
    assert (y["nulls_a"], y["nulls_b"]) == (0, 1)
    w = cols["w"]
    assert w["psi"] == pytest.approx(0.0, abs=1e-12) and w["ks"] == pytest.approx(0.0, abs=1e-12)

    c = cols["c"]
    assert c["kind"] == "category" and c["ks"] is None
    assert c["psi"] == pytest.approx(C_PSI, rel=1e-9)
    expected_changes = sorted(
        ({"value": k, "a": C_A.get(k, 0.0), "b": C_B.get(k, 0.0), "change": C_B.get(k, 0.0) - C_A.get(k, 0.0)}
         for k in set(C_A) | set(C_B)), key=lambda ch: -abs(ch["change"]))
    assert [ch["value"] for ch in c["changes"]] == ["d", "a", "c", "(null)", "b"]
    assert [ch["value"] for ch in expected_changes] == ["d", "a", "c", "(null)", "b"]
    for got_ch, want in zip(c["changes"], expected_changes, strict=True):
        assert got_ch["value"] == want["value"]
        assert (got_ch["a"], got_ch["b"], got_ch["change"]) == pytest.approx((want["a"], want["b"], want["change"]))
    assert (c["nulls_a"], c["nulls_b"]) == (0, 1)

    assert cols["t"]["psi"] == pytest.approx(T_PSI, rel=1e-9)
    assert "psi" not in cols["gone"] and "psi" not in cols["new"]


def test_drift_across_formats_is_the_same(tmp_path):
    a_csv, b_csv = write_tables(tmp_path, "csv")
    a_pq, _ = write_tables(tmp_path, "parquet")
    _, b_js = write_tables(tmp_path, "ndjson")
    got = {c["name"]: c for c in drift(a_pq, "parquet", b_js, "ndjson")["columns"]}
    ref = {c["name"]: c for c in drift(a_csv, "csv", b_csv, "csv")["columns"]}
    for name in ("x", "y", "c", "t", "w"):
        assert got[name]["psi"] == pytest.approx(ref[name]["psi"], rel=1e-12), name
    assert got["x"]["ks"] == pytest.approx(X_KS)


def test_non_finite_values_are_not_counted(tmp_path):
    (tmp_path / "a.csv").write_text("f\n" + "\n".join(str(v) for v in A_X) + "\n")
    (tmp_path / "b.csv").write_text("f\n" + "\n".join(str(float(v)) for v in A_X) + "\nNaN\ninf\n-inf\n\n")
    got = drift(str(tmp_path / "a.csv"), "csv", str(tmp_path / "b.csv"), "csv")
    [f] = got["columns"]
    assert f["schema"] == "type changed"  # Int64 -> Float64
    assert f["psi"] == pytest.approx(0.0, abs=1e-12) and f["ks"] == 0.0
    assert f["shares_b"] == pytest.approx(X_SHARES_A)
    assert (got["rows_a"], got["rows_b"]) == (10, 14)
    assert f["nulls_b"] == 1  # the empty line; NaN is a value, not a null
    prof = profile(str(tmp_path / "b.csv"), "csv")
    [col] = prof["columns"]
    assert prof["rows"] == 14 and col["nulls"] == 1
    assert (col["min"], col["max"], col["mean"]) == (1.0, 10.0, 5.5)  # NaN and +-inf left out


def _sample_std(values) -> float:
    m = sum(values) / len(values)
    return math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))


@pytest.mark.parametrize("fmt", FORMATS)
def test_profile_matches_the_hand_computation(tmp_path, fmt):
    a, b = write_tables(tmp_path, fmt)
    pa, pb = profile(a, fmt), profile(b, fmt)
    assert pa["rows"] == 10 and pb["rows"] == 11
    assert [c["name"] for c in pa["columns"]] == ["x", "y", "c", "t", "w", "gone"]
    assert [c["name"] for c in pb["columns"]] == ["x", "y", "c", "t", "w", "new"]
    ca, cb = {c["name"]: c for c in pa["columns"]}, {c["name"]: c for c in pb["columns"]}

    x = ca["x"]
    assert (x["kind"], x["dtype"], x["nulls"]) == ("number", "Int64", 0)
    assert (x["min"], x["max"], x["mean"]) == (1.0, 10.0, 5.5)
    assert x["std"] == pytest.approx(math.sqrt(82.5 / 9))  # sum of (i - 5.5)^2 over 1..10 is 82.5
    assert x["quantiles"] == pytest.approx({"0.05": 1.45, "0.25": 3.25, "0.5": 5.5, "0.75": 7.75, "0.95": 9.55})

    x = cb["x"]
    assert (x["nulls"], x["min"], x["max"]) == (1, 2.0, 15.0)
    assert x["mean"] == pytest.approx(68 / 10)
    assert x["std"] == pytest.approx(_sample_std(B_X)) and x["std"] == pytest.approx(4.341019, abs=1e-6)
    # h = 9q: 0.45 -> 2 + .45*(3-2); 2.25 -> 3 + .25*(4-3); 4.5 -> 5.5; 6.75 -> 8 + .75*(10-8); 8.55 -> 12 + .55*3
    assert x["quantiles"] == pytest.approx({"0.05": 2.45, "0.25": 3.25, "0.5": 5.5, "0.75": 9.5, "0.95": 13.65})
    assert x["quantiles"] == pytest.approx({str(q): lin_quantile(B_X, q) for q in (0.05, 0.25, 0.5, 0.75, 0.95)})

    y = ca["y"]  # sorted: 1 1 2 3 3 4 5 5 6 9
    assert (y["min"], y["max"], y["mean"]) == (1.0, 9.0, 3.9)
    assert y["std"] == pytest.approx(_sample_std(Y))
    assert y["quantiles"] == pytest.approx({"0.05": 1.0, "0.25": 2.25, "0.5": 3.5, "0.75": 5.0, "0.95": 7.65})

    assert (ca["c"]["kind"], ca["c"]["nulls"]) == ("category", 0)
    assert ca["c"]["top"] == [["a", 5], ["b", 3], ["c", 2]]
    assert cb["c"]["nulls"] == 1
    assert cb["c"]["top"] == [["d", 4], ["a", 3], ["b", 3], [None, 1]]  # count desc, then value, null last
    assert cb["t"]["kind"] == "category" and len(cb["t"]["top"]) == 10  # 11 distinct, the top 10 kept
    assert cb["t"]["top"][0] == ["p", 1] and cb["t"]["top"][-1] == ["y", 1]
    assert (cb["w"]["dtype"], cb["w"]["nulls"], cb["w"]["mean"]) == ("Float64", 1, 5.5)
    assert (cb["new"]["min"], cb["new"]["max"], cb["new"]["std"]) == (1.0, 1.0, 0.0)


def test_a_parquet_datetime_column_is_profiled_by_its_earliest_and_latest_value(tmp_path):
    """Parquet keeps datetimes as datetimes (CSV reads them as text): min and max come back as text."""
    from datetime import datetime

    path = tmp_path / "events.parquet"
    when = [datetime(2026, 1, d, 12) for d in (3, 1, 2)] + [None]
    pl.DataFrame({"when": when, "n": [1, 2, 3, 4]}).write_parquet(path)
    col = {c["name"]: c for c in profile(path, "parquet")["columns"]}["when"]
    assert col["dtype"].startswith("Datetime") and col["nulls"] == 1
    assert (col["min"], col["max"]) == ("2026-01-01 12:00:00.000000", "2026-01-03 12:00:00.000000")


def test_unreadable_tables_are_one_sentence(tmp_path):
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"this is not parquet")
    with pytest.raises(MltuiError, match="^Cannot"):
        profile(str(bad), "parquet")
    (tmp_path / "ok.csv").write_text(A_CSV)
    with pytest.raises(MltuiError, match="^Cannot read the tables"):
        drift(str(tmp_path / "ok.csv"), "csv", str(bad), "parquet")


# -- through recorded versions ----------------------------------------------------------------------------------
@pytest.fixture
def conn(ws):
    with closing(open_store(ws.db_path)) as c:
        yield c


def test_drift_and_profile_of_recorded_versions(ws, conn, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "table.csv").write_text(A_CSV)
    (data / "notes.txt").write_text("not a table\n")
    va = add(ws, conn, data, "tbl", store=True).version
    (data / "table.csv").write_text(B_CSV)
    vb = add(ws, conn, data, "tbl", store=True).version

    [result] = drift_of(ws, conn, va, vb)
    assert (result["path_a"], result["path_b"], result["same_bytes"]) == ("table.csv", "table.csv", False)
    cols = {c["name"]: c for c in result["columns"]}
    assert cols["x"]["psi"] == pytest.approx(X_PSI) and cols["x"]["ks"] == pytest.approx(X_KS)
    assert cols["c"]["psi"] == pytest.approx(C_PSI)
    assert [c["name"] for c in result["columns"]][:4] == ["t", "gone", "new", "w"]
    [same] = drift_of(ws, conn, vb, vb)
    assert same["same_bytes"] and all(c.get("psi") in (0.0, None) or abs(c["psi"]) < 1e-12 for c in same["columns"])

    entry = pick(conn, vb, None)
    assert entry.path == b"table.csv"
    prof = profile_of(ws, conn, vb, entry)
    assert (prof["path"], prof["format"], prof["rows"]) == ("table.csv", "csv", 11)
    assert {c["name"]: c for c in prof["columns"]}["x"]["mean"] == pytest.approx(6.8)
    # profiles are kept by content: with the cache's copy gone, the same numbers come back
    obj = cache_of(ws).path(entry.sha256)
    os.chmod(obj, 0o644)
    obj.unlink()
    (data / "table.csv").write_text("changed\n")
    assert profile_of(ws, conn, vb, entry) == prof
    with pytest.raises(MltuiError, match="not in the cache"):
        locate(ws, conn, vb, entry)
    with pytest.raises(NotFound):
        pick(conn, vb, "notes.txt")


def test_tables_of_a_version_added_without_store_are_read_from_the_source(ws, conn, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.csv").write_text(A_CSV)
    time.sleep(RACY_NS / 1e9 + 0.1)  # so the stat cache can vouch for the file
    v = add(ws, conn, data, "plain").version
    [entry] = files(conn, v.id)
    assert locate(ws, conn, v, entry) == data / "a.csv"
    assert profile_of(ws, conn, v, entry)["rows"] == 10
    (data / "a.csv").write_text(B_CSV)
    with pytest.raises(MltuiError, match="not in the cache and its source file has changed"):
        locate(ws, conn, v, entry)
