"""The Datasets pane: datasets and their versions on the left; on the right a version's files, profile
or the runs that used it, or the diff and drift between a marked version and the highlighted one.

The lists are polled like the other panes (panes/base.py). What a key asks for (a profile, a drift) is
computed in a thread worker with its own read-only connection, with a progress bar while it runs; the
worker posts its answer as a typed message (tui/messages.py: FilesLoaded, DiffLoaded, ...), each with
its own handler, and only the answer to the latest request is shown.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, ProgressBar, Static

from mltui.core.data.drift import drift_note, schema_note
from mltui.core.data.profile import column_summary, short
from mltui.base.text import age, safe, size
from mltui.core.workspace import Workspace
from mltui.tui.messages import (DetailFailed, DetailLoaded, DetailProgress, DiffLoaded, DriftLoaded, FilesLoaded,
                                ProfileLoaded, UsersLoaded)
from mltui.tui.panes.base import Pane
from mltui.tui.panes.rereading import Rereads
from mltui.tui.widgets.keyed_table import Column, KeyedTable

EMPTY = ("No datasets yet. Press a to record one, or from a shell:\n\n  mltui data add PATH --name NAME --store\n\n"
         "Its versions, files, profiles, drift and the runs that used it appear here.")
MAX_FILES = 2000  # rows of a version's file list drawn (the count says how many there are)
CHART = 8  # drifted columns drawn as bars


@dataclass
class Lists:
    datasets: list[dict]
    versions: list  # of the highlighted dataset, newest first
    name: str | None = None  # that dataset
    rows: list = field(default_factory=list, compare=False)  # the versions' rows, unmarked, made in the poll's thread


def version_row(v, marked: bool) -> tuple[str, list[Text]]:
    """A dataset version's row of the versions table (● when it is the one marked for diff and drift)."""
    return (v.id, [Text(("● " if marked else "  ") + f"v{v.seq}", style="bold" if marked else ""),
                   Text(v.id[:10], style="dim"), Text(f"{v.files:,}"), Text(size(v.bytes)),
                   Text(age(v.created)), _t(v.message or "")])


def _t(value: object, style: str = "") -> Text:
    return Text(safe(value), style=style)


