"""Compare in groups (core/runs/compare_groups.py) and its chart (mltui.chart.draw_bands): the compared runs
grouped as the Runs pane groups them, each group's mean ± std (sample std) step by step on a common grid,
checked against a hand computation, and the band shaded between its edges. Real runs logged through the
tracking API into a real store."""

from __future__ import annotations

import math
import re
from contextlib import closing

import pytest

import mltui
from mltui.base.errors import UsageError
from mltui.chart import FILL_MARKER, draw_bands
from mltui.core.runs.compare_groups import _id_filter, band_limits, group_bands, group_compared, n_text
from mltui.core.runs.groups import SeriesBand
from mltui.store.opening import open_store
from mltui.store.where import compile_filter


def _run(project, name: str, params: dict, points: dict[int, float], key: str = "loss") -> str:
    run = mltui.init(name=name, params=params, workspace=project, flush_interval=60.0)
    for step, value in points.items():
        run.log({key: value}, step=step)
    run.finish()
    return run.id


def test_the_compared_runs_make_groups_with_n_and_labels_of_what_differs(ws):
    """2 configs x 3 seeds compared (a third config in the store is not): 2 groups of N = 3, labelled by
    the param that differs (epochs is the same everywhere), stats of the last value by hand."""
    ids: dict[str, list[str]] = {"mlp": [], "cnn": []}
    for model, base in (("mlp", 1.0), ("cnn", 2.0)):
        for seed in range(3):
            ids[model].append(_run(ws.project_dir, f"{model}-{seed}", {"model": model, "seed": seed, "epochs": 3},
                                   {0: base * 10, 1: base + seed}))
    _run(ws.project_dir, "other", {"model": "rnn", "seed": 0, "epochs": 3}, {0: 5.0})
    with closing(open_store(ws.db_path)) as conn:
        grouped = group_compared(conn, ids["mlp"] + ids["cnn"], None, ["loss"])
    assert grouped.columns == ["params.epochs", "params.model"] and grouped.varying == ["params.model"]
    assert [g.n for g in grouped.groups] == [3, 3]
    assert grouped.labels == ["model=cnn", "model=mlp"]  # the newest run's group first
    cnn = grouped.groups[0]
    assert sorted(cnn.run_ids) == sorted(ids["cnn"])
    # last values 2, 3, 4: mean 3, sample std sqrt(((-1)^2 + 0 + 1^2) / 2) = 1
    assert cnn.stats["loss"].mean == pytest.approx(3.0) and cnn.stats["loss"].std == pytest.approx(1.0)
    assert (cnn.stats["loss"].min, cnn.stats["loss"].max) == (2.0, 4.0)


def test_default_spec_without_seeds_groups_by_every_param_and_a_bad_spec_is_a_usage_error(ws):
    a = _run(ws.project_dir, "a", {"lr": 0.1}, {0: 1.0})
    b = _run(ws.project_dir, "b", {"lr": 0.1}, {0: 3.0})
    c = _run(ws.project_dir, "c", {"lr": 0.2}, {0: 5.0})
    with closing(open_store(ws.db_path)) as conn:
        grouped = group_compared(conn, [a, b, c], None, ["loss"])  # '*,-seed' with no seed param: '*'
        assert grouped.spec == "*,-seed" and grouped.columns == ["params.lr"]
        assert sorted((label, g.n) for label, g in zip(grouped.labels, grouped.groups)) == [("lr=0.1", 2),
                                                                                            ("lr=0.2", 1)]
        with pytest.raises(UsageError, match="nosuch"):
            group_compared(conn, [a, b], "nosuch", ["loss"])


def test_an_id_with_quotes_is_matched_as_itself():
    """The filter that picks the compared runs quotes each id: a quote or backslash in one is data."""
    odd = ["it's", "back\\slash", "plain"]
    assert compile_filter(_id_filter(odd), archived=True) == ("(runs.id IN (?, ?, ?))", odd)


