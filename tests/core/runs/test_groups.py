"""Groups of runs (core/runs/groups.py): the --group-by spec, the mean and spread of each group against a
hand computation, and series aligned step by step or on a common grid. Real runs in a real store."""

from __future__ import annotations

import math
from contextlib import closing

import pytest

import mltui
from conftest import make_run
from mltui.base.errors import UsageError
from mltui.core.runs.groups import expand_group_by, group_runs, group_series, param_keys
from mltui.store import runs as run_store
from mltui.store.connection import write_tx
from mltui.store.opening import open_store

KEYS = ["batch", "lr", "model", "seed"]


def test_expand_named_columns_and_bare_names():
    assert expand_group_by("params.model,lr", KEYS) == ["params.model", "params.lr"]
    assert expand_group_by("tags.team, model", KEYS) == ["tags.team", "params.model"]


def test_expand_star_leaves_out_seed_either_way():
    assert expand_group_by("*,-seed", KEYS) == ["params.batch", "params.lr", "params.model"]
    assert expand_group_by("*,-params.seed", KEYS) == ["params.batch", "params.lr", "params.model"]
    assert expand_group_by("*", KEYS) == [f"params.{k}" for k in KEYS]


@pytest.mark.parametrize("spec, fragment", [
    ("", "comma-separated"),
    ("model,,lr", "comma-separated"),
    ("-seed", "'*,-seed'"),
    ("*,-sed", "'sed'"),
    ("metrics.loss", "metrics are averaged"),
    ("nosuch", "'nosuch'"),
    ("*,-batch,-lr,-model,-seed", "nothing to group by"),
])
def test_bad_specs_are_one_sentence(spec, fragment):
    with pytest.raises(UsageError) as err:
        expand_group_by(spec, KEYS)
    text = str(err.value)
    assert fragment in text and text.replace("e.g. ", "").count(". ") == 0 and text.endswith(".")


def _sweep(project) -> dict[tuple, list[str]]:
    """4 configs x 5 seeds; val_acc of (config c, seed s) = 0.5 + 0.1 c + s / 100 (+ 7 for c = 3)."""
    ids: dict[tuple, list[str]] = {}
    for c, (model, lr) in enumerate([("resnet", 0.1), ("resnet", 0.01), ("vit", 0.1), ("vit", 0.01)]):
        for seed in range(5):
            acc = 0.5 + 0.1 * c + seed / 100 + (7.0 if c == 3 else 0.0)
            rid = make_run(project, f"{model}-{lr}-{seed}", {"val_acc": [0.0, acc], "loss": [1.0, 1.0 / (seed + 1)]},
                           params={"model": model, "lr": lr, "seed": seed})
            ids.setdefault((model, lr), []).append(rid)
    return ids


def test_four_configs_by_five_seeds_give_four_groups_of_five(ws):
    ids = _sweep(ws.project_dir)
    with closing(open_store(ws.db_path)) as conn:
        columns = expand_group_by("*,-seed", param_keys(conn))
        assert columns == ["params.lr", "params.model"]
        groups = group_runs(conn, None, columns, ["val_acc", "loss"])
    assert groups.total == 4 and groups.runs == 20
    assert [g.n for g in groups] == [5, 5, 5, 5]
    assert [(g.key["params.model"], g.key["params.lr"]) for g in groups] == [
        ("vit", 0.01), ("vit", 0.1), ("resnet", 0.01), ("resnet", 0.1)]  # the newest run's group first
    for g in groups:
        assert sorted(g.run_ids) == sorted(ids[(g.key["params.model"], g.key["params.lr"])])
    # by hand: seeds add 0.00 .. 0.04, so mean = base + 0.02 and the sample std is that of (0, 1, 2, 3, 4) / 100
    std = math.sqrt(((-2) ** 2 + 1 + 0 + 1 + 2 ** 2) / 4) / 100
    vit001 = groups[0].stats["val_acc"]
    assert vit001.n == 5
    assert vit001.mean == pytest.approx(7.5 + 0.3 + 0.02, rel=1e-12)
    assert vit001.std == pytest.approx(std, rel=1e-9)
    assert (vit001.min, vit001.max) == (pytest.approx(7.8), pytest.approx(7.84))
    resnet01 = groups[3].stats["val_acc"]
    assert resnet01.mean == pytest.approx(0.52, rel=1e-12) and resnet01.std == pytest.approx(std, rel=1e-9)
    loss = groups[3].stats["loss"]
    losses = [1.0 / (s + 1) for s in range(5)]
    mean = sum(losses) / 5
    assert loss.mean == pytest.approx(mean) and loss.std == pytest.approx(
        math.sqrt(sum((x - mean) ** 2 for x in losses) / 4))


def test_named_columns_limit_and_where(ws):
    _sweep(ws.project_dir)
    with closing(open_store(ws.db_path)) as conn:
        by_model = group_runs(conn, None, ["params.model"], ["val_acc"])
        assert [(g.key, g.n) for g in by_model] == [({"params.model": "vit"}, 10), ({"params.model": "resnet"}, 10)]
        some = group_runs(conn, "params.seed < 2", ["params.model", "params.lr"], ["val_acc"], limit=1)
        assert some.total == 4 and len(some) == 1 and some[0].n == 2
        assert some[0].stats["val_acc"].std == pytest.approx(math.sqrt(0.005 ** 2 * 2))