class DatasetsPane(Rereads, Pane):
    BINDINGS = [
        Binding("f", "show('files')", "Files", id="data.files"),
        Binding("p", "show('profile')", "Profile", id="data.profile"),
        Binding("u", "show('runs')", "Runs", id="data.runs"),
        Binding("space", "mark", "Mark", id="data.mark"),
        Binding("d", "show('diff')", "Diff", id="data.diff"),
        Binding("D", "show('drift')", "Drift", id="data.drift"),
        Binding("a", "add", "Add", id="data.add"),
        Binding("ctrl+r", "refresh", "Refresh", id="data.refresh", show=False),
    ]
    poll_group = "data-poll"
    can_focus = True  # holds the focus (and so its keys) while there is no table to focus yet
    empty_id, empty_text, body_ids = "data-empty", EMPTY, ("data-body",)
    focus_id = "data-versions"  # the pane passes the focus on to its versions table

    def __init__(self, ws: Workspace, refresh_seconds: float = 1.0, **kwargs) -> None:
        super().__init__(ws, refresh_seconds, **kwargs)
        self.dataset: str | None = None  # highlighted dataset
        self.lists: Lists | None = None
        self.marked = None  # a Version, for diff and drift
        self.mode = "files"
        self.shown: tuple | None = None  # (mode, version id, marked id) of what the right side shows

    def compose(self) -> ComposeResult:
        yield self.empty_note()
        with Horizontal(id="data-body"):
            with Vertical(id="data-left"):
                yield KeyedTable(id="data-sets")
                yield KeyedTable(id="data-versions")
            with Vertical(id="data-right"):
                yield Static(id="data-title")
                # a total from the start: without one the bar animates, 15 frames a second, even hidden
                yield ProgressBar(total=1, id="data-progress", show_eta=False)
                yield Static(id="data-chart")
                yield KeyedTable(id="data-detail")  # cursor by row, zebra stripes

    def on_mount(self) -> None:  # then Pane's: the first poll
        self.query_one("#data-progress").display = False
        self.query_one("#data-chart").display = False

    # -- polling the lists (Pane: reader, refresh, empty state) -----------------------------------
    def read(self, conn) -> Lists:
        from mltui.core.data.versions import list_datasets, versions

        found = list_datasets(conn)
        names = [d["name"] for d in found]
        name = self.dataset if self.dataset in names else (names[0] if names else None)
        return Lists(found, versions(conn, name) if name else [], name)

    def collect(self, force: bool) -> Lists | None:
        lists = super().collect(force)
        # the store changes all the time (a run logging) while the lists rarely do: when they read as
        # they are shown, nothing is drawn again (thousands of versions would be rebuilt every second)
        if lists is None or lists == self.lists:
            return None
        lists.rows = [version_row(v, False) for v in lists.versions]  # here, in the poll's thread
        return lists

    def before_tables(self, exc) -> Lists:
        return Lists([], [])  # a store from before datasets, opened read-only

    def apply(self, lists: Lists | None) -> None:
        if lists is None:
            return
        self.lists = lists
        empty = not lists.datasets
        self.show_empty(empty)
        if empty:
            return
        sets = self.query_one("#data-sets", KeyedTable)
        sets.sync([Column("name", "Dataset"), Column("n", "Versions"), Column("size", "Size")],
                  [(d["name"], [_t(d["name"], "bold"), Text(str(d["versions"])),
                                Text(size(d["latest"].bytes) if d["latest"] else "-")]) for d in lists.datasets],
                  "name")
        if self.dataset is None or self.dataset not in {d["name"] for d in lists.datasets}:
            self.dataset = sets.highlighted_key or lists.datasets[0]["name"]
        self._sync_versions()

    def _sync_versions(self) -> None:
        if self.lists is None:
            return
        history = self.lists.versions if (self.lists.versions and self.lists.versions[0].dataset == self.dataset) else []
        rows = self.lists.rows if history else []
        if self.marked is not None and self.marked.dataset == self.dataset:
            rows = [version_row(v, True) if v.id == self.marked.id else row for v, row in zip(history, rows)]
        table = self.query_one("#data-versions", KeyedTable)
        table.sync([Column("v", "Ver"), Column("id", "Id"), Column("files", "Files"), Column("size", "Size"),
                    Column("added", "Added"), Column("msg", "Message")], rows, "v")
        if self.shown is None and history:
            self.call_after_refresh(self._show_current)

    # -- what is highlighted --------------------------------------------------------------------
    @property
    def version(self):
        if self.lists is None:
            return None
        key = self.query_one("#data-versions", KeyedTable).highlighted_key
        return next((v for v in self.lists.versions if v.id == key), None)

    @on(DataTable.RowHighlighted, "#data-sets")
    def _dataset_highlighted(self, event: DataTable.RowHighlighted) -> None:
        name = event.row_key.value if event.row_key else None
        if name and name != self.dataset:
            self.dataset = name
            self.shown = None
            self.reread()

    @on(DataTable.RowSelected, "#data-sets")
    def _dataset_selected(self, event: DataTable.RowSelected) -> None:
        self.query_one("#data-versions").focus()

    @on(DataTable.RowHighlighted, "#data-versions")
    def _version_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_current()

    # -- actions --------------------------------------------------------------------------------
    def action_show(self, mode: str) -> None:
        if mode in ("diff", "drift") and self.marked is None:
            self.notify("Mark a version with space first, then highlight the other one.", timeout=4)
            return
        self.mode = mode
        self.shown = None
        self._show_current()

    def action_mark(self) -> None:
        v = self.version
        if v is None:
            return
        before = self.marked
        self.marked = None if self.marked is not None and self.marked.id == v.id else v
        changed = {m.id for m in (before, self.marked) if m is not None}
        if self.lists is not None:  # the rows whose mark changed, not all (a dataset may have thousands)
            self.query_one("#data-versions", KeyedTable).update_rows(
                [version_row(x, self.marked is not None and x.id == self.marked.id) for x in self.lists.versions
                 if x.id in changed and x.dataset == self.dataset])
        if self.marked is not None:
            self.notify(f"Marked {v.label}: highlight another version and press d (diff) or D (drift).",
                        timeout=4, markup=False)

    def action_add(self) -> None:
        from mltui.tui.modals.data_add import AddDataScreen

        def added(label: str | None) -> None:
            if label:
                self.notify(f"Recorded {label}.", timeout=4, markup=False)
                self.shown = None
                self.reread()
                self._show_current()  # (the poll draws nothing when the lists read as they were)

        self.app.push_screen(AddDataScreen(self.ws, self.dataset), added)

    def action_refresh(self) -> None:
        self.shown = None
        self.reread()
        self._show_current()

    def _show_current(self) -> None:
        v = self.version
        if v is None:
            return
        marked = self.marked if self.mode in ("diff", "drift") else None
        key = (self.mode, v.id, marked.id if marked else None)
        if key == self.shown:
            return
        self.shown = key
        what = {"files": "files", "profile": "profile", "runs": "runs that used it", "diff": "diff", "drift": "drift"}
        title = f"{v.label} · {what[self.mode]}" if marked is None else f"{marked.label} → {v.label} · {self.mode}"
        self.query_one("#data-title", Static).update(Text(title, style="bold"))
        self._progress(None)
        self._load(self.mode, v, marked)

    def _progress(self, fraction: tuple[int, int] | None) -> None:
        bar = self.query_one("#data-progress", ProgressBar)
        bar.display = fraction is not None
        if fraction is not None:
            bar.update(total=max(1, fraction[1]), progress=fraction[0])

    # -- loading the right side (thread worker, own connection, answers as messages) ---------------
    @work(thread=True, exclusive=True, group="data-detail", exit_on_error=False)
    def _load(self, mode: str, version, marked) -> None:
        from mltui.core.reader import with_readonly

        key = (mode, version.id, marked.id if marked else None)

        def step(done: int, total: int) -> None:
            self.post_message(DetailProgress(key, done, total))

        try:
            answer = with_readonly(self.ws, lambda conn: self._compute(conn, key, version, marked, step))
        except Exception as exc:  # one sentence in the pane, never a crash
            answer = DetailFailed(key, str(exc))
        self.post_message(answer)

    def _compute(self, conn, key: tuple, version, marked, step) -> DetailLoaded:
        from mltui.core.data import tables as data_tables
        from mltui.core.data.ops import diff
        from mltui.core.data.versions import files
        from mltui.core.data.lineage import runs_using

        mode = key[0]
        if mode == "files":
            return FilesLoaded(key, files(conn, version.id))
        if mode == "runs":
            return UsersLoaded(key, runs_using(conn, version.dataset, version.id))
        if mode == "diff":
            return DiffLoaded(key, diff(conn, marked, version))
        if mode == "profile":
            found = data_tables.tables(conn, version)
            if not found:
                return DetailFailed(key, f"{version.label} holds no CSV, TSV, Parquet or JSON lines file to profile.")
            return ProfileLoaded(key, [data_tables.profile_of(self.ws, conn, version, e, step) for e in found[:4]])
        return DriftLoaded(key, data_tables.drift_of(self.ws, conn, marked, version, None, step))

    def on_detail_progress(self, message: DetailProgress) -> None:
        if message.key == self.shown:
            self._progress((message.done, message.total))

    def _answer(self, message: DetailLoaded) -> Static | None:
        """The chart line, reset, with the detail table emptied for `message`'s answer; None when the user
        has moved on since it was asked for."""
        if message.key != self.shown or not self.is_attached:
            return None
        self._progress(None)
        chart = self.query_one("#data-chart", Static)
        chart.display = False
        self.query_one("#data-detail", DataTable).clear(columns=True)  # a new answer, not a tick: refilled whole
        return chart

    def _fill(self, columns: list[Column], rows: list[tuple]) -> None:
        table = self.query_one("#data-detail", DataTable)
        for col in columns:
            table.add_column(col.label, key=col.key)
        for key, cells in rows:
            table.add_row(*cells, key=key)

    def on_detail_failed(self, message: DetailFailed) -> None:
        if (chart := self._answer(message)) is not None:
            chart.display = True
            chart.update(Text(safe(message.error), style=self.app.theme_variables.get("error", "red")))

    def on_files_loaded(self, message: FilesLoaded) -> None:
        if (chart := self._answer(message)) is not None:
            self._fill(*self._rows_files(message.entries, chart))

    def on_users_loaded(self, message: UsersLoaded) -> None:
        if (chart := self._answer(message)) is not None:
            self._fill(*self._rows_runs(message.runs, chart))

    def on_diff_loaded(self, message: DiffLoaded) -> None:
        if (chart := self._answer(message)) is not None:
            self._fill(*self._rows_diff(message.diff, chart))

    def on_profile_loaded(self, message: ProfileLoaded) -> None:
        if (chart := self._answer(message)) is not None:
            self._fill(*self._rows_profile(message.profiles, chart))

    def on_drift_loaded(self, message: DriftLoaded) -> None:
        if (chart := self._answer(message)) is not None:
            self._fill(*self._rows_drift(message.results, chart))

    # -- tables for each mode -------------------------------------------------------------------
    def _rows_files(self, entries, chart):
        from mltui.core.data.hashing import show

        rows = []
        for i, e in enumerate(entries[:MAX_FILES]):
            if e.kind == "link":
                cells = [_t(show(e.path) + " -> " + show(e.target or b"")), Text("link", style="dim"), Text("")]
            elif e.kind == "dir":
                cells = [_t(show(e.path) + "/"), Text("empty folder", style="dim"), Text("")]
            else:
                cells = [_t(show(e.path)), Text(size(e.size)), Text((e.sha256 or "")[:12], style="dim")]
            rows.append((f"{i:08d}", cells))
        if len(entries) > MAX_FILES:
            chart.display = True
            chart.update(Text(f"The first {MAX_FILES:,} of {len(entries):,} entries; `mltui data files` lists all.",
                              style="dim"))
        return [Column("path", "Path"), Column("size", "Size"), Column("sha", "sha256")], rows

    def _rows_runs(self, runs, chart):
        if not runs:
            chart.display = True
            chart.update(Text("No run has used this version.", style="dim"))
        warn = self.app.theme_variables.get("warning", "yellow")
        return ([Column("id", "Run"), Column("name", "Name"), Column("status", "Status"), Column("how", "How"),
                 Column("data", "Data")],
                [(r["id"], [Text(r["id"], style="dim"), _t(r["name"] or ""), Text(r["status"]), _t(r["how"]),
                            Text("changed during the run", style=warn) if r["changed"] else Text("-")])
                 for r in runs])

    def _rows_diff(self, d, chart):
        from mltui.core.data.hashing import show

        added, removed, modified, renamed = d.added, d.removed, d.modified, d.renamed
        chart.display = True
        chart.update(Text(f"{len(added)} added · {len(removed)} removed · {len(modified)} modified · "
                          f"{len(renamed)} renamed"))
        ok, bad = self.app.theme_variables.get("success", "green"), self.app.theme_variables.get("error", "red")
        rows = [("+" + show(e.path), [Text("+", style=ok), _t(show(e.path)), Text(size(e.size))]) for e in added]
        rows += [("-" + show(e.path), [Text("-", style=bad), _t(show(e.path)), Text(size(e.size))]) for e in removed]
        rows += [("M" + show(a.path), [Text("M"), _t(show(a.path)), Text(f"{size(a.size)} → {size(b.size)}")])
                 for a, b in modified]
        rows += [("R" + show(a.path), [Text("R"), _t(f"{show(a.path)} → {show(b.path)}"), Text(size(b.size))])
                 for a, b in renamed]
        rows = [(f"{i:08d}", cells) for i, (_, cells) in enumerate(rows[:MAX_FILES])]
        return [Column("op", " "), Column("path", "Path"), Column("size", "Size")], rows

    def _rows_profile(self, profiles, chart):
        chart.display = True
        chart.update(Text(" · ".join(f"{safe(p['path'])}: {p['rows']:,} rows, {len(p['columns'])} columns"
                                     for p in profiles)))
        rows = []
        for p in profiles:
            for c in p["columns"]:
                summary = column_summary(c, top=4)
                label = c["name"] if len(profiles) == 1 else f"{p['path']}:{c['name']}"
                rows.append((f"{len(rows):06d}", [_t(label, "bold"), Text(c["dtype"], style="dim"),
                                                  Text(f"{c['nulls']:,}"), _t(summary)]))
        return [Column("col", "Column"), Column("type", "Type"), Column("nulls", "Nulls"),
                Column("summary", "Summary")], rows

    def _rows_drift(self, results, chart):
        accent = self.app.theme_variables.get("warning", "yellow")
        lines = Text()
        rows = []
        for r in results:
            ranked = sorted((c for c in r["columns"] if c.get("psi") is not None), key=lambda c: -c["psi"])[:CHART]
            top = max([c["psi"] for c in ranked] + [0.25])
            lines.append(f"{safe(r['path_a'])}: {r['rows_a']:,} → {r['rows_b']:,} rows. PSI of the most drifted columns "
                         "(> 0.25 is a major shift):\n", style="bold")
            for c in ranked:
                width = max(1, round(30 * c["psi"] / top))
                lines.append(f"{safe(c['name'])[:18]:>18} ")
                lines.append("█" * width, style=accent if c["psi"] > 0.25 else "")
                lines.append(f" {c['psi']:.3g}\n")
            for c in r["columns"]:
                schema, note = schema_note(c), drift_note(c)
                rows.append((f"{len(rows):06d}", [_t(c["name"], "bold"), Text(c.get("kind", "-")),
                                                  Text(schema, style=accent if schema else ""),
                                                  Text(short(c.get("psi"))), Text(short(c.get("ks"))), _t(note)]))
        chart.display = True
        chart.update(lines)
        return [Column("col", "Column"), Column("kind", "Kind"), Column("schema", "Schema"), Column("psi", "PSI"),
                Column("ks", "KS"), Column("note", "Largest change")], rows