def test_band_mean_and_sample_std_by_hand_on_a_common_grid(ws):
    """Three seeds of one config that logged different steps: a at 0, 2, 4 (y = step); b at 0..4 every
    step (y = 2 step); c at 0 and 4 only (y = 3 + step). On the grid 0..4 each run is interpolated between
    its own points (a at 1 is 1, c at 2 is 5) and the sample std (n - 1) is taken per step."""
    a = _run(ws.project_dir, "a", {"model": "m", "seed": 0}, {0: 0.0, 2: 2.0, 4: 4.0})
    b = _run(ws.project_dir, "b", {"model": "m", "seed": 1}, {s: 2.0 * s for s in range(5)})
    c = _run(ws.project_dir, "c", {"model": "m", "seed": 2}, {0: 3.0, 4: 7.0})
    with closing(open_store(ws.db_path)) as conn:
        grouped = group_compared(conn, [a, b, c], "*,-seed", ["loss"])
        [band] = group_bands(conn, grouped.groups, "loss")
    assert band.steps == [0.0, 1.0, 2.0, 3.0, 4.0] and band.n == [3] * 5
    for step, mean, std in zip(band.steps, band.mean, band.std):
        values = [step, 2 * step, 3 + step]
        hand_mean = sum(values) / 3
        hand_std = math.sqrt(sum((v - hand_mean) ** 2 for v in values) / 2)
        assert mean == pytest.approx(hand_mean) and std == pytest.approx(hand_std)
    # at step 2: values 2, 4, 5 -> mean 11/3, std sqrt(((2-11/3)^2 + (4-11/3)^2 + (5-11/3)^2) / 2)
    assert band.mean[2] == pytest.approx(11 / 3) and band.std[2] == pytest.approx(math.sqrt(7 / 3))
    lower, upper = band_limits(band, "std")
    assert lower[2] == pytest.approx(11 / 3 - math.sqrt(7 / 3)) and upper[2] == pytest.approx(11 / 3 + math.sqrt(7 / 3))
    assert band_limits(band, "minmax") == (band.min, band.max) and band.min[2] == 2.0 and band.max[2] == 5.0
    assert band_limits(band, "none") is None
    assert n_text(band, grouped.groups[0]) == "N=3"


def test_runs_that_stop_early_lower_n_and_one_run_has_no_spread(ws):
    a = _run(ws.project_dir, "a", {"model": "m", "seed": 0}, {0: 1.0, 10: 3.0})
    b = _run(ws.project_dir, "b", {"model": "m", "seed": 1}, {0: 3.0, 5: 5.0})  # stops at 5
    with closing(open_store(ws.db_path)) as conn:
        grouped = group_compared(conn, [a, b], None, ["loss"])
        [band] = group_bands(conn, grouped.groups, "loss")
    assert band.steps == [0.0, 5.0, 10.0] and band.n == [2, 2, 1]
    assert band.mean == pytest.approx([2.0, (2.0 + 5.0) / 2, 3.0])  # a at 5 is 2
    assert math.isnan(band.std[2])
    lower, upper = band_limits(band, "std")
    assert lower[2] == upper[2] == 3.0  # one run left: the band closes on the mean
    assert n_text(band, grouped.groups[0]) == "N=1–2"


def test_smoothing_is_applied_run_by_run_before_the_mean(ws):
    """Debiased EMA with weight 0.5 of (0, 10) is (0, (10 + 0.5 * 0) / 1.5); of (4, 4) it is (4, 4)."""
    a = _run(ws.project_dir, "a", {"model": "m", "seed": 0}, {0: 0.0, 1: 10.0})
    b = _run(ws.project_dir, "b", {"model": "m", "seed": 1}, {0: 4.0, 1: 4.0})
    with closing(open_store(ws.db_path)) as conn:
        grouped = group_compared(conn, [a, b], None, ["loss"])
        [raw] = group_bands(conn, grouped.groups, "loss")
        [smooth] = group_bands(conn, grouped.groups, "loss", smoothing=0.5)
    assert raw.mean == pytest.approx([2.0, 7.0])
    assert smooth.mean == pytest.approx([2.0, (10 / 1.5 + 4.0) / 2])


