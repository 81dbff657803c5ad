"""Snapshot of the Runs pane and the run detail, with fixed data and a frozen clock."""

from __future__ import annotations

import math

import pytest
from textual.widgets import Static

from mltui.core.workspace import init_workspace
from mltui.store import metrics as metric_store
from mltui.store import runs as run_store
from mltui.store.connection import write_tx
from mltui.store.opening import open_store
from mltui.tui.app import create_app
from mltui.tui.screens.run_detail import RunDetailScreen
from mltui.tui.widgets.metric_spark import MetricSpark
from mltui.tui.widgets.runs_table import RunsTable
from launching import until  # noqa: E402

NOW = 1_790_000_000.0
RUNS = [  # id, name, status, created offset (s before NOW), duration, lr, opt, val_acc curve scale
    ("1mz0000aaa", "resnet18-baseline", "finished", 9000, 1800, 0.001, "adamw", 0.91),
    ("1mz0000bbb", "resnet18-lr-sweep", "failed", 7000, 600, 0.1, "sgd", 0.42),
    ("1mz0000ccc", "vit-small [bold]x[/bold]", "finished", 5000, 2400, 0.0003, "adamw", 0.88),
    ("1mz0000ddd", "convnext-tiny", "running", 600, None, 0.003, "lion", 0.75),
]


@pytest.fixture
def frozen_ws(tmp_path, monkeypatch):
    monkeypatch.setattr("time.time", lambda: NOW)
    ws, _ = init_workspace(tmp_path)
    conn = open_store(ws.db_path)
    with write_tx(conn):
        for run_id, name, status, ago, took, lr, opt, scale in RUNS:
            created = NOW - ago
            run_store.insert_run(conn, {"id": run_id, "name": name, "kind": "train", "status": status,
                                        "created": created, "started": created,
                                        "ended": None if took is None else created + took})
            run_store.set_values(conn, "params", run_id, {"lr": lr, "optimizer": opt, "epochs": 10})
            steps = list(range(50))
            acc = [scale * (1 - math.exp(-s / 10)) for s in steps]
            loss = [2.3 * math.exp(-s / 12) + 0.1 for s in steps]
            times = [created + s for s in steps]
            metric_store.write_batch(conn, run_id, {"val/acc": (steps, acc, times),
                                                    "val/loss": (steps, loss, times)})
    conn.close()
    return ws


async def _settle(pilot, ready) -> None:
    """Until `ready()` holds, then until the workers it started are done and the app is idle."""
    await until(pilot, ready, what="the screen to be drawn")
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def _runs_drawn(app) -> bool:
    """Every run in the Runs pane, and its status line written."""
    table = app.screen.query_one("#runs-table", RunsTable)
    status = str(app.screen.query_one("#runs-status", Static).render())
    return table.row_count == len(RUNS) and len(table.row_keys()) == len(RUNS) and status != ""


def _detail_drawn(app) -> bool:
    """The detail of the first run, with a labelled sparkline for each of its two metrics."""
    if not isinstance(app.screen, RunDetailScreen):
        return False
    sparks = app.screen.query(MetricSpark)
    return len(sparks) == 2 and all(str(s.query_one(".metric-label", Static).render()) for s in sparks)


def test_runs_pane_80x24(frozen_ws, snap_compare):
    assert snap_compare(create_app(frozen_ws), terminal_size=(80, 24),
                        run_before=lambda pilot: _settle(pilot, lambda: _runs_drawn(pilot.app)))


def test_runs_pane_200x60(frozen_ws, snap_compare):
    assert snap_compare(create_app(frozen_ws), terminal_size=(200, 60),
                        run_before=lambda pilot: _settle(pilot, lambda: _runs_drawn(pilot.app)))


def test_run_detail_120x40(frozen_ws, snap_compare):
    async def open_first(pilot):
        await _settle(pilot, lambda: _runs_drawn(pilot.app))
        await pilot.press("enter")
        await _settle(pilot, lambda: _detail_drawn(pilot.app))

    assert snap_compare(create_app(frozen_ws), terminal_size=(120, 40), run_before=open_first)
