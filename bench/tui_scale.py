"""The Runs pane at 10k, 100k and 1M runs: the real TUI driven through Textual's pilot.

    python bench/tui_scale.py                 # 10k and 100k runs, 3 launches each
    python bench/tui_scale.py --sizes 1000000 --repeat 2

Workspaces (20 params, 10 metrics per run) are built once through the store in bulk
(bench/scale_workspace.py) and kept under /tmp/mltui-tui-scale-N between runs of this script.
Each launch is a fresh process (so RSS and CPU are the TUI's own) that prints, as JSON:

- launch: from the process start (imports included) to the first row painted;
- filter, sort, end: from the key to the repaint that shows its result (End: the oldest run drawn); a
  filter's first page is drawn before its result is counted, so the time to the count is printed too;
- rss: the process's resident memory after those;
- idle: CPU (share of one core) over 5 s with nothing happening;
- logging: CPU while a run logs ~1000 steps/s in another process (its row on screen updates).

Then `mltui runs list --where ... --limit 50` as a whole command. Figures are medians of the launches.
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
FILTER = "params.lr > 0.001 and metrics.val_acc > 0.5"
SIZE = (200, 60)


def cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def rss_mb(field: str = "VmRSS") -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def logger(project: str, seconds: float, rate: int) -> None:
    """A training script: logs `rate` steps a second for `seconds`."""
    import mltui

    run = mltui.init(name="live-logger", params={"lr": 0.01, "seed": 0}, workspace=project)
    step, begun = 0, time.perf_counter()
    while time.perf_counter() - begun < seconds:
        due = int((time.perf_counter() - begun) * rate)
        while step < due:
            run.log({"loss": 1.0 / (step + 1), "val_acc": step / (step + 1000)}, step=step)
            step += 1
        time.sleep(0.005)
    run.finish()


async def drive(project: Path, idle_seconds: float, log_seconds: float) -> dict:
    from mltui.core.workspace import find_workspace
    from mltui.tui.app import create_app
    from mltui.tui.panes.runs import RunsPane
    from mltui.tui.widgets.runs_table import RunsTable

    out: dict[str, float] = {}
    app = create_app(find_workspace(project))
    app.animation_level = "none"

    async with app.run_test(size=SIZE) as pilot:
        async def until(predicate, timeout: float = 60.0) -> None:
            deadline = time.perf_counter() + timeout
            while not predicate():
                if time.perf_counter() > deadline:
                    import traceback
                    t = app.screen.query_one(RunsTable)
                    raise SystemExit(f"timed out waiting for the screen (total {t.total}, cursor {t.cursor_row}, "
                                     f"scroll {t.scroll_offset.y}, held from {t.start}) at "
                                     + "".join(traceback.format_stack(limit=3)))
                await pilot.pause(0.002)

        def drawn_row(index: int | None = None) -> bool:
            table = app.screen.query_one(RunsTable)
            i = table.cursor_row if index is None else index
            row = table.row_at(i)
            if row is None:
                return False
            y = i - int(table.scroll_offset.y) + 1
            return 0 < y < table.size.height and row["name"][:8] in table.render_line(y).text

        await until(lambda: app.screen.query(RunsTable) and app.screen.query_one(RunsTable).total > 0
                    and drawn_row(0))
        await pilot.pause(0)  # the frame composited
        out["launch"] = time.perf_counter() - START
        pane = app.screen.query_one(RunsPane)
        table = pane.table
        await until(lambda: pane.snapshot.page.counts is not None)  # the first page is drawn before the count
        out["launch_counted"] = time.perf_counter() - START
        total = table.total
        out["total"] = total

        async def timed(keys: list[str], done) -> float:
            begun = time.perf_counter()
            for key in keys:
                app.simulate_key(key)  # as from the terminal (pilot.press would also wait for the app to idle)
            await until(done)
            await pilot.pause(0)
            return time.perf_counter() - begun

        await pilot.press("slash")
        app.focused.value = FILTER
        epoch = pane.want.epoch
        begun = time.perf_counter()
        out["filter"] = await timed(["enter"], lambda: pane.snapshot.want.epoch > epoch and drawn_row(0))
        await until(lambda: pane.snapshot.page.counts is not None)
        out["filter_counted"] = time.perf_counter() - begun
        out["filtered"] = table.total
        epoch = pane.want.epoch
        out["sort"] = await timed(["s"], lambda: pane.snapshot.want.epoch > epoch and drawn_row(0))
        await until(lambda: pane.snapshot.page.counts is not None)
        out["end"] = await timed(["end"], lambda: table.cursor_row == table.total - 1 and drawn_row())
        from mltui.tui.panes.runs import SORTS

        pane.sort = SORTS[0]  # newest first again, unfiltered: a new run comes in on top
        pane.clear_filter()
        await until(lambda: pane.snapshot.want.epoch == pane.want.epoch and table.total == total)
        await pilot.press("home")
        await until(lambda: drawn_row(0))
        await pilot.pause(1.0)
        out["rss"] = rss_mb()
        out["rss_file"] = rss_mb("RssFile")  # of which pages of files mapped (the store, libraries)

        renders = table.renders
        cpu, wall = cpu_seconds(), time.perf_counter()
        await pilot.pause(idle_seconds)
        out["idle"] = (cpu_seconds() - cpu) / (time.perf_counter() - wall)
        out["idle_lines_drawn"] = table.renders - renders

        child = subprocess.Popen([sys.executable, __file__, "--log", str(project), str(log_seconds + 3)])
        try:
            await until(lambda: table.row_at(0) is not None and table.row_at(0)["name"] == "live-logger", 30)
            await pilot.pause(1.0)
            cpu, wall = cpu_seconds(), time.perf_counter()
            await pilot.pause(log_seconds)
            out["logging"] = (cpu_seconds() - cpu) / (time.perf_counter() - wall)
            out["live_step"] = (table.row_at(0) or {}).get("metrics", {}).get("loss", {}).get("last_step") or 0
        finally:
            child.wait()
    return out


def child_result(argv: list[str], what: str, timeout: float) -> dict:
    """Run `python *argv` (a bench script as its own child: a fresh process per launch) and return the
    JSON object on the last line it printed."""
    done = subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise SystemExit(f"the {what} child failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def launch_once(project: Path, idle: float, log: float) -> dict:
    return child_result([__file__, "--child", str(project), str(idle), str(log)], "TUI", 900)


def cli_seconds(project: Path, repeat: int) -> list[float]:
    figures = []
    for _ in range(repeat):
        begun = time.perf_counter()
        subprocess.run([sys.executable, "-m", "mltui", "runs", "list", "--where", FILTER, "--limit", "50"],
                       cwd=project, capture_output=True, check=True)
        figures.append(time.perf_counter() - begun)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--idle", type=float, default=5.0, help="seconds of idle CPU measured")
    parser.add_argument("--log-seconds", type=float, default=5.0, help="seconds of CPU measured while a run logs")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--log", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.log:
        logger(args.log[0], float(args.log[1]), 1000)
        return
    if args.child:
        import asyncio

        os.chdir(args.child[0])
        print(json.dumps(asyncio.run(drive(Path(args.child[0]), float(args.child[1]), float(args.child[2])))))
        return

    sys.path.insert(0, str(HERE))
    from scale_workspace import build_workspace

    print(f"{'runs':>9} | {'launch':>7} | {'filter':>7} | {'sort':>7} | {'End':>7} | {'RSS':>7} | "
          f"{'idle CPU':>8} | {'logging':>8} | runs list --where")
    for n in args.sizes:
        begun = time.perf_counter()
        project = build_workspace(Path(f"/tmp/mltui-tui-scale-{n}"), n, quiet=True)
        built = time.perf_counter() - begun
        results = [launch_once(project, args.idle, args.log_seconds) for _ in range(args.repeat)]

        def med(key: str) -> float:
            return statistics.median(r[key] for r in results)

        cli = statistics.median(cli_seconds(project, max(3, args.repeat)))
        print(f"{n:>9,} | {med('launch'):6.2f}s | {med('filter') * 1000:5.0f}ms | {med('sort') * 1000:5.0f}ms | "
              f"{med('end') * 1000:5.0f}ms | {med('rss'):5.0f}MB | {med('idle') * 100:7.1f}% | "
              f"{med('logging') * 100:7.1f}% | {cli:.2f}s")
        print(f"{'':>9}   (workspace ready in {built:.0f} s; filter matched {int(med('filtered')):,} runs; "
              f"lines drawn while idle: {int(med('idle_lines_drawn'))}; the live run's row reached step "
              f"{int(med('live_step')):,}; RSS of mapped files {med('rss_file'):.0f} MB; {args.repeat} launches)")
        print(f"{'':>9}   (launch to the whole result counted {med('launch_counted'):.2f}s; filter to its count "
              f"{med('filter_counted') * 1000:.0f}ms)")


if __name__ == "__main__":
    main()
