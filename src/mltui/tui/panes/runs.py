"""The Runs pane: filter box, status line, the runs table paged from SQL and (when wide) a preview of the
highlighted run.

The table shows a result of any size but holds only the page on screen plus a margin (`Want`): the
pane reads that page, and the count of the whole result, in its poll's thread (core/runs/paging.py:
the filter and the sort are SQL). A poll that finds the store as it was (SQLite's data_version) and
the same page wanted reads nothing and draws nothing; the relative times tick on their own.

The first page is read from the moment the pane is composed, in a thread of its own, while the rest of
the screen is built; the pane's first poll waits a moment for it (FIRST_WAIT), so the first frame shows
rows. The count of the whole result follows in the next poll.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Input, Static

from mltui.base.errors import MltuiError
from mltui.core.runs.listing import check_where, pick_columns
from mltui.core.runs.paging import Page, Query, active_runs, read_page
from mltui.core.workspace import Workspace
from mltui.tui.panes.base import Pane
from mltui.tui.panes.run_groups import GroupMode
from mltui.tui.panes.run_marks import MarkMode
from mltui.tui.widgets.filter_input import FilterInput
from mltui.tui.widgets.run_preview import RunPreview
from mltui.tui.widgets.runs_table import RunsTable, columns_for

SORTS = [
    ("-created", "newest first"), ("created", "oldest first"), ("name", "name"), ("status", "status"),
    ("-duration", "longest first"),
]
WIDE = 150  # columns from which the preview panel is shown
MARGIN = 30  # rows read above and below the screen (at least; half a screen on a tall one), so a page
# down lands on rows already read, and a live refresh reads little more than the screen
FIRST_WAIT = 0.3  # seconds the first frame waits for the first page (it takes ~20 ms; a slow disk, longer)
KEY_WAIT = 0.12  # seconds the UI waits for the page a key asked for (a filter, a sort, a jump), to draw it
# in the next frame; a slower read is drawn when it comes


@dataclass(frozen=True)
class Want:
    """The page the table wants: `epoch` moves with every new filter or sort."""

    epoch: int
    query: Query
    offset: int
    limit: int


@dataclass
class RunsSnapshot:
    want: Want
    version: int  # the store's data_version the page was read at
    page: Page
    taken: float
    counted_at: int | None = None  # the data_version the page's counts were read at


class RunsPane(GroupMode, MarkMode, Pane):
    BINDINGS = [
        Binding("slash", "focus_filter", "Filter", id="runs.filter"),
        Binding("s", "cycle_sort", "Sort", id="runs.sort"),
        Binding("space", "toggle_mark", "Mark", id="runs.mark"),
        Binding("c", "compare", "Compare", id="runs.compare"),
        Binding("C", "compare_all", "Compare all", id="runs.compare_all", show=False),
        Binding("g", "group", "Group", id="runs.group", show=False),  # the footer at 80 columns is full
        Binding("n", "app.launch", "Launch", id="runs.launch"),
        Binding("l", "app.open_log", "Log", id="runs.log"),
        Binding("k", "app.kill_run", "Kill", id="runs.kill", show=False),
        Binding("r", "app.rerun", "Rerun", id="runs.rerun", show=False),
        Binding("ctrl+r", "refresh", "Refresh", id="runs.refresh", show=False),
    ]
    reap_every = 5.0  # seconds between looks for runs whose supervisor died
    poll_group = "runs-poll"

    def __init__(self, ws: Workspace, refresh_seconds: float = 1.0, **kwargs) -> None:
        super().__init__(ws, refresh_seconds, **kwargs)
        from mltui.core.reader import StoreReader

        # counting a filter over 100k runs touches most of the store's pages: read them through a small
        # page cache rather than mapped into the process (which would count every page touched in its RSS)
        self.reader = StoreReader(ws, cache_kib=16384, mmap=False)
        self.where: str | None = None
        self.sort: tuple[str, str] = SORTS[0]  # (--sort spec, label); kept even when a filter hides its metric
        self.want = Want(0, Query(None, SORTS[0][0]), 0, 2 * MARGIN + 60)
        self.snapshot: RunsSnapshot | None = None
        self._recount = False
        self._counted_at = 0.0  # when the whole result was last counted (time.monotonic)
        self._count_every = 0.0  # seconds between counts while the store changes: 20 times what one took
        self._reaped = 0.0
        self._highlight: str | None = None  # a run to move the cursor to once it is drawn (one just launched)
        self._layout: tuple | None = None  # (width, epoch, version) the columns were picked for
        self._status: Text | None = None
        self._preview_of: object = ()  # the run the preview shows (its dict), so it is not drawn twice
        self._first: tuple[threading.Thread, dict] | None = None  # the first page's read (see first_poll)

    def compose(self) -> ComposeResult:
        self._start_first_read()
        yield FilterInput(self.apply_filter, self.clear_filter, id="filter",
                          placeholder="filter: params.lr > 0.01 and status = running   (/ to focus · enter applies · esc clears)")
        yield Static(id="filter-error")
        yield Static(id="runs-status")
        with Horizontal(id="runs-body"):
            yield RunsTable(id="runs-table")
            yield RunPreview(id="run-preview")

    def on_mount(self) -> None:  # then Pane's: the first poll
        self.query_one("#filter-error").display = False
        self.want = replace(self.want, limit=self._limit())
        self.query_one(RunsTable).focus()

    @property
    def table(self) -> RunsTable:
        return self.query_one(RunsTable)

    def _limit(self) -> int:
        table = self.query(RunsTable)
        rows = table.first().rows_on_screen if table and table.first().size.height else self.app.size.height
        return rows + 2 * max(MARGIN, rows // 2)

    # -- the first page ------------------------------------------------------------------------
    def _start_first_read(self) -> None:
        want = self.want = replace(self.want, limit=self._limit())
        reader, box = self.reader, {}

        def read() -> None:
            try:
                with reader.in_use():
                    version = reader.data_version()
                    page = reader.read(lambda conn: read_page(conn, want.query, 0, want.limit, count=False))
                box["snapshot"] = RunsSnapshot(want, version, page, time.time())
            except Exception:  # noqa: BLE001 - the poll that follows reads again and says what is wrong
                pass

        thread = threading.Thread(target=read, name="mltui-runs-first-page", daemon=True)
        thread.start()
        self._first = (thread, box)

    def first_poll(self) -> None:
        """On mount: draw the first page if its read is done (or is within FIRST_WAIT), else poll."""
        first, self._first = self._first, None
        if first is not None:
            thread, box = first
            thread.join(FIRST_WAIT)  # the UI thread waits: the read has the GIL to itself meanwhile
            snapshot = box.get("snapshot")
            if snapshot is not None and snapshot.want == self.want and not self.grouped:
                self.apply(snapshot)  # which asks for the count
                return
        self.poll_now(force=True)

    # -- polling (Pane: reader, refresh) ---------------------------------------------------
    def should_poll(self) -> bool:
        return self.is_attached and self.screen is self.app.screen and self.display

    def action_refresh(self) -> None:
        self._recount = True
        self.poll_now(force=True)

    def quick_check(self) -> bool:
        """The timed poll's look, on the UI thread: the store as it was (data_version), the page as it was,
        the count current (or not due) and no look for dead runs due: nothing to read (see collect)."""
        shown = self.snapshot
        if self.grouped or shown is None or shown.want != self.want or shown.page.counts is None \
                or time.time() - self._reaped >= self.reap_every:
            return False
        version = self.reader.peek_version()  # None while a read holds the connection
        if version is None or version != shown.version:
            return False
        return shown.counted_at == version or time.monotonic() - self._counted_at < self._count_every

    def collect(self, force: bool) -> RunsSnapshot | object | None:
        if self.grouped:
            return self.collect_groups(force)
        if time.time() - self._reaped >= self.reap_every:
            from mltui.core.launch.liveness import reap_lost

            self._reaped = time.time()
            if self.reader.read(active_runs):  # with nothing active there is nothing to reap
                reap_lost(self.ws, self.reader.conn)  # marks dead runs lost; the change shows below
        want, shown = self.want, self.snapshot
        version = self.reader.data_version()
        same_epoch = shown is not None and shown.want.epoch == want.epoch
        same_data = same_epoch and shown.version == version
        # a new sort of the same filter, the store as it was counted: the count stands (at 1M runs a
        # filter's count is seconds of reading)
        carried = not same_epoch and shown is not None and shown.page.counts is not None \
            and shown.counted_at == version \
            and (shown.want.query.where, shown.want.query.archived) == (want.query.where, want.query.archived)
        counted = (same_epoch or carried) and shown.page.counts is not None
        fresh = counted and shown.counted_at == version  # the count is of the store as it is
        due = time.monotonic() - self._counted_at >= self._count_every
        if same_data and counted and not force and shown.want == want and (fresh or not due):
            return None  # the store as it was, the page as it was: nothing to read or draw
        # the count: at once for a new filter's second read (its first page is shown before it is counted),
        # on ctrl+r, and after a change to the store, at most every `count_every` seconds (a count over a
        # filter reads every run: a run logging every second must not have it recounted every second)
        recount = self._recount or not counted or (not fresh and due)
        counts = None if recount else shown.page.counts
        first_read = not same_epoch and not carried and not self._recount
        self._recount = False
        started = time.monotonic()
        page = self.reader.read(lambda conn: read_page(conn, want.query, want.offset, want.limit, counts,
                                                       count=not first_read, exact=recount or fresh))
        if recount and not first_read:
            took = time.monotonic() - started
            self._counted_at = time.monotonic()
            self._count_every = 0.0 if took < 0.02 else 20 * took  # a cheap count is always kept current
        counted_at = version if recount and not first_read else (shown.counted_at if counted else None)
        return RunsSnapshot(want, version, page, time.time(), counted_at)

    def apply(self, snapshot) -> None:
        if self.grouped:
            self.apply_groups(snapshot)
            return
        table = self.table
        if not isinstance(snapshot, RunsSnapshot):
            table.tick(time.time())
            return
        if snapshot.want.epoch != self.want.epoch:
            return  # read for a filter or sort since replaced: the poll for the new one follows
        before = self.snapshot
        self.snapshot = snapshot
        new_epoch = before is None or before.want.epoch != snapshot.want.epoch
        cursor_id = table.highlighted_id
        self.render_snapshot(keep_widths=not new_epoch)
        if self._highlight is not None and self._highlight in table._index:
            table.move_cursor(table._index[self._highlight])
            self._highlight = None
        elif cursor_id is not None and cursor_id in table._index:
            table.move_cursor(table._index[cursor_id])  # the same run, wherever new runs put it
        elif new_epoch:
            table.move_cursor(0)
            table.scroll_to(y=0, animate=False, immediate=True)
        self._check_window()
        self._show_preview()
        if snapshot.page.counts is None:  # the first page of a new filter: count the result once it is drawn
            self.call_after_refresh(self._count_now, snapshot.want.epoch)

    def _count_now(self, epoch: int) -> None:
        if self.want.epoch == epoch and self.snapshot is not None and self.snapshot.page.counts is None:
            self.poll_now(force=True)

    # -- drawing -------------------------------------------------------------------------
    def _columns(self, runs: list[dict], width: int):
        n_params, n_metrics = (0, 2) if width < 100 else (2, 3) if width < 140 else (4, 4) if width < 180 else (6, 5)
        return columns_for(pick_columns(runs, "params", n_params, varying=True),
                           pick_columns(runs, "metrics", n_metrics, varying=False))

    def render_snapshot(self, keep_widths: bool = True) -> None:
        snap = self.snapshot
        if snap is None:
            return
        width = self.app.size.width
        table = self.table
        table.name_width = 24 if width < 100 else 36
        layout = (width, snap.want.epoch, snap.version)
        columns = table.columns
        if layout != self._layout or not columns:  # new data or a new size; a scroll keeps the columns
            columns = self._columns(snap.page.runs, width)
            self._layout = layout
        table.show(self._total(snap), snap.page.offset, snap.page.runs, columns, time.time(),
                   keep_widths=keep_widths)
        self.query_one(RunPreview).display = width >= WIDE
        self._update_status()

    @staticmethod
    def _total(snap: RunsSnapshot) -> int:
        """The result's length, or until it is counted what the first page tells (one more if it was full)."""
        page = snap.page
        if page.counts is not None:  # a count kept from before a change may be short of the runs read since
            return max(page.counts.total, page.offset + len(page.runs))
        return page.offset + len(page.runs) + (1 if len(page.runs) >= snap.want.limit else 0)

    def _update_status(self) -> None:
        if self.grouped:
            status = self.group_status()
        else:
            snap = self.snapshot
            if snap is None:
                return
            counts = snap.page.counts
            status = Text()
            if counts is None:
                status.append("counting runs…")
            elif counts.total == 0:
                status.append("No runs match this filter." if self.where else
                              "No runs yet. Log one from a training script with mltui.init(), then watch it here.")
            else:
                status.append(f"{counts.total:,} {'run' if counts.total == 1 else 'runs'}")
                if counts.running:
                    status.append(f" · {counts.running:,} running",
                                  style=self.app.theme_variables.get("status-running", ""))
        marked = len(self.table.marked)
        if marked:
            status.append(f" · {marked} marked", style=self.app.theme_variables.get("accent", ""))
        status.append(f" · sort: {self.sort_label()}", style="dim")
        if self.where:
            status.append(" · filter: ", style="dim")
            status.append(self.where)  # literal text, never markup
        if status != self._status or (self._status is not None and status.spans != self._status.spans):
            self._status = status
            self.query_one("#runs-status", Static).update(status, layout=False)  # one line, its size set by the CSS

    def highlighted_run(self) -> dict | None:
        row = self.table.row_at(self.table.cursor_row)
        return row if row is not None and not row.get("group") else None

    def _show_preview(self) -> None:
        preview = self.query_one(RunPreview)
        if not preview.display:
            self._preview_of = ()
            return
        run = self.highlighted_run()
        if run is not self._preview_of:
            self._preview_of = run
            preview.show_run(run)

    def on_resize(self) -> None:
        self.want = replace(self.want, limit=self._limit())
        if self.grouped:
            self.render_groups()
        else:
            self.render_snapshot()
        self._show_preview()

    @on(RunsTable.Highlighted)
    def _highlighted(self, event: RunsTable.Highlighted) -> None:
        self._show_preview()

    @on(RunsTable.Selected)
    def _selected(self, event: RunsTable.Selected) -> None:
        if self.grouped and self.toggle_group(event.run_id):
            return
        self.app.open_run(event.run_id)  # type: ignore[attr-defined]

    @on(RunsTable.WindowMoved)
    def _window_moved(self) -> None:
        self._check_window()

    def _check_window(self) -> None:
        """Read another page when the rows on screen come near the edge of those held."""
        table = self.table
        if self.grouped or table.total == 0 or self.snapshot is None:
            return
        first, last = table.visible_range()
        held_from, held_to = table.start, table.start + len(table.window)
        margin = max(MARGIN, table.rows_on_screen // 2)
        near = (first - held_from < margin // 2 and held_from > 0) or (held_to - last < margin // 2
                                                                          and held_to < table.total)
        if not near and first >= held_from and last <= held_to:
            return
        want = replace(self.want, offset=max(0, first - margin), limit=(last - first) + 2 * margin)
        if want != self.want:
            self.want = want
            self.poll_now(force=True, wait=KEY_WAIT)

    # -- filter and sort -----------------------------------------------------------------
    def action_focus_filter(self) -> None:
        # at once, not by Widget.focus (next turn): keys already queued behind `/` (a paste, a burst over
        # a slow link) are filter text, never the table's keys
        self.app.set_focus(self.query_one("#filter", Input))

    def apply_filter(self, text: str) -> bool:
        """Validate and apply a --where filter; a bad one is explained and the old one kept."""
        error = self.query_one("#filter-error", Static)
        text = text.strip()
        if text:
            try:
                check_where(text)
            except MltuiError as exc:
                error.update(Text(str(exc), style=self.app.theme_variables.get("error", "red")))
                error.display = True
                return False
        error.display = False
        self.where = text or None
        self.app.set_focus(self.table)  # at once: the keys queued behind enter are the table's
        self._new_query()
        return True

    def _new_query(self) -> None:
        """A new filter or sort: the result starts again from its first page."""
        self.want = Want(self.want.epoch + 1, Query(self.where, self.sort[0]), 0, self._limit())
        self.poll_now(force=True, wait=KEY_WAIT)

    def clear_filter(self) -> None:
        self.query_one("#filter", Input).value = ""
        self.apply_filter("")

    def _metric_sorts(self) -> list[tuple[str, str]]:
        if self.snapshot is None:
            return []
        keys = pick_columns(self.snapshot.page.runs, "metrics", 4, varying=False)
        return [(f"-metrics.{k}", f"{k} (high first)") for k in keys]

    def sort_label(self) -> str:
        return self.sort[1]

    def action_cycle_sort(self) -> None:
        options = SORTS + [o for o in self._metric_sorts() if o not in SORTS]
        position = options.index(self.sort) if self.sort in options else -1
        self.sort = options[(position + 1) % len(options)]
        self._new_query()
        self.notify(f"Sorted by {self.sort_label()}", timeout=2)

    def highlight(self, run_id: str) -> None:
        """Put the cursor on `run_id` as soon as the table shows it."""
        self._highlight = run_id
        self.poll_now(force=True)
