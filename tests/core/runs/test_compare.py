"""mltui.core.runs.compare (EMA, downsampling, series, best-of), mltui.chart.draw and saved views.

Every number here is computed by hand (or by a plain loop written in the test) and compared
exactly: the point of these tests is that they fail when the numbers change.
"""

from __future__ import annotations

import math
from contextlib import closing

import numpy as np
import polars as pl
import pytest
from conftest import make_run
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import mltui
from mltui.chart import draw
from mltui.core.runs.compare import (
    Series,
    best_of,
    clip_limits,
    compare,
    direction,
    downsample,
    ema,
    load_series,
    read_arrays,
)
from mltui.base.errors import NotFound, UsageError
from mltui.core.runs.listing import list_runs
from mltui.core.runs.views import View, delete_view, get_view, list_views, save_view
from mltui.store.opening import open_store

NAN, INF = math.nan, math.inf
DETERMINISTIC = settings(derandomize=True, database=None, max_examples=300, deadline=None,
                         suppress_health_check=[HealthCheck.too_slow])


# -- helpers ----------------------------------------------------------------------------------


def tb_ema(values: list[float], weight: float) -> list[float]:
    """TensorBoard's debiased EMA, written out as a loop; non-finite points pass through untouched."""
    out, last, count = [], 0.0, 0
    for v in values:
        if not math.isfinite(v):
            out.append(v)
            continue
        last = last * weight + (1 - weight) * v
        count += 1
        out.append(last / (1 - weight**count))
    return out


def same(a: list[float], b: list[float], rel: float = 1e-12) -> bool:
    """Equal lists where NaN equals NaN, infinities match exactly and finite values to `rel`."""
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if math.isnan(x) or math.isnan(y):
            if not (math.isnan(x) and math.isnan(y)):
                return False
        elif math.isinf(x) or math.isinf(y):
            if x != y:
                return False
        elif x != pytest.approx(y, rel=rel, abs=1e-15):
            return False
    return True