def test_a_group_of_one_has_no_std_and_nan_is_left_out(ws):
    make_run(ws.project_dir, "a", {"acc": [0.5]}, params={"model": "x"})
    make_run(ws.project_dir, "b", {"acc": [math.nan]}, params={"model": "y"})
    make_run(ws.project_dir, "c", {"acc": [0.7]}, params={"model": "y"})
    with closing(open_store(ws.db_path)) as conn:
        groups = {g.key["params.model"]: g for g in group_runs(conn, None, ["params.model"], ["acc"])}
    assert groups["x"].stats["acc"].std is None and groups["x"].stats["acc"].mean == 0.5
    assert groups["y"].n == 2 and groups["y"].stats["acc"].n == 1 and groups["y"].stats["acc"].mean == 0.7


def test_params_written_around_set_values_still_group_right(ws):
    """A param row written by other means leaves the run's params key stale; grouping computes it."""
    a = make_run(ws.project_dir, "a", {"acc": [1.0]}, params={"model": "x", "seed": 1})
    b = make_run(ws.project_dir, "b", {"acc": [3.0]}, params={"model": "x", "seed": 2})
    with closing(open_store(ws.db_path)) as conn:
        with write_tx(conn):
            conn.execute("UPDATE params SET value = 'z' WHERE run_id = ? AND key = 'model'", (b,))
        groups = group_runs(conn, None, expand_group_by("*,-seed", param_keys(conn)), ["acc"])
        assert sorted((g.key["params.model"], g.run_ids[0]) for g in groups) == [("x", a), ("z", b)]
        with write_tx(conn):
            run_store.set_values(conn, "params", b, {"model": "x"})
        again = group_runs(conn, None, ["params.model"], ["acc"])
        assert [(g.n, g.stats["acc"].mean) for g in again] == [(2, 2.0)]


def test_archived_runs_are_left_out_unless_asked(ws):
    a = make_run(ws.project_dir, "a", {"acc": [1.0]}, params={"model": "x"})
    make_run(ws.project_dir, "b", {"acc": [3.0]}, params={"model": "x"})
    with closing(open_store(ws.db_path)) as conn:
        with write_tx(conn):
            run_store.set_archived(conn, [a], True)
        assert group_runs(conn, None, ["params.model"], ["acc"])[0].n == 1
        assert group_runs(conn, None, ["params.model"], ["acc"], archived=True)[0].n == 2
        assert group_runs(conn, "archived = 1", ["params.model"], ["acc"])[0].run_ids == [a]


def _logged(project, name: str, points: dict[int, float]) -> str:
    run = mltui.init(name=name, workspace=project, flush_interval=60.0)
    for step, value in points.items():
        run.log({"loss": value}, step=step)
    run.finish()
    return run.id


def test_series_on_the_same_steps_are_compared_point_by_point(ws):
    a = _logged(ws.project_dir, "a", {0: 1.0, 10: 2.0, 20: 3.0})
    b = _logged(ws.project_dir, "b", {0: 3.0, 10: 4.0, 20: 9.0})
    with closing(open_store(ws.db_path)) as conn:
        band = group_series(conn, [a, b], "loss")
    assert band.steps == [0.0, 10.0, 20.0] and band.n == [2, 2, 2]
    assert band.mean == [2.0, 3.0, 6.0] and band.min == [1.0, 2.0, 3.0] and band.max == [3.0, 4.0, 9.0]
    assert band.std == pytest.approx([math.sqrt(2), math.sqrt(2), math.sqrt(18)])


def test_series_on_different_steps_meet_on_a_common_grid(ws):
    a = _logged(ws.project_dir, "a", {0: 0.0, 10: 10.0})  # y = step
    b = _logged(ws.project_dir, "b", {0: 0.0, 4: 8.0, 8: 16.0})  # y = 2 * step, ends at 8
    with closing(open_store(ws.db_path)) as conn:
        band = group_series(conn, [a, b], "loss")
        assert band.steps == [0.0, 4.0, 8.0, 10.0]  # the union of the steps, few enough to keep
        assert band.n == [2, 2, 2, 1]  # b stops at 8: never extrapolated
        assert band.mean == pytest.approx([0.0, 6.0, 12.0, 10.0])  # a interpolated at 4 and 8
        assert math.isnan(band.std[-1]) and band.std[1] == pytest.approx(math.sqrt(8))
        wide = group_series(conn, [a, b], "loss", points=3)  # more steps than points: an even grid
        assert wide.steps == [0.0, 5.0, 10.0] and wide.n == [2, 2, 1]
        assert wide.mean == pytest.approx([0.0, (5.0 + 10.0) / 2, 10.0])
        assert group_series(conn, [a, b], "nosuch").steps == []