# -- the chart ---------------------------------------------------------------------------------------
def _band(centre: float, half: float, steps: int = 50) -> SeriesBand:
    xs = [float(s) for s in range(steps)]
    return SeriesBand(xs, [centre] * steps, [half] * steps, [centre - half] * steps, [centre + half] * steps,
                      [5] * steps)


def _rows_with(text: str, char: str) -> list[int]:
    return [i for i, line in enumerate(text.splitlines()) if char in line]


@pytest.mark.parametrize("size", [(80, 14), (200, 45)], ids=["80x24 pane", "200x60 pane"])
def test_the_band_is_shaded_between_its_edges_and_fits_the_size(size):
    """Two bands, 0.8 to 1.2 and 4 to 6: every shaded cell lies in a row whose value (read off the y
    labels) is inside one of them, give or take a row; both are shaded; the chart is the size asked."""
    width, height = size
    bands = [_band(1.0, 0.2), _band(5.0, 1.0)]
    text = draw_bands(bands, [band_limits(b, "std") for b in bands], ["a", "b"], width, height, title="loss",
                      colour=False, legend=False)
    lines = text.splitlines()
    assert len(lines) == height and max(len(line) for line in lines) == width
    labels = [(i, float(m.group(1))) for i, line in enumerate(lines) if (m := re.match(r"\s*(-?[\d.]+)┤", line))]
    (r0, v0), (r1, v1) = labels[0], labels[-1]
    per_row = (v1 - v0) / (r1 - r0)  # negative: values fall down the chart

    def value(row: int) -> float:
        return v0 + (row - r0) * per_row

    shaded = _rows_with(text, FILL_MARKER)
    slack = abs(per_row)
    assert all(0.8 - slack <= value(r) <= 1.2 + slack or 4.0 - slack <= value(r) <= 6.0 + slack for r in shaded)
    assert any(value(r) > 3 for r in shaded) and any(value(r) < 3 for r in shaded), text
    # the wide band fills every row from 4 to 6 (no row left out), the mean drawn over its middle
    wide = [r for r in range(r0, r1 + 1) if 4.0 + slack <= value(r) <= 6.0 - slack]
    assert wide and all(FILL_MARKER in lines[r] or "▀" in lines[r] or "▄" in lines[r] for r in wide)
    # with no band nothing is shaded, and the means are still drawn
    bare = draw_bands(bands, [None, None], ["a", "b"], width, height, colour=False)
    assert FILL_MARKER not in bare and any(ch in bare for ch in "▀▄")


def test_too_many_cells_to_shade_draws_the_edges_instead():
    bands = [_band(float(i), 100.0, steps=200) for i in range(30)]
    text = draw_bands(bands, [band_limits(b, "minmax") for b in bands], [str(i) for i in range(30)], 200, 60,
                      colour=False, legend=False)
    assert FILL_MARKER not in text  # 30 bands over the whole chart: more than FILL_BUDGET cells
    assert any(0x2800 < ord(ch) <= 0x28FF for ch in text)  # the edges, in braille
    few = draw_bands(bands[:1], [band_limits(bands[0], "minmax")], ["0"], 200, 60, colour=False, legend=False)
    assert FILL_MARKER in few  # one such band is within the budget: shaded


def test_log_axis_and_empty_input():
    bands = [_band(10.0, 9.0), _band(100.0, 150.0)]  # the second's lower edge is below zero
    text = draw_bands(bands, [band_limits(b, "std") for b in bands], ["a", "b"], 80, 20, log_y=True, colour=False)
    assert FILL_MARKER in text and len(text.splitlines()) == 20
    empty = SeriesBand([], [], [], [], [], [])
    assert draw_bands([empty], [None], ["x"], 80, 20, title="loss") == "loss: no points to draw."
