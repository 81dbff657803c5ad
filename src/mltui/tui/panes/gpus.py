"""The GPUs pane: one line per GPU (utilisation and memory bars, temperature, power, history), then every
GPU process with the mltui run that owns it. Polled in a thread worker, never overlapping, only while shown
(panes/base.py); it reads the GPUs, not the store. A GPU is flagged idle by core/gpu/waste.py's rule, the
one `mltui gpu` applies too."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Static

from mltui.core.gpu.sources import GpuState, open_gpus
from mltui.core.gpu.waste import IdleWatch, held_gb
from mltui.base.text import safe
from mltui.core.workspace import Workspace
from mltui.tui.cells import spark_percent
from mltui.tui.panes.base import Pane
from mltui.tui.widgets.keyed_table import Column, KeyedTable

HISTORY = 120  # samples of utilisation kept per GPU for the sparkline


@dataclass
class GpuSnapshot:
    state: GpuState
    owners: dict[int, dict]
    users: dict[int, str]


def _user_of(pid: int) -> str:
    import pwd

    try:
        with open(f"/proc/{pid}/status", encoding="utf-8") as fh:
            uid = next(int(line.split()[1]) for line in fh if line.startswith("Uid:"))
        return pwd.getpwuid(uid).pw_name
    except (OSError, StopIteration, KeyError, ValueError):
        return "-"


def bar(fraction: float | None, width: int, colour: str) -> Text:
    if fraction is None or width <= 0:
        return Text("·" * max(0, width), style="dim")
    fraction = min(1.0, max(0.0, fraction))
    full = round(fraction * width)
    return Text.assemble(("█" * full, colour), ("░" * (width - full), "dim"))


class GpuPane(Pane):
    BINDINGS = [
        Binding("enter", "open_run", "Open run", id="gpu.open"),
        Binding("k", "kill_run", "Kill run", id="gpu.kill"),
        Binding("ctrl+r", "refresh", "Refresh", id="gpu.refresh", show=False),
    ]
    poll_group = "gpu-poll"
    reads_store = False  # it polls the GPUs; core/gpu finds the run that owns each process

    def __init__(self, ws: Workspace, refresh_seconds: float = 1.0, **kwargs) -> None:
        super().__init__(ws, refresh_seconds, **kwargs)
        self.source = None
        self.snapshot: GpuSnapshot | None = None
        self.history: dict[int, deque] = {}
        self.idle = IdleWatch(ws.config().gpu_idle_seconds)  # by GPU index

    def compose(self) -> ComposeResult:
        yield Static(id="gpu-error")
        yield Static(id="gpu-cards")
        yield Static(id="gpu-procs-title")
        yield KeyedTable(id="gpu-procs", cursor_type="row")

    def on_mount(self) -> None:  # then Pane's: the first poll
        self.query_one("#gpu-error").display = False

    # -- polling (collect runs in a thread) -----------------------------------------------------
    def collect(self, force: bool) -> GpuSnapshot:
        from mltui.core.gpu.owners import owners

        if self.source is None:
            self.source = open_gpus(self.ws.config().gpu_backend, workspace=self.ws)
        state = self.source.snapshot()
        pids = [p.pid for g in state.gpus for p in g.processes]
        found = owners(self.ws, pids) if pids else {}
        users = {pid: found[pid].get("user") or "-" if pid in found else _user_of(pid) for pid in pids}
        return GpuSnapshot(state, found, users)

    def apply(self, snapshot: GpuSnapshot | None) -> None:
        if snapshot is None:
            return
        self.snapshot = snapshot
        now = snapshot.state.taken
        for gpu in snapshot.state.gpus:
            self.history.setdefault(gpu.index, deque(maxlen=HISTORY)).append(gpu.util)
            self.idle.see(gpu.index, gpu.util, held_gb(gpu), now)
        self.render_snapshot()

    # -- drawing ----------------------------------------------------------------------------------
    def render_snapshot(self) -> None:
        snap = self.snapshot
        if snap is None:
            return
        error = self.query_one("#gpu-error", Static)
        error.display = bool(snap.state.error)
        _update(error, Text(snap.state.error or "", style=self.app.theme_variables.get("error", "red")))
        _update(self.query_one("#gpu-cards", Static), self._cards(snap))
        procs = [p for g in snap.state.gpus for p in g.processes]
        _update(self.query_one("#gpu-procs-title", Static),
                Text(f"{len(procs)} GPU process{'es' if len(procs) != 1 else ''}" if snap.state.gpus else "",
                     style="bold"))
        self._procs(snap)

    def _cards(self, snap: GpuSnapshot) -> Text:
        colours = self.app.theme_variables
        width = max(40, self.size.width - 2)
        wide = width >= 120
        bar_w = max(6, (width - 52) // (3 if wide else 2))
        out = Text()
        for gpu in snap.state.gpus:
            if out:
                out.append("\n")
            out.append(f"{gpu.index:>2} ", style="bold")
            out.append(safe(gpu.name)[: 22 if wide else 12].ljust(22 if wide else 12) + " ")
            if gpu.error:
                out.append(safe(gpu.error), style=colours.get("error", "red"))
                continue
            util = gpu.util
            out.append_text(bar(None if util is None else util / 100, bar_w, colours.get("spark-high", "")))
            out.append(f" {util:3.0f}% " if util is not None else "   -  ")
            mem = gpu.mem_used / gpu.mem_total if gpu.mem_total else None
            out.append_text(bar(mem, bar_w, colours.get("spark-low", "")))
            out.append(f" {gpu.mem_used / 2**30:4.0f}/{gpu.mem_total / 2**30:.0f}G ")
            out.append_text(self._temp(gpu.temperature))
            out.append_text(self._power(gpu.power, gpu.power_limit))
            if self.idle.flagged(gpu.index):
                out.append(" idle", style=colours.get("status-killed", "yellow"))
            if wide:
                out.append("  " + spark_percent(list(self.history.get(gpu.index, [])), max(0, width - 52 - 3 * bar_w - 12)),
                           style=colours.get("spark-high", ""))
        return out

    def _temp(self, temp) -> Text:
        colours = self.app.theme_variables
        if temp is None:
            return Text("   - ", style="dim")
        style = colours.get("status-failed", "red") if temp >= 85 else (
            colours.get("status-killed", "yellow") if temp >= 75 else "")
        return Text(f"{temp:3.0f}C ", style=style)

    def _power(self, power, limit) -> Text:
        colours = self.app.theme_variables
        if power is None:
            return Text("   - ", style="dim")
        share = power / limit if limit else 0
        style = colours.get("status-failed", "red") if share >= 0.95 else (
            colours.get("status-killed", "yellow") if share >= 0.8 else "")
        return Text(f"{power:4.0f}W", style=style)

    def _procs(self, snap: GpuSnapshot) -> None:
        table = self.query_one("#gpu-procs", KeyedTable)
        columns = [Column("gpu", "GPU"), Column("pid", "PID"), Column("mem", "Memory"), Column("run", "Run"),
                   Column("user", "User"), Column("note", "")]
        rows = []
        for gpu in snap.state.gpus:
            for proc in gpu.processes:
                run = snap.owners.get(proc.pid)
                mem = "-" if proc.used_memory is None else f"{proc.used_memory / 2**30:.1f}G"
                name = Text(safe(run["name"])) if run else Text("(no run)", style="dim")
                idle = Text("idle", style=self.app.theme_variables.get("status-killed", "yellow")) \
                    if self.idle.flagged(gpu.index) else Text("")
                rows.append((f"{gpu.index}:{proc.pid}", [Text(str(gpu.index)), Text(str(proc.pid)), Text(mem),
                                                          name, Text(safe(snap.users.get(proc.pid, "-"))), idle]))
        table.sync(columns, rows, order_column="pid")

    # -- keys ---------------------------------------------------------------------------------------
    def highlighted_run_id(self) -> str | None:
        key = self.query_one("#gpu-procs", KeyedTable).highlighted_key
        if self.snapshot is None or key is None:
            return None
        pid = int(key.split(":")[1])
        run = self.snapshot.owners.get(pid)
        return run["id"] if run else None

    def _run_or_say(self) -> str | None:
        run_id = self.highlighted_run_id()
        if run_id is None:
            self.notify("The highlighted GPU process belongs to no mltui run.", timeout=3)
        return run_id

    def action_open_run(self) -> None:
        run_id = self._run_or_say()
        if run_id:
            self.app.open_run(run_id)  # type: ignore[attr-defined]

    def action_kill_run(self) -> None:
        run_id = self._run_or_say()
        if run_id:
            self.app.kill_run_by_id(run_id)  # type: ignore[attr-defined]

    @on(DataTable.RowSelected, "#gpu-procs")
    def _selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open_run()


def _update(static: Static, text: Text) -> None:
    """Draw `text` only when it differs from what is shown (a poll that changes nothing draws nothing)."""
    shown = static.content
    if isinstance(shown, Text) and shown.plain == text.plain and shown.spans == text.spans \
            and shown.style == text.style:
        return
    static.update(text)
