"""The Datasets, Models and Compare panes at scale: the real TUI driven through Textual's pilot at 200x60.

    python bench/panes_scale.py                      # 100:100 and 5000:3000 (dataset:model versions), 3 launches
    python bench/panes_scale.py --sizes 20000:5000 --repeat 5

The small workspace is the baseline: what a pane costs whatever its size (building it on its first
turn, the layout), so the difference is what thousands of versions cost.

The workspace is built once through the core APIs, in one process (core.data.versions.add for each
dataset version, core.models.registry.register for each model version; under a millisecond each), and
kept under /tmp/mltui-panes-scale-D-M between runs of this script (a marker file says how it was built):

- three datasets of 60%, 30% and 10% of the dataset versions (three files each, one changed per version);
- two models of 80% and 20% of the model versions, some staged, aliased and in production;
- 100 runs (4 metrics of 1,000 steps each; 20 configs x 5 seeds) built through the store in bulk
  (bench/scale_workspace.py), for Compare.

Each launch is a fresh process (so RSS and CPU are the TUI's own) that prints, as JSON:

- datasets, models: from the pane's key (3, 5) to its versions table's first row painted (the pane is
  built on its first turn); datasets_again: the same when it was shown before;
- *_down: from ten presses of down to the tenth row highlighted and painted (datasets_files: on to that
  version's files listed on the right);
- datasets_mark: space (mark a version) to its mark painted;
- *_idle: CPU (share of one core) over 5 s with the pane shown and nothing happening, and the lines
  its tables drew meanwhile;
- *_logging: the same while a run logs ~1,000 steps/s in another process (the store changes every
  moment, the pane's own data never);
- compare: with 50 runs marked in the Runs pane, `c` to the chart drawn; compare_metric: `m` (the next
  metric) to its chart drawn;
- compare_groups: `g` in Compare with 20 groups (100 runs), where the pane has it;
- rss: the process's resident memory at the end.

Then the versions tables' widget (tui/widgets/keyed_table.py) alone, in a fresh process each time:
filling it with 500 and 3,000 rows, and the cells of one column turning narrower at once (relative
ages: "59s ago" -> "1m ago", while the oldest stay wider: "14d ago"), each to the repaint.

Figures are medians of the launches; `uptime` is printed beside them (the box is shared).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

START = time.perf_counter()
HERE = Path(__file__).resolve().parent
SIZE = (200, 60)
RUNS, SEEDS, POINTS, METRICS = 100, 5, 1000, 4
MARKER = "panes-scale.json"


# -- the workspace ------------------------------------------------------------------------------------
def build(n_data: int, n_models: int, quiet: bool = False) -> Path:
    sys.path.insert(0, str(HERE))
    from scale_workspace import build_workspace

    root = Path(f"/tmp/mltui-panes-scale-{n_data}-{n_models}")
    recipe = {"data": n_data, "models": n_models, "runs": RUNS, "points": POINTS, "version": 1}
    build_workspace(root, RUNS, n_params=6, n_metrics=METRICS, points=POINTS, seeds=SEEDS, quiet=True)
    marker = root / ".mltui" / MARKER
    try:
        if json.loads(marker.read_text()) == recipe:
            return root
    except (OSError, ValueError):
        pass
    if (root / ".mltui" / "panes-scale-partial").exists():  # an earlier build stopped half way: start over
        import shutil

        shutil.rmtree(root / ".mltui")
        build_workspace(root, RUNS, n_params=6, n_metrics=METRICS, points=POINTS, seeds=SEEDS, quiet=True)
    (root / ".mltui" / "panes-scale-partial").touch()

    from mltui.core.data.versions import add
    from mltui.core.models.registry import move, register, resolve, set_alias
    from mltui.core.reader import open_writer
    from mltui.core.workspace import find_workspace
    from mltui.store.connection import write_tx

    ws = find_workspace(root)
    conn = open_writer(ws)
    clock = time.perf_counter()
    shares = {"clicks": 0.6, "images": 0.3, "text": 0.1}
    counts = {name: int(n_data * share) for name, share in shares.items()}
    counts["clicks"] += n_data - sum(counts.values())
    done = 0
    for name, count in counts.items():
        src = root / "sources" / name
        src.mkdir(parents=True, exist_ok=True)
        (src / "README.md").write_text(f"the {name} data set\n")
        (src / "labels.csv").write_text("label,name\n0,no\n1,yes\n")
        for i in range(count):
            (src / "part.csv").write_text("x,y,label\n" + "".join(f"{i + k},{(i * k) % 97},{k % 2}\n" for k in range(20)))
            add(ws, conn, src, name, message=f"nightly export #{i + 1}", workers=1)
            done += 1
            if not quiet and done % 500 == 0:
                sys.stderr.write(f"\r  dataset versions {done:,}/{n_data:,} ({time.perf_counter() - clock:.0f}s)")
    run_ids = [r[0] for r in conn.execute("SELECT id FROM runs ORDER BY created LIMIT 10")]
    for run_id in run_ids:
        (ws.run_dir(run_id) / "artifacts").mkdir(parents=True, exist_ok=True)
    split = {"classifier": n_models - n_models // 5, "ranker": n_models // 5}
    done = 0
    for name, count in split.items():
        for i in range(count):
            run_id = run_ids[i % len(run_ids)]
            (ws.run_dir(run_id) / "artifacts" / "model.pt").write_bytes(f"{name} weights {i}\n".encode() * 8)
            register(ws, conn, name, run_id, "artifacts/model.pt", who="bench")
            done += 1
            if not quiet and done % 500 == 0:
                sys.stderr.write(f"\r  model versions {done:,}/{n_models:,} ({time.perf_counter() - clock:.0f}s)")
        if count >= 3:
            with write_tx(conn, ws.db_path):
                move(conn, resolve(conn, f"{name}@{count - 2}"), "production", "bench", "bench")
                move(conn, resolve(conn, f"{name}@{count - 1}"), "staging", "bench", "bench")
            set_alias(ws, conn, f"{name}@{count - 2}", "champion", who="bench")
            set_alias(ws, conn, f"{name}@{count}", "challenger", who="bench")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    if not quiet:
        sys.stderr.write(f"\r  {n_data:,} dataset and {n_models:,} model versions in {time.perf_counter() - clock:.0f}s\n")
    marker.write_text(json.dumps(recipe))
    (root / ".mltui" / "panes-scale-partial").unlink()
    return root


# -- the measuring child ------------------------------------------------------------------------------
from tui_scale import child_result, cpu_seconds, logger, rss_mb  # noqa: E402  (the same measures)


def count_lines() -> dict[int, int]:
    """Lines drawn per table (by id()) from now on: DataTable.render_line counted."""
    from textual.widgets import DataTable

    drawn: dict[int, int] = {}
    original = DataTable.render_line

    def render_line(self, y):
        drawn[id(self)] = drawn.get(id(self), 0) + 1
        return original(self, y)

    DataTable.render_line = render_line
    return drawn


async def drive(project: Path, idle_seconds: float, log_seconds: float) -> dict:
    from mltui.core.data.versions import list_datasets
    from mltui.core.models.registry import list_models
    from mltui.core.reader import with_readonly
    from mltui.core.workspace import find_workspace
    from mltui.tui.app import create_app
    from mltui.tui.panes.compare import ComparePane
    from mltui.tui.widgets.runs_table import RunsTable

    ws = find_workspace(project)
    first_set = with_readonly(ws, list_datasets)[0]
    first_model = with_readonly(ws, list_models)[0]
    drawn = count_lines()
    out: dict[str, float] = {}
    app = create_app(ws)
    app.animation_level = "none"

    async with app.run_test(size=SIZE) as pilot:
        async def until(predicate, what: str, timeout: float = 60.0) -> None:
            deadline = time.perf_counter() + timeout
            while not predicate():
                if time.perf_counter() > deadline:
                    raise SystemExit(f"timed out waiting for {what}")
                await pilot.pause(0.002)

        async def timed(keys: list[str], done, what: str, timeout: float = 60.0) -> float:
            begun = time.perf_counter()
            for key in keys:
                app.simulate_key(key)  # as from the terminal (pilot.press would also wait for the app to idle)
            await until(done, what, timeout)
            await pilot.pause(0)  # the frame composited
            return time.perf_counter() - begun

        def find(selector: str):
            found = app.screen.query(selector)
            return found.first() if found else None

        def row_drawn(table, index: int, text: str) -> bool:
            """Row `index` of a DataTable painted on screen holding `text`."""
            if table is None or not table.region.height or table.row_count <= index:
                return False
            y = index - int(table.scroll_offset.y) + 1  # the header is line 0
            return 0 < y < table.size.height and text in table.render_line(y).text

        async def cpu_over(seconds: float, tables) -> tuple[float, int]:
            lines = sum(drawn.get(id(t), 0) for t in tables)
            cpu, wall = cpu_seconds(), time.perf_counter()
            await pilot.pause(seconds)
            return ((cpu_seconds() - cpu) / (time.perf_counter() - wall),
                    sum(drawn.get(id(t), 0) for t in tables) - lines)

        async def while_logging(seconds: float, tables) -> tuple[float, int]:
            child = subprocess.Popen([sys.executable, __file__, "--log", str(project), str(seconds + 2)])
            try:
                await pilot.pause(1.0)
                return await cpu_over(seconds, tables)
            finally:
                child.wait()

        await until(lambda: app.screen.query(RunsTable) and app.screen.query_one(RunsTable).total > 0, "runs")
        await pilot.pause(0.5)

        # -- Datasets ----------------------------------------------------------------------------
        latest = first_set["latest"]
        out["datasets"] = await timed(["3"], lambda: row_drawn(find("#data-versions"), 0, f"v{latest.seq}"),
                                      "the datasets pane")  # the pane is built on its first turn
        pane = app.screen.query_one("#datasets-pane")
        versions = pane.query_one("#data-versions")
        await until(lambda: app.focused is versions, "the versions table focused")
        top = latest.seq
        out["datasets_down"] = await timed(["down"] * 10, lambda: versions.cursor_row == 10
                                           and row_drawn(versions, 10, f"v{top - 10}"), "the highlight")
        detail = pane.query_one("#data-detail")
        begun = time.perf_counter()
        await until(lambda: pane.version is not None
                    and pane.version.seq == top - 10 and row_drawn(detail, 0, "README.md"), "the files")
        out["datasets_files"] = out["datasets_down"] + time.perf_counter() - begun
        out["datasets_mark"] = await timed(["space"], lambda: row_drawn(versions, 10, "●"), "the mark")
        await pilot.pause(1.5)
        tables = list(pane.query("DataTable"))
        out["datasets_idle"], out["datasets_idle_lines"] = await cpu_over(idle_seconds, tables)
        out["datasets_logging"], out["datasets_logging_lines"] = await while_logging(log_seconds, tables)

        # -- Models ------------------------------------------------------------------------------
        newest = first_model["latest"]
        out["models"] = await timed(["5"], lambda: row_drawn(find("#model-versions"), 0, f"v{newest}"),
                                    "the models pane")
        pane = app.screen.query_one("#models-pane")
        versions = pane.query_one("#model-versions")
        await until(lambda: app.focused is versions, "the model versions table focused")
        out["models_down"] = await timed(["down"] * 10, lambda: versions.cursor_row == 10
                                         and row_drawn(versions, 10, f"v{newest - 10}"), "the highlight")
        await pilot.pause(1.5)
        tables = list(pane.query("DataTable"))
        out["models_idle"], out["models_idle_lines"] = await cpu_over(idle_seconds, tables)
        out["models_logging"], out["models_logging_lines"] = await while_logging(log_seconds, tables)
        datasets_versions = app.screen.query_one("#data-versions")
        out["datasets_again"] = await timed(["3"], lambda: row_drawn(datasets_versions, 0, f"v{latest.seq}"),
                                            "the datasets pane again", timeout=600)
        # (the ages in a column all changed while it was hidden: a table that rescans the whole column for
        # each cell that got narrower took minutes here, hence the long timeout)

        # -- Compare -----------------------------------------------------------------------------
        await pilot.press("1")
        runs = app.screen.query_one(RunsTable)
        await until(lambda: app.focused is runs, "the runs table focused")
        await pilot.press("home")
        for _ in range(50):
            app.simulate_key("space")
        await until(lambda: len(runs.marked) == 50, "50 runs marked")
        await pilot.pause(0.5)
        def chart_drawn(metric: str | None = None) -> bool:
            compare = find("#compare-pane")
            snap = compare.snapshot if compare is not None else None
            if snap is None or not snap.shown_metrics or len(snap.comparison.runs) != 50:
                return False
            if metric is not None and snap.shown_metrics[0] != metric:
                return False
            key, charts = snap.shown_metrics[0], list(compare.query(".chart"))
            return charts[0].region.height > 0 and any(key in charts[0].render_line(y).text for y in range(3))

        out["compare"] = await timed(["c"], chart_drawn, "the compare chart")
        await pilot.pause(1.0)
        compare = app.screen.query_one(ComparePane)
        shown = compare.snapshot.shown_metrics[0]
        following = compare.snapshot.comparison.metrics[(compare.snapshot.comparison.metrics.index(shown) + 1)
                                                        % len(compare.snapshot.comparison.metrics)]
        out["compare_metric"] = await timed(["m"], lambda: chart_drawn(following), "the next metric")
        await pilot.pause(1.0)
        out["compare_idle"], _ = await cpu_over(idle_seconds, [])
        if any(b.key == "g" for b in ComparePane.BINDINGS):
            out["compare_groups"] = await compare_groups(app, pilot, until, timed, out)
        out["rss"] = rss_mb()
    return out


async def compare_groups(app, pilot, until, timed, out: dict) -> float:
    """`g` in Compare over all 100 runs (20 configs x 5 seeds): to the grouped chart drawn."""
    from mltui.core.reader import with_readonly
    from mltui.core.runs.views import View
    from mltui.tui.panes.compare import ComparePane

    ids = with_readonly(app.screen.ws, lambda conn: [r[0] for r in conn.execute(
        "SELECT id FROM runs WHERE name != 'live-logger' ORDER BY created")])[:RUNS]
    compare = app.screen.query_one(ComparePane)
    app.compare_view(View(runs=ids))
    await until(lambda: compare.snapshot is not None and len(compare.snapshot.comparison.runs) == RUNS,
                "100 runs compared", timeout=120)
    await pilot.pause(1.0)

    def grouped() -> bool:
        snap = compare.snapshot
        if snap is None or snap.groups is None or not snap.charts:
            return False
        chart = compare.query(".chart").first()
        return chart.region.height > 0 and any(snap.shown_metrics[0] in chart.render_line(y).text for y in range(3))

    figure = await timed(["g"], grouped, "the grouped chart")
    groups = compare.snapshot.groups
    out["compare_groups_n"] = len(getattr(groups, "groups", None) or [])
    return figure


async def table_child(n: int) -> dict:
    """A KeyedTable alone (the versions tables' widget): fill it with `n` rows, then change the cells of
    one column to a narrower text, as relative ages do ("59s ago" -> "1m ago"), all but the oldest
    (wider: "14d ago"); each to the repaint."""
    from rich.text import Text
    from textual.app import App, ComposeResult

    from mltui.tui.widgets.keyed_table import Column, KeyedTable

    class One(App):
        def compose(self) -> ComposeResult:
            yield KeyedTable(id="t")

    columns = [Column("v", "Ver"), Column("age", "Added"), Column("msg", "Message")]

    def rows(added: str) -> list:  # the oldest hundredth a fortnight old: wider than the rest
        return [(f"k{i}", [Text(f"v{n - i}"), Text(added if i < n - n // 100 else "14d ago"),
                           Text(f"nightly export #{n - i}")]) for i in range(n)]

    out = {}
    app = One()
    async with app.run_test(size=SIZE) as pilot:
        table = app.query_one(KeyedTable)
        for name, added in (("fill", "59s ago"), ("narrower", "1m ago")):
            begun = time.perf_counter()
            table.sync(columns, rows(added), "v")
            while not (table.row_count == n and f"{added} " in table.render_line(1).text
                       and not table._require_update_dimensions):
                await pilot.pause(0.002)
            await pilot.pause(0)
            out[name] = time.perf_counter() - begun
    return out


def table_once(n: int) -> dict:
    return child_result([__file__, "--table-child", str(n)], "table", 1800)


def launch_once(project: Path, idle: float, log: float) -> dict:
    return child_result([__file__, "--child", str(project), str(idle), str(log)], "TUI", 1800)


def report(n_data: int, n_models: int, results: list[dict], built: float) -> None:
    def med(key: str) -> float:
        return statistics.median(r[key] for r in results)

    def ms(key: str) -> str:
        return f"{med(key) * 1000:6.0f} ms  ({', '.join(f'{r[key] * 1000:.0f}' for r in results)})"

    def pct(key: str) -> str:
        return f"{med(key) * 100:6.1f} %   ({', '.join(f'{r[key] * 100:.1f}' for r in results)})"

    print(f"{n_data:,} dataset versions (3 datasets), {n_models:,} model versions (2 models), {RUNS} runs x "
          f"{METRICS} metrics x {POINTS:,} steps; workspace ready in {built:.0f} s; medians of {len(results)} "
          "launches (each launch's figure in brackets)")
    print(f"  Datasets: key 3 to first row        {ms('datasets')}   (the pane is built on its first turn)")
    print(f"            again (after 5)           {ms('datasets_again')}")
    print(f"            down x10 to repaint       {ms('datasets_down')}")
    print(f"            ... to its files listed   {ms('datasets_files')}")
    print(f"            space (mark) to repaint   {ms('datasets_mark')}")
    print(f"            idle CPU                  {pct('datasets_idle')}  lines drawn: {int(med('datasets_idle_lines'))}")
    print(f"            CPU while a run logs      {pct('datasets_logging')}  lines drawn: "
          f"{int(med('datasets_logging_lines'))}")
    print(f"  Models:   key 5 to first row        {ms('models')}   (the pane is built on its first turn)")
    print(f"            down x10 to repaint       {ms('models_down')}")
    print(f"            idle CPU                  {pct('models_idle')}  lines drawn: {int(med('models_idle_lines'))}")
    print(f"            CPU while a run logs      {pct('models_logging')}  lines drawn: "
          f"{int(med('models_logging_lines'))}")
    print(f"  Compare:  c (50 marked) to chart    {ms('compare')}")
    print(f"            m (next metric) to chart  {ms('compare_metric')}")
    print(f"            idle CPU                  {pct('compare_idle')}")
    if all("compare_groups" in r for r in results):
        print(f"            g (groups) to chart       {ms('compare_groups')}  groups drawn: "
              f"{int(med('compare_groups_n'))} (of {RUNS} runs)")
    else:
        print("            g (20 groups): not measured (the Compare pane has no group mode here)")
    rss = ", ".join(f"{r['rss']:.0f}" for r in results)
    print(f"  RSS at the end: {med('rss'):.0f} MB ({rss})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs="*", default=["100:100", "5000:3000"], metavar="DATA:MODELS",
                        help="dataset versions:model versions, one workspace each (default: 100:100 5000:3000)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--idle", type=float, default=5.0, help="seconds of idle CPU measured")
    parser.add_argument("--log-seconds", type=float, default=5.0, help="seconds of CPU measured while a run logs")
    parser.add_argument("--table", type=int, nargs="*", default=[500, 3000], metavar="ROWS",
                        help="also time a KeyedTable alone at these numbers of rows (default: 500 3000)")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--table-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--log", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.log:
        logger(args.log[0], float(args.log[1]), 1000)
        return
    if args.table_child:
        import asyncio

        print(json.dumps(asyncio.run(table_child(args.table_child))))
        return
    if args.child:
        import asyncio

        os.chdir(args.child[0])
        print(json.dumps(asyncio.run(drive(Path(args.child[0]), float(args.child[1]), float(args.child[2])))))
        return

    print(f"uptime: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}; "
          f"the TUI at {SIZE[0]}x{SIZE[1]}", flush=True)
    for size in args.sizes:
        n_data, n_models = (int(n) for n in size.split(":"))
        begun = time.perf_counter()
        project = build(n_data, n_models)
        built = time.perf_counter() - begun
        results = [launch_once(project, args.idle, args.log_seconds) for _ in range(args.repeat)]
        report(n_data, n_models, results, built)
    for n in args.table:
        figures = [table_once(n) for _ in range(args.repeat)]
        fill = statistics.median(f["fill"] for f in figures)
        narrower = statistics.median(f["narrower"] for f in figures)
        print(f"KeyedTable alone, {n:,} rows: filled and drawn {fill * 1000:.0f} ms; 99% of a column's cells "
              f"narrower (ages ticking) {narrower * 1000:.0f} ms ({args.repeat} runs)")
    print(f"uptime: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")


if __name__ == "__main__":
    main()
