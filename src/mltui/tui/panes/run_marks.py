"""The Runs pane's picking of runs to compare: space marks a run (the marks survive scrolling and
refreshes: the table keeps them by run id), c compares the marked runs (or the highlighted one), C
compares what the filter shows (asking how many past COMPARE_AT_ONCE, the first ones read from the store
in the order shown)."""

from __future__ import annotations

from rich.text import Text

from mltui.core.runs.paging import Counts, page_ids

COMPARE_AT_ONCE = 50  # `C` compares this many without asking
COMPARE_MOST = 200


def _load_compare() -> None:
    from mltui.tui.panes.compare import load_chart_modules

    load_chart_modules()


class MarkMode:
    """Mixed into RunsPane: needs its table, snapshot, want, where, reader and _update_status."""

    _compare_loading = False

    def action_toggle_mark(self) -> None:
        table = self.table
        run_id = self.highlighted_run() and table.highlighted_id
        if run_id is None:
            return
        if run_id not in table.marked and len(table.marked) >= COMPARE_AT_ONCE:
            self.notify("At most 50 runs can be compared at once.", severity="warning", timeout=3)
            return
        table.toggle_mark(run_id)
        table.move_cursor(table.cursor_row + 1)
        self._update_status()
        if not self._compare_loading:  # a mark is the sign of a comparison to come: its modules load
            self._compare_loading = True  # meanwhile (polars, plotext: 0.4 s that `c` would else wait)
            self.run_worker(_load_compare, thread=True, group="compare-imports", exit_on_error=False)

    def action_compare(self) -> None:
        from mltui.core.runs.views import View

        table = self.table
        held = {run_id: i for i, run_id in enumerate(table.row_keys())}
        marked = sorted(table.marked, key=lambda rid: held.get(rid, len(held)))  # in the table's order
        ids = marked or ([table.highlighted_id] if self.highlighted_run() else [])
        if not ids:
            self.notify("No runs to compare: mark some with space.", timeout=3)
            return
        self.app.compare_view(View(runs=ids))  # type: ignore[attr-defined]

    def action_compare_all(self) -> None:
        from mltui.core.runs.views import View

        counts = (self.snapshot.page.counts if self.snapshot else None) or Counts(0, 0)
        if not counts.total:
            self.notify("No runs to compare.", timeout=3)
            return
        if counts.total <= COMPARE_AT_ONCE:
            held = self.table
            if self.where:
                self.app.compare_view(View(where=self.where))  # type: ignore[attr-defined]
            elif held.start == 0 and len(held.window) >= counts.total:
                self.app.compare_view(View(runs=held.row_keys()[: counts.total]))  # type: ignore[attr-defined]
            else:
                self._compare_first(counts.total)
            return
        from mltui.tui.modals.prompt import Field, PromptScreen

        def chosen(values: dict | None) -> None:
            if values is None:
                return
            text = values["n"]
            if not text.isdigit() or not 1 <= int(text) <= COMPARE_MOST:
                self.notify(f"Give a number of runs from 1 to {COMPARE_MOST}.", severity="warning", timeout=4)
                return
            self._compare_first(int(text))

        note = Text(f"The filter shows {counts.total:,} runs. Compare the first how many, in the order shown "
                    f"(at most {COMPARE_MOST})?")
        self.app.push_screen(PromptScreen("Compare how many runs?",
                                          [Field("n", "Runs", value=str(COMPARE_AT_ONCE), required=True)], note),
                             chosen)

    def _compare_first(self, n: int) -> None:
        """Compare the first `n` runs of the result (their ids read in a thread)."""
        query, total = self.want.query, self._total(self.snapshot) if self.snapshot else n

        def read() -> None:
            from mltui.core.runs.views import View

            ids = self.reader.read(lambda conn: page_ids(conn, query, 0, n, total))
            self.app.call_from_thread(self.app.compare_view, View(runs=ids))  # type: ignore[attr-defined]

        self.run_worker(read, thread=True, group="runs-compare", exit_on_error=False)

