"""The Runs pane grouped (key g): one row per group of runs that share params, with N and the mean ± std
of the metrics shown; enter on a group row lists its runs under it (enter again folds them).

g asks for the --group-by spec (default '*,-seed': every param but the seed, the usual way to average
over seeds); g again goes back to the plain list. The grouping is core/runs/groups.py, read in the poll's
thread like the plain list, and only when the store changed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from rich.text import Text

from mltui.base.errors import MltuiError
from mltui.base.values import display

GROUP_SPEC = "*,-seed"
GROUPS_SHOWN = 500  # groups read at a time (the status line says when there are more)
RUNS_PER_GROUP = 200  # runs listed under an expanded group


@dataclass
class GroupsSnapshot:
    spec: str
    version: int
    columns: list[str]  # the group-by columns (params.NAME)
    groups: list  # core.runs.groups.Group
    total: int  # groups in all
    runs: int  # runs in all the groups
    members: dict[str, list[dict]]  # group row id -> its runs (expanded groups only)
    expanded: frozenset[str]
    error: str | None = None


def group_row_id(group) -> str:
    return "group:" + "\x1f".join(f"{k}={display(v)}" for k, v in group.key.items())


def group_label(group) -> str:
    return "  ".join(f"{k.partition('.')[2]}={display(v)}" for k, v in group.key.items()) or "(no params)"


class GroupMode:
    """Mixed into RunsPane: the grouped view's reading, drawing and keys."""

    group_spec: str | None = None
    _expanded: frozenset[str] = frozenset()
    _groups: GroupsSnapshot | None = None

    @property
    def grouped(self) -> bool:
        return self.group_spec is not None

    # -- keys ------------------------------------------------------------------------------------
    def action_group(self) -> None:
        if self.grouped:
            self.set_grouping(None)
            return
        from mltui.tui.modals.prompt import Field, PromptScreen

        def chosen(values: dict | None) -> None:
            if values is not None:
                self.set_grouping(values["spec"] or GROUP_SPEC)

        note = Text("Params to group by, comma-separated: params.model,params.lr, or * for every param and "
                    "-NAME to leave one out. Each group shows N and the mean ± std of its metrics.")
        self.app.push_screen(PromptScreen("Group runs", [Field("spec", "Group by", value=GROUP_SPEC)], note), chosen)

    def set_grouping(self, spec: str | None) -> None:
        self.group_spec = spec
        self._expanded = frozenset()
        self._groups = None
        if spec is None:
            self.snapshot = None  # the plain list is read again from its first page
            self._layout = None
            self.want = type(self.want)(self.want.epoch + 1, self.want.query, 0, self.want.limit)
        self.table.cursor_row = -1
        self.poll_now(force=True)

    def toggle_group(self, row_id: str) -> bool:
        """Enter on a group row folds or unfolds it (True); on a run row it does nothing here (False)."""
        if not row_id.startswith("group:"):
            return False
        self._expanded = self._expanded ^ {row_id}
        self.poll_now(force=True)
        return True

    # -- reading (in the poll's thread) -------------------------------------------------------------
    def collect_groups(self, force: bool) -> GroupsSnapshot | None:
        from mltui.core.runs.groups import expand_group_by, group_runs, param_keys
        from mltui.core.runs.listing import runs_by_id

        spec, expanded, shown = self.group_spec, self._expanded, self._groups
        version = self.reader.data_version()
        if not force and shown is not None and shown.version == version and shown.spec == spec \
                and shown.expanded == expanded:
            return None

        def read(conn) -> GroupsSnapshot:
            try:
                columns = expand_group_by(spec, param_keys(conn))
                groups = group_runs(conn, self.where, columns, limit=GROUPS_SHOWN)
            except MltuiError as exc:
                return GroupsSnapshot(spec, version, [], [], 0, 0, {}, expanded, error=str(exc))
            members = {}
            for group in groups:
                gid = group_row_id(group)
                if gid in expanded:
                    members[gid] = runs_by_id(conn, group.run_ids[:RUNS_PER_GROUP], details=True)
            return GroupsSnapshot(spec, version, columns, list(groups), groups.total, groups.runs, members, expanded)

        return self.reader.read(read)

    # -- drawing (on the UI thread) --------------------------------------------------------------------
    def apply_groups(self, snapshot: GroupsSnapshot | None) -> None:
        if snapshot is None or snapshot.spec != self.group_spec:
            if snapshot is None:
                self.table.tick(time.time())
            return
        if snapshot.error:
            self.notify(snapshot.error, severity="warning", timeout=6, markup=False)
            self.set_grouping(None)
            return
        cursor_id = self.table.highlighted_id
        self._groups = snapshot
        self.render_groups()
        index = self.table._index.get(cursor_id) if cursor_id else None
        self.table.move_cursor(index if index is not None else max(0, self.table.cursor_row))
        self._show_preview()

    def render_groups(self) -> None:
        from mltui.core.runs.listing import pick_columns
        from mltui.tui.widgets.runs_table import Column

        snap = self._groups
        if snap is None:
            return
        width = self.app.size.width
        n_metrics = 2 if width < 100 else 3 if width < 140 else 5
        keys = pick_columns([{"metrics": g.stats} for g in snap.groups], "metrics", n_metrics, varying=False)
        rows: list[dict] = []
        for group in snap.groups:
            gid = group_row_id(group)
            rows.append({"id": gid, "group": group, "open": gid in snap.expanded, "label": group_label(group)})
            rows.extend(snap.members.get(gid, []))
        columns = [Column("mark", " "), Column("status", "Status"), Column("name", "Name / group"),
                   Column("age", "Age"), Column("time", "Time"), *(Column(f"m:{k}", k) for k in keys),
                   Column("id", "ID")]
        self.table.name_width = 36 if width < 100 else 60
        self.table.show(len(rows), 0, rows, columns, time.time(), keep_widths=False)
        self.query_one("#run-preview").display = width >= 150
        self._update_status()

    def group_status(self) -> Text:
        snap = self._groups
        status = Text()
        if snap is None:
            status.append("grouping runs…")
            return status
        if not snap.total:
            status.append("No runs to group." if not self.where else "No runs match this filter.")
        else:
            shown = f"the first {len(snap.groups):,} of " if len(snap.groups) < snap.total else ""
            status.append(f"{shown}{snap.total:,} {'group' if snap.total == 1 else 'groups'} of {snap.runs:,} runs")
        status.append(" · grouped by ", style="dim")
        status.append(", ".join(c.partition(".")[2] for c in snap.columns) or str(snap.spec))
        status.append(" · g ungroups · enter unfolds", style="dim")
        return status