def brief_buckets(n: int, buckets: int) -> list[range]:
    """Bucket b holds indices [b*n//B, (b+1)*n//B)."""
    return [range(b * n // buckets, (b + 1) * n // buckets) for b in range(buckets)]


def runs_by_id(conn) -> dict[str, dict]:
    return {r["id"]: r for r in list_runs(conn, limit=0).runs}


# -- ema --------------------------------------------------------------------------------------

VALUES = [1.0, 3.0, 2.0, 5.0, 0.0, 4.0]


@pytest.mark.parametrize("weight", [0.0, 0.5, 0.9])
def test_ema_equals_tensorboard_loop(weight):
    got = ema(pl.Series(VALUES), weight).to_list()
    assert same(got, tb_ema(VALUES, weight))


def test_ema_hand_values_weight_half():
    # w=0.5: 1; (0.5*1 + 1.5)/0.75 = 2.5 ... written out: last=0.5, 0.5*0.5+1.5=1.75 /0.75
    got = ema(pl.Series([1.0, 3.0, 2.0]), 0.5).to_list()
    assert got == pytest.approx([1.0, 1.75 / 0.75, (1.75 * 0.5 + 1.0) / 0.875], rel=1e-12)


def test_ema_weight_zero_is_the_raw_series():
    assert ema(pl.Series(VALUES), 0.0).to_list() == VALUES


@pytest.mark.parametrize("weight", [0.5, 0.9])
def test_ema_nan_and_inf_stay_put_and_do_not_move_the_average(weight):
    raw = [1.0, 3.0, NAN, 2.0, INF, 5.0, -INF, 0.0]
    got = ema(pl.Series(raw), weight).to_list()
    assert math.isnan(got[2]) and got[4] == INF and got[6] == -INF
    # the finite points are smoothed exactly as if the non-finite ones were not there
    finite = [v for v in raw if math.isfinite(v)]
    got_finite = [v for v in got if math.isfinite(v)]
    assert same(got_finite, tb_ema(finite, weight))
    assert same(got, tb_ema(raw, weight))


def test_ema_leading_nan():
    got = ema(pl.Series([NAN, 1.0, 2.0]), 0.5).to_list()
    assert math.isnan(got[0])
    assert got[1:] == pytest.approx([1.0, (0.25 + 1.0) / 0.75], rel=1e-12)


@pytest.mark.parametrize("weight", [-0.1, 1.0, 1.5])
def test_ema_rejects_weights_outside_0_1(weight):
    with pytest.raises(ValueError):
        ema(pl.Series([1.0]), weight)


def test_ema_empty():
    assert ema(pl.Series([], dtype=pl.Float64), 0.6).to_list() == []


# -- downsample -------------------------------------------------------------------------------


def test_downsample_keeps_min_and_max_of_each_bucket_n_divisible():
    # n=12, B=3: buckets [0,4), [4,8), [8,12)
    y = [3.0, 9.0, 1.0, 0.0, 8.0, 5.0, 7.0, 2.0, 6.0, 4.0, 11.0, 10.0]
    x = [10.0 * i for i in range(12)]
    xs, ys = downsample(pl.Series(x), pl.Series(y), 3)
    # b0: min i3 (0), max i1 (9); b1: min i7 (2), max i4 (8); b2: min i9 (4), max i10 (11)
    assert xs == [10.0, 30.0, 40.0, 70.0, 90.0, 100.0]
    assert ys == [9.0, 0.0, 8.0, 2.0, 4.0, 11.0]


# regression (fixed in 6a45300): buckets used to be floor(i*B/n), not [b*n//B, (b+1)*n//B)
def test_downsample_bucket_boundaries_when_n_is_not_a_multiple():
    # n=10, B=3: buckets [0,3), [3,6), [6,10)
    y = [3.0, 9.0, 1.0, 0.0, 8.0, 5.0, 7.0, 2.0, 6.0, 4.0]
    xs, ys = downsample(pl.Series([float(i) for i in range(10)]), pl.Series(y), 3)
    # b0: min i2, max i1; b1: min i3, max i4; b2: min i7, max i6
    assert xs == [1.0, 2.0, 3.0, 4.0, 6.0, 7.0]
    assert ys == [9.0, 1.0, 0.0, 8.0, 7.0, 2.0]


def test_downsample_returns_everything_up_to_2b_points():
    x = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    y = [5.0, 1.0, 4.0, 2.0, 3.0, 0.0]
    assert downsample(pl.Series(x), pl.Series(y), 3) == (x, y)
    assert downsample(pl.Series(x[:1]), pl.Series(y[:1]), 3) == ([0.0], [5.0])
    assert downsample(pl.Series([], dtype=pl.Float64), pl.Series([], dtype=pl.Float64), 3) == ([], [])


def test_downsample_drops_nan_and_keeps_infinities():
    x = [0.0, 1.0, 2.0, 3.0, 4.0]
    y = [1.0, NAN, INF, -INF, NAN]
    assert downsample(pl.Series(x), pl.Series(y), 10) == ([0.0, 2.0, 3.0], [1.0, INF, -INF])


def test_downsample_nan_dropped_before_bucketing():
    # 8 finite points among NaNs, B=2: the 8 are split 4/4 after dropping the NaNs
    y = [NAN, 4.0, 1.0, NAN, 3.0, 2.0, 8.0, NAN, 5.0, 7.0, 6.0]
    x = [float(i) for i in range(len(y))]
    xs, ys = downsample(pl.Series(x), pl.Series(y), 2)
    # finite: (1,4) (2,1) (4,3) (5,2) | (6,8) (8,5) (9,7) (10,6)
    assert xs == [1.0, 2.0, 6.0, 8.0]
    assert ys == [4.0, 1.0, 8.0, 5.0]


def test_downsample_at_most_2b_points_in_x_order():
    n = 10_000
    x = pl.Series(np.arange(n, dtype="f8"))
    y = pl.Series(np.sin(np.arange(n) / 37.0) + np.arange(n) % 7)
    xs, ys = downsample(x, y, 150)
    assert 150 <= len(xs) <= 300 and len(xs) == len(ys)
    assert xs == sorted(xs) and len(set(xs)) == len(xs)
    yv = y.to_list()
    assert all(yv[int(xx)] == yy for xx, yy in zip(xs, ys))  # real points, not averages
    assert min(ys) == min(yv) and max(ys) == max(yv)


finite_floats = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)


@DETERMINISTIC
@given(st.integers(1, 20), st.integers(3, 30), st.data())
def test_downsample_property_n_multiple_of_b(buckets, per_bucket, data):
    n = buckets * per_bucket  # > 2B: downsampling happens; both bucket formulas agree here
    y = data.draw(st.lists(finite_floats, min_size=n, max_size=n))
    xs, ys = downsample(pl.Series([float(i) for i in range(n)]), pl.Series(y, dtype=pl.Float64), buckets)
    assert len(xs) <= 2 * buckets
    assert xs == sorted(xs) and len(set(xs)) == len(xs)
    assert all(y[int(i)] == v for i, v in zip(xs, ys))
    kept = set(ys)
    for idx in brief_buckets(n, buckets):
        part = [y[i] for i in idx]
        assert min(part) in kept and max(part) in kept


@DETERMINISTIC
@given(st.lists(st.one_of(finite_floats, st.just(NAN)), max_size=300), st.integers(1, 40))
def test_downsample_property_general_shape(y, buckets):
    xs, ys = downsample(pl.Series([float(i) for i in range(len(y))]), pl.Series(y, dtype=pl.Float64), buckets)
    finite = [(float(i), v) for i, v in enumerate(y) if not math.isnan(v)]
    assert not any(math.isnan(v) for v in ys)
    if len(finite) <= 2 * buckets:
        assert list(zip(xs, ys)) == finite
        return
    assert len(xs) <= 2 * buckets
    assert xs == sorted(xs) and len(set(xs)) == len(xs)
    assert all(y[int(i)] == v for i, v in zip(xs, ys))
    vals = [v for _, v in finite]
    assert min(vals) in ys and max(vals) in ys


# regression (fixed in 6a45300): a bucket's min or max was lost when n was not a multiple of B
@DETERMINISTIC
@given(st.lists(finite_floats, min_size=1, max_size=200), st.integers(1, 40))
@example([0.0, -1.0, -2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], 4)  # found by hypothesis: bucket 0 is [0, 2), min -1
def test_downsample_property_every_bucket_min_and_max_kept(y, buckets):
    xs, ys = downsample(pl.Series([float(i) for i in range(len(y))]), pl.Series(y, dtype=pl.Float64), buckets)
    if len(y) <= 2 * buckets:
        assert ys == y
        return
    assert len(xs) <= 2 * buckets
    kept = set(ys)
    for idx in brief_buckets(len(y), buckets):
        part = [y[i] for i in idx]
        assert min(part) in kept and max(part) in kept


# -- direction --------------------------------------------------------------------------------


@pytest.mark.parametrize("key, expected", [
    ("val/loss", "min"), ("train/loss", "min"), ("loss", "min"), ("val_loss", "min"), ("val-loss", "min"),
    ("train/acc", "max"), ("val/accuracy", "max"), ("f1", "max"), ("val/f1", "max"),
    ("perplexity", "min"), ("val/ppl", "min"), ("test/error", "min"), ("wer", "min"), ("mse", "min"),
    ("auc", "max"), ("reward", "max"), ("top1", "max"), ("bleu", "max"),
    ("weird", "max"), ("lr", "max"),  # no word known: higher is better
    ("val/loss_acc", "max"), ("train/acc_loss", "min"),  # the last known word decides
])
def test_direction_from_names(key, expected):
    assert direction(key) == expected


def test_direction_overrides_win():
    assert direction("weird", {"weird": "min"}) == "min"
    assert direction("val/loss", {"val/loss": "max"}) == "max"
    assert direction("val/loss", {"other": "max"}) == "min"


# -- read_arrays ------------------------------------------------------------------------------


def test_read_arrays_sorted_latest_write_wins(ws):
    run = mltui.init(name="relog", workspace=ws.project_dir, flush_interval=60.0)
    for step in range(5):
        run.log({"loss": float(step * 10)}, step=step)
    run.flush()
    run.log({"loss": 99.0}, step=3)  # out of order, re-logged
    run.log({"loss": 98.0}, step=2)
    run.log({"loss": 7.0}, step=7)
    run.log({"loss": 6.0}, step=6)
    run.finish()
    with closing(open_store(ws.db_path)) as conn:
        steps, values, times = read_arrays(conn, run.id, "loss")
        assert steps.tolist() == [0, 1, 2, 3, 4, 6, 7]
        assert values.tolist() == [0.0, 10.0, 98.0, 99.0, 40.0, 6.0, 7.0]
        assert steps.dtype == np.int64 and values.dtype == np.float64 and times.shape == (7,)
        # the rewritten steps carry the time of their later write
        assert times[2] >= times[4] and times[3] >= times[4]
        assert runs_by_id(conn)[run.id]["metrics"]["loss"]["last"] == 7.0


def test_read_arrays_same_step_twice_in_one_batch(ws):
    run = mltui.init(name="twice", workspace=ws.project_dir, flush_interval=60.0)
    run.log({"m": 1.0}, step=0)
    run.log({"m": 2.0}, step=1)
    run.log({"m": 3.0}, step=1)
    run.finish()
    with closing(open_store(ws.db_path)) as conn:
        steps, values, _ = read_arrays(conn, run.id, "m")
        assert steps.tolist() == [0, 1] and values.tolist() == [1.0, 3.0]


def test_read_arrays_missing_series_is_empty(ws):
    rid = make_run(ws.project_dir, "a", {"loss": [1.0]})
    with closing(open_store(ws.db_path)) as conn:
        steps, values, times = read_arrays(conn, rid, "nope")
        assert steps.size == values.size == times.size == 0


# -- load_series ------------------------------------------------------------------------------


def _timed_run(project, name, key, points):
    """points: [(step, value, wall time)], logged with the given wall times (the importer path)."""
    run = mltui.init(name=name, workspace=project, flush_interval=60.0)
    for step, value, when in points:
        run._log_at({key: value}, step, when)
    run.finish()
    return run.id


@pytest.fixture
def timed(ws):
    a = _timed_run(ws.project_dir, "a", "loss", [(0, 1.0, 1000.0), (1, 3.0, 1000.5), (2, 2.0, 1002.0)])
    b = _timed_run(ws.project_dir, "b", "loss", [(5, 4.0, 2000.0), (10, 1.0, 2010.0)])
    c = _timed_run(ws.project_dir, "c", "acc", [(0, 0.5, 3000.0)])  # no loss: skipped
    with closing(open_store(ws.db_path)) as conn:
        yield conn, a, b, c


def test_load_series_step_axis(timed):
    conn, a, b, c = timed
    out = load_series(conn, [a, c, b], "loss", axis="step")
    assert [s.run_id for s in out] == [a, b]
    assert [(s.x, s.y, s.points, s.key) for s in out] == [
        ([0.0, 1.0, 2.0], [1.0, 3.0, 2.0], 3, "loss"),
        ([5.0, 10.0], [4.0, 1.0], 2, "loss"),
    ]


def test_load_series_time_and_relative_axes(timed):
    conn, a, b, c = timed
    t = load_series(conn, [a, b, c], "loss", axis="time")
    assert [s.x for s in t] == [[1000.0, 1000.5, 1002.0], [2000.0, 2010.0]]
    r = load_series(conn, [a, b, c], "loss", axis="relative")
    assert [s.x for s in r] == [[0.0, 0.5, 2.0], [0.0, 10.0]]
    assert [s.y for s in r] == [[1.0, 3.0, 2.0], [4.0, 1.0]]


def test_load_series_smoothing(timed):
    conn, a, b, _ = timed
    out = load_series(conn, [a, b], "loss", smoothing=0.5)
    assert out[0].y == pytest.approx([1.0, 1.75 / 0.75, (1.75 * 0.5 + 1.0) / 0.875], rel=1e-12)
    assert out[1].y == pytest.approx([4.0, (2.0 * 0.5 + 0.5) / 0.75], rel=1e-12)
    assert out[0].x == [0.0, 1.0, 2.0]


def test_load_series_bad_axis(timed):
    conn, a, _, _ = timed
    with pytest.raises(ValueError):
        load_series(conn, [a], "loss", axis="epoch")


def test_load_series_downsamples_after_smoothing(ws):
    values = [float((i * 7) % 11) for i in range(40)]
    rid = make_run(ws.project_dir, "long", {"m": values})
    with closing(open_store(ws.db_path)) as conn:
        (s,) = load_series(conn, [rid], "m", smoothing=0.6, buckets=4)
    smooth = tb_ema(values, 0.6)
    expected = []
    for idx in brief_buckets(40, 4):  # 40 is a multiple of 4: buckets of 10
        part = [(smooth[i], i) for i in idx]
        expected += sorted({min(part)[1], max(part)[1]})
    assert s.points == 40
    assert s.x == [float(i) for i in expected]
    assert s.y == pytest.approx([smooth[i] for i in expected], rel=1e-12)


def test_load_series_empty_run_list(timed):
    conn, *_ = timed
    assert load_series(conn, [], "loss") == []


# -- clip_limits ------------------------------------------------------------------------------


def test_clip_limits_quantiles_padded():
    ys = [float(v) for v in range(101)]  # quantiles 0.02 and 0.98 are 2 and 98
    lo, hi = clip_limits([Series("r", "k", list(range(101)), ys, 101)])
    assert (lo, hi) == pytest.approx((2 - 4.8, 98 + 4.8))


def test_clip_limits_too_few_points():
    assert clip_limits([Series("r", "k", [0, 1, 2, 3], [1.0, 2.0, INF, NAN], 4)]) is None


# -- best_of / compare ------------------------------------------------------------------------


def test_best_of_first_step_reached():
    steps = np.array([0, 1, 2, 3, 4])
    values = np.array([3.0, 1.0, NAN, 1.0, 5.0])
    assert best_of(steps, values, "min") == (1.0, 1)
    assert best_of(steps, values, "max") == (5.0, 4)
    assert best_of(np.array([10, 20]), np.array([2.0, 2.0]), "max") == (2.0, 10)


def test_best_of_nothing_to_pick():
    assert best_of(np.array([0, 1]), np.array([NAN, NAN]), "min") == (None, None)
    assert best_of(np.array([], dtype="i8"), np.array([]), "max") == (None, None)


def test_best_of_with_infinities():
    steps = np.array([0, 1, 2])
    values = np.array([2.0, INF, 0.5])
    assert best_of(steps, values, "min") == (0.5, 2)
    assert best_of(steps, values, "max") == (INF, 1)


@pytest.fixture
def trio(ws):
    p = ws.project_dir
    a = make_run(p, "a", {"val/loss": [0.5, 0.2, 0.3], "train/acc": [0.1, 0.7], "f1": [0.2, 0.4],
                          "perplexity": [9.0, 7.0], "weird": [1.0, 3.0]},
                 params={"lr": 0.1, "opt": "adam", "seed": 1})
    b = make_run(p, "b", {"val/loss": [0.4, 0.2], "train/acc": [0.6], "f1": [0.9, NAN],
                          "perplexity": [8.0, 6.5], "weird": [2.0]},
                 params={"lr": 0.01, "opt": "adam", "seed": 1})
    c = make_run(p, "c", {"val/loss": [0.9], "train/acc": [0.7, 0.5], "f1": [NAN],
                          "perplexity": [5.0, 8.0], "weird": [0.5, 4.0]},
                 params={"lr": 0.1, "opt": "adam", "seed": 2, "extra": True})
    with closing(open_store(ws.db_path)) as conn:
        yield ws, conn, a, b, c


def _cells(comp, key):
    return {rid: (c.last, c.best, c.best_step, c.is_best) for rid, cells in comp.cells.items()
            if (c := cells[key]) is not None}


def test_compare_best_and_ties(trio):
    ws, conn, a, b, c = trio
    runs = runs_by_id(conn)
    comp = compare(conn, [runs[a], runs[b], runs[c]])
    assert comp.metrics == ["f1", "perplexity", "train/acc", "val/loss", "weird"]
    assert comp.directions == {"f1": "max", "perplexity": "min", "train/acc": "max", "val/loss": "min",
                               "weird": "max"}
    assert _cells(comp, "val/loss") == {a: (0.3, 0.2, 1, True), b: (0.2, 0.2, 1, True), c: (0.9, 0.9, 0, False)}
    assert _cells(comp, "train/acc") == {a: (0.7, 0.7, 1, True), b: (0.6, 0.6, 0, False),
                                         c: (0.5, 0.7, 0, True)}
    assert _cells(comp, "perplexity") == {a: (7.0, 7.0, 1, False), b: (6.5, 6.5, 1, False),
                                          c: (8.0, 5.0, 0, True)}
    assert _cells(comp, "weird") == {a: (3.0, 3.0, 1, False), b: (2.0, 2.0, 0, False), c: (4.0, 4.0, 1, True)}
    f1 = _cells(comp, "f1")
    assert f1[a] == (0.4, 0.4, 1, False)
    assert math.isnan(f1[b][0]) and f1[b][1:] == (0.9, 0, True)  # last is NaN, best ignores it
    assert math.isnan(f1[c][0]) and f1[c][1:] == (None, None, False)  # only NaN: no best, never flagged


def test_compare_direction_override_from_config(trio):
    ws, conn, a, b, c = trio
    text = ws.config_path.read_text()
    ws.config_path.write_text(text.replace('# "val/perplexity" = "min"', '"weird" = "min"\n"f1" = "min"'))
    assert ws.config().directions == {"weird": "min", "f1": "min"}
    runs = runs_by_id(conn)
    comp = compare(conn, [runs[a], runs[b], runs[c]], overrides=ws.config().directions)
    assert comp.directions["weird"] == "min" and comp.directions["f1"] == "min"
    assert comp.directions["val/loss"] == "min" and comp.directions["train/acc"] == "max"
    assert _cells(comp, "weird") == {a: (3.0, 1.0, 0, False), b: (2.0, 2.0, 0, False), c: (4.0, 0.5, 0, True)}
    f1 = _cells(comp, "f1")
    assert f1[a] == (0.4, 0.2, 0, True) and f1[b][1:] == (0.9, 0, False)


def test_compare_selected_metrics_and_missing_cells(trio):
    ws, conn, a, b, c = trio
    d = make_run(ws.project_dir, "d", {"other": [1.0]}, params={"lr": 0.1, "opt": "adam", "seed": 1})
    runs = runs_by_id(conn)
    comp = compare(conn, [runs[a], runs[d]], ["val/loss"])
    assert comp.metrics == ["val/loss"]
    cd = comp.cells[d]["val/loss"]
    assert (cd.last, cd.best, cd.best_step, cd.is_best) == (None, None, None, False)
    assert comp.cells[a]["val/loss"].is_best is True


def test_compare_params_differ_and_all(trio):
    ws, conn, a, b, c = trio
    runs = runs_by_id(conn)
    comp = compare(conn, [runs[a], runs[b], runs[c]])
    assert comp.params_all == ["extra", "lr", "opt", "seed"]
    assert comp.params_differ == ["extra", "lr", "seed"]  # opt is adam everywhere
    comp = compare(conn, [runs[a], runs[b]])
    assert comp.params_all == ["lr", "opt", "seed"]
    assert comp.params_differ == ["lr"]
    comp = compare(conn, [runs[a]])
    assert comp.params_differ == []


def test_compare_cache_reads_again_when_a_series_grows(ws):
    run = mltui.init(name="live", workspace=ws.project_dir, flush_interval=60.0)
    run.log({"loss": 0.5}, step=0)
    run.log({"loss": 0.4}, step=1)
    run.flush()
    cache: dict = {}
    with closing(open_store(ws.db_path)) as conn:
        cell = compare(conn, [runs_by_id(conn)[run.id]], cache=cache).cells[run.id]["loss"]
        assert (cell.last, cell.best, cell.best_step) == (0.4, 0.4, 1) and len(cache) == 1
        run.log({"loss": 0.1}, step=1)  # the same step again: last_step stays, the count grows
        run.flush()
        cell = compare(conn, [runs_by_id(conn)[run.id]], cache=cache).cells[run.id]["loss"]
        assert (cell.best, cell.best_step) == (0.1, 1)
        run.log({"loss": 0.05}, step=2)
        run.finish()
        cell = compare(conn, [runs_by_id(conn)[run.id]], cache=cache).cells[run.id]["loss"]
        assert (cell.last, cell.best, cell.best_step) == (0.05, 0.05, 2)
        # nothing new: the cached figure is used (a stale entry would show if the token ignored growth)
        cache[next(k for k in cache if k[3] == 4)] = (123.0, 9)
        cell = compare(conn, [runs_by_id(conn)[run.id]], cache=cache).cells[run.id]["loss"]
        assert (cell.best, cell.best_step) == (123.0, 9)


def test_compare_sys_metrics_left_out_by_default(ws):
    rid = make_run(ws.project_dir, "s", {"sys/gpu_util": [50.0], "loss": [1.0]})
    with closing(open_store(ws.db_path)) as conn:
        comp = compare(conn, [runs_by_id(conn)[rid]])
        assert comp.metrics == ["loss"]


def test_compare_populated_best_runs(populated):
    with closing(open_store(".mltui/mltui.db")) as conn:
        runs = list(runs_by_id(conn).values())
        comp = compare(conn, runs)
    name = {v: k for k, v in populated.items()}
    best = {key: sorted(name[rid] for rid, cells in comp.cells.items() if cells[key].is_best)
            for key in comp.metrics}
    assert best == {"delta": ["lost-run"], "loss": ["vit-adamw"], "val/acc": ["vit-adamw"]}
    nan_loss = comp.cells[populated["nan-run"]]["loss"]
    assert math.isnan(nan_loss.last) and (nan_loss.best, nan_loss.best_step) == (0.5, 1)
    inf_loss = comp.cells[populated["inf-run"]]["loss"]
    assert (inf_loss.last, inf_loss.best, inf_loss.best_step) == (INF, 1.0, 1)
    delta = comp.cells[populated["lost-run"]]["delta"]
    assert (delta.last, delta.best, delta.best_step) == (-INF, 1.0, 0)


# -- drawing: edge cases ----------------------------------------------------------------------


def S(x, y):  # noqa: N802 - a short constructor for chart inputs
    return Series("r", "k", [float(v) for v in x], [float(v) for v in y], len(x))


def is_chart(text: str, label: str | None = None) -> bool:
    return "┌" in text and "└" in text and (label is None or label in text)


@pytest.mark.parametrize("series, expect", [
    ([S([0, 1], [NAN, NAN])], "Nothing to draw: no points to draw."),
    ([S([0, 1], [INF, -INF])], "Nothing to draw: no points to draw."),
    ([], "Nothing to draw: no points to draw."),
    ([S([], [])], "Nothing to draw: no points to draw."),
    ([S([], []), S([], [])], "Nothing to draw: no points to draw."),
])
def test_draw_nothing_is_a_sentence(series, expect):
    assert draw(series, ["lbl"] * len(series), 80, 20, colour=False) == expect


def test_draw_titled_empty():
    assert draw([S([0], [NAN])], ["x"], 80, 20, title="val/loss", colour=False) == "val/loss: no points to draw."


@pytest.mark.parametrize("series", [
    [S([0, 1, 2], [1.0, INF, 2.0])],
    [S([0, 1, 2, 3], [1.0, NAN, -INF, 2.0])],
    [S([0], [1.0])],  # one point
    [S([0], [1.0]), S([0], [2.0])],  # one point each, same x
    [S([0, 1, 2], [3.0, 3.0, 3.0])],  # flat
    [S([0, 1], [1.0, 2.0]), S([], [])],  # one run with nothing
    [S([5, 6], [1e30, -1e30])],  # a diverged run
])
def test_draw_edge_series_give_a_chart(series):
    out = draw(series, [f"run{i}" for i in range(len(series))], 80, 20, title="m", colour=False)
    assert is_chart(out, "run0")
    assert len(out.splitlines()) >= 20


def test_draw_reports_non_finite_points_in_title():
    out = draw([S([0, 1, 2], [1.0, INF, 2.0])], ["a"], 80, 20, title="loss", colour=False)
    assert "loss  (1 non-finite points not drawn)" in out


def test_draw_log_y_with_non_positive_values():
    assert draw([S([0, 1, 2], [-1.0, 0.0, -3.0])], ["a"], 80, 20, log_y=True, colour=False) == (
        "Nothing to draw: no finite positive values to draw on a log scale.")
    assert draw([S([0, 1], [0.0, NAN])], ["a"], 80, 20, log_y=True, title="t", colour=False) == (
        "t: no finite positive values to draw on a log scale.")
    out = draw([S([0, 1, 2], [-1.0, 1.0, 10.0])], ["a"], 80, 20, log_y=True, colour=False)
    assert is_chart(out, "a")


def test_draw_ylim_clips():
    out = draw([S(range(10), [1, 2, 3, 4, 500, 5, 6, 7, 8, 9])], ["a"], 60, 15, ylim=(0.0, 10.0), colour=False)
    assert is_chart(out) and "500" not in out


# regression (fixed in 6a45300): log y with a clip range at or below zero raised 'math domain error'
def test_draw_log_y_with_clip_limits_below_zero():
    series = [S(range(101), [-10.0] * 100 + [1.0])]
    lim = clip_limits(series)
    assert lim == pytest.approx((-10.5, -9.5))
    out = draw(series, ["a"], 80, 20, log_y=True, ylim=lim, colour=False)
    assert is_chart(out, "a") or "no finite positive values" in out


def test_draw_size_within_the_terminal(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("LINES", "60")
    out = draw([S([0, 1, 2], [1.0, 2.0, 3.0])], ["a"], 150, 40, colour=False)
    lines = out.splitlines()
    assert len(lines) == 40 and max(len(line) for line in lines) == 150


# regression (fixed in 6a45300): plotext capped the chart at the terminal's size (80x24 off a tty)
def test_draw_size_is_what_was_asked_even_in_a_small_terminal(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setenv("LINES", "24")
    out = draw([S([0, 1, 2], [1.0, 2.0, 3.0])], ["a"], 150, 40, colour=False)
    lines = out.splitlines()
    assert len(lines) == 40 and max(len(line) for line in lines) == 150


def test_draw_colour_and_plain():
    series = [S([0, 1, 2], [1.0, 2.0, 3.0]), S([0, 1, 2], [3.0, 2.0, 1.0])]
    coloured = draw(series, ["a", "b"], 60, 15, colour=True)
    plain = draw(series, ["a", "b"], 60, 15, colour=False)
    assert "\x1b[" in coloured and "\x1b[" not in plain
    assert is_chart(plain, "a") and "b" in plain


@pytest.mark.parametrize("axis, label", [("step", "step"), ("time", "wall time (s since "),
                                         ("relative", "time since each run started (s)")])
def test_draw_axes_labels(axis, label):
    series = [S([100.0, 101.0, 105.0], [1.0, 2.0, 3.0])]
    if axis == "relative":
        series = [S([0.0, 1.0, 5.0], [1.0, 2.0, 3.0])]
    assert label in draw(series, ["a"], 80, 20, axis=axis, colour=False)


def test_draw_through_load_series_edge_runs(ws):
    p = ws.project_dir
    ids = {
        "spiky": make_run(p, "spiky", {"loss": [1.0, INF, 0.5, NAN, 0.25], "allnan": [NAN, NAN],
                                       "single": [2.0], "signed": [-1.0, 0.0, 2.0]}),
        "other": make_run(p, "other", {"b_only": [1.0, 2.0, 3.0], "allnan": [INF]}),
        "empty": make_run(p, "empty"),
    }
    with closing(open_store(ws.db_path)) as conn:
        order = [ids["spiky"], ids["other"], ids["empty"]]
        def chart(key, **kw):
            series = load_series(conn, order, key, buckets=60)
            return series, draw(series, [s.run_id for s in series], 80, 20, title=key, colour=False, **kw)

        series, out = chart("loss")
        assert [s.y for s in series] == [[1.0, INF, 0.5, 0.25]]  # NaN dropped before drawing
        assert is_chart(out, ids["spiky"])
        series, out = chart("allnan")
        assert [s.run_id for s in series] == [ids["spiky"], ids["other"]]
        assert out == "allnan: no points to draw."
        series, out = chart("single")
        assert [s.y for s in series] == [[2.0]] and is_chart(out, ids["spiky"])
        series, out = chart("b_only")
        assert [s.run_id for s in series] == [ids["other"]] and is_chart(out, ids["other"])
        assert load_series(conn, [ids["empty"]], "loss") == []
        _, out = chart("signed", log_y=True)
        assert is_chart(out, ids["spiky"])
        _, out = chart("allnan", log_y=True)
        assert out == "allnan: no finite positive values to draw on a log scale."


# regression (fixed in 6a45300): NaN dropped by downsample was not counted in the chart title
def test_draw_title_counts_nan_and_inf_not_drawn(ws):
    rid = make_run(ws.project_dir, "spiky", {"loss": [1.0, INF, 0.5, NAN, 0.25]})
    with closing(open_store(ws.db_path)) as conn:
        series = load_series(conn, [rid], "loss")
    out = draw(series, ["spiky"], 80, 20, title="loss", colour=False)
    assert "(2 non-finite points not drawn)" in out


def test_compare_plot_cli_edge_cases(ws, cli):
    p = ws.project_dir
    spiky = make_run(p, "spiky", {"loss": [1.0, INF, 0.5, NAN, 0.25], "allnan": [NAN, NAN],
                                  "single": [2.0], "signed": [-1.0, 0.0, 2.0]})
    other = make_run(p, "other", {"b_only": [1.0, 2.0, 3.0]})
    empty = make_run(p, "empty")
    out = cli("compare", spiky, other, empty, "--plot")
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""
    text = out.stdout
    assert "\x1b[" not in text  # not a terminal: no colour codes
    assert "\nallnan: no points to draw.\n" in text
    assert text.count("┌") == 4  # b_only, loss, signed, single
    assert "loss  (2 non-finite points not drawn)" in text  # one inf, one NaN
    assert "spiky" in text and "other" in text
    logy = cli("compare", spiky, other, empty, "--plot", "--log-y")
    assert logy.returncode == 0, logy.stderr
    assert "\nallnan: no finite positive values to draw on a log scale.\n" in logy.stdout
    assert logy.stdout.count("┌") == 4
    for axis in ("time", "relative"):
        res = cli("compare", spiky, other, "--plot", "--axis", axis, "--smooth", "0.6", "--clip", "-m", "loss")
        assert res.returncode == 0, res.stderr
        assert res.stdout.count("┌") == 1
    only_empty = cli("compare", empty, "--plot")
    assert only_empty.returncode == 0 and "┌" not in only_empty.stdout
    assert "params that differ" in only_empty.stdout


# regression (fixed in 6a45300): `compare --plot --log-y --clip` exited 1 with a math domain error
def test_compare_plot_cli_log_y_clip_negative(ws, cli):
    rid = make_run(ws.project_dir, "neg", {"gap": [-10.0] * 100 + [1.0]})
    out = cli("compare", rid, "--plot", "--log-y", "--clip")
    assert out.returncode == 0, out.stderr


# -- saved views ------------------------------------------------------------------------------


def test_views_round_trip(ws):
    with closing(open_store(ws.db_path)) as conn:
        v1 = View(runs=["abc", "def"], metrics=["loss"], axis="relative", smoothing=0.6, log_y=True, clip=True)
        v2 = View(where="params.lr > 0.01")
        save_view(conn, "mine", v1)
        save_view(conn, "by-filter", v2)
        assert get_view(conn, "mine") == v1
        assert get_view(conn, "by-filter") == v2
        listed = list_views(conn)
        assert [(n, v) for n, v, _ in listed] == [("by-filter", v2), ("mine", v1)]
        assert all(isinstance(t, float) for _, _, t in listed)
        v3 = View(runs=["zzz"])
        save_view(conn, "mine", v3)  # same name: replaced
        assert get_view(conn, "mine") == v3 and len(list_views(conn)) == 2
        delete_view(conn, "mine")
        with pytest.raises(NotFound):
            get_view(conn, "mine")
        with pytest.raises(NotFound):
            delete_view(conn, "mine")
        assert [n for n, _, _ in list_views(conn)] == ["by-filter"]
    with closing(open_store(ws.db_path)) as conn:  # survives reopening the store
        assert get_view(conn, "by-filter") == v2


@pytest.mark.parametrize("name", ["", "   ", "a" * 81, "bad\nname", "tab\there", "\x00"])
def test_views_bad_names(ws, name):
    with closing(open_store(ws.db_path)) as conn:
        with pytest.raises(UsageError):
            save_view(conn, name, View(runs=["abc"]))
        assert list_views(conn) == []


def test_views_name_of_80_is_fine(ws):
    with closing(open_store(ws.db_path)) as conn:
        save_view(conn, "n" * 80, View(runs=["abc"]))
        assert get_view(conn, "n" * 80).runs == ["abc"]


@pytest.mark.parametrize("view", [View(), View(runs=[], where=""), View(runs=["a"], axis="epoch"),
                                  View(runs=["a"], smoothing=1.0), View(runs=["a"], smoothing=-0.1)])
def test_views_empty_or_bad_views_are_refused(ws, view):
    with closing(open_store(ws.db_path)) as conn:
        with pytest.raises(UsageError):
            save_view(conn, "v", view)
        assert list_views(conn) == []


def test_view_from_json_ignores_unknown_fields():
    assert View.from_json('{"runs": ["a"], "future": 1}') == View(runs=["a"])


# regression (fixed in 6a45300): a name saved stripped could not be opened as typed
def test_views_name_with_spaces_round_trips(ws):
    with closing(open_store(ws.db_path)) as conn:
        save_view(conn, " x ", View(runs=["abc"]))
        assert get_view(conn, " x ").runs == ["abc"]
