"""The Models pane: models and their versions (stage, aliases) on the left, the promotion queue on
the right. From here a version is registered, promoted, aliased or rolled back, a request opens
for review (enter), and the audit trail opens with each row's signature checked (A)."""

from __future__ import annotations

from dataclasses import dataclass, field

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Static

from mltui.base.text import age, safe, size
from mltui.core.workspace import Workspace
from mltui.tui.messages import CheckpointFailed, CheckpointInspected
from mltui.tui.modals.prompt import Field, PromptScreen
from mltui.tui.panes.base import Pane
from mltui.tui.panes.rereading import Rereads
from mltui.tui.widgets.keyed_table import Column, KeyedTable

EMPTY = ("No models yet. Press R to register a run's artifact (artifacts/model.pt) as a model version, or "
         "from a shell:\n\n  mltui models register NAME --run ID --path artifacts/model.pt\n\n"
         "Versions, their stages and aliases, and the promotion queue appear here.")
STAGE_STYLE = {"production": "success", "staging": "warning", "candidate": "accent"}  # archived: dim


@dataclass
class ModelsSnapshot:
    models: list[dict]
    versions: list  # of the highlighted model, newest first
    requests: list[dict]
    model: str | None = None  # that model
    rows: list = field(default_factory=list, compare=False)  # the versions' rows, made in the poll's thread
    styles: dict = field(default_factory=dict, compare=False)  # the stages' colours they were made with


def version_rows(history: list, styles: dict[str, str]) -> list[tuple[str, list[Text]]]:
    """The versions table's rows; `styles`: the theme's colour of each stage (archived is dim)."""
    return [(str(v.version), [Text(f"v{v.version}", style="bold"), Text(v.stage, style=styles.get(v.stage, "dim")),
                              Text(safe(", ".join(v.aliases)) or "-"), Text(size(v.size)),
                              Text(v.run_id or "-", style="dim"), Text(age(v.created))]) for v in history]


class ModelsPane(Rereads, Pane):
    BINDINGS = [
        Binding("p", "promote", "Promote", id="models.promote"),
        Binding("R", "register", "Register", id="models.register"),
        Binding("s", "alias", "Alias", id="models.alias"),
        Binding("b", "rollback", "Rollback", id="models.rollback"),
        Binding("i", "inspect", "Inspect", id="models.inspect"),
        Binding("A", "audit", "Audit", id="models.audit", tooltip="the audit trail, each row's signature checked"),
        Binding("ctrl+r", "refresh", "Refresh", id="models.refresh", show=False),
    ]
    poll_group = "models-poll"
    can_focus = True
    empty_id, empty_text, body_ids = "models-empty", EMPTY, ("models-body",)
    focus_id = "model-versions"  # the pane passes the focus on to its versions table

    def __init__(self, ws: Workspace, refresh_seconds: float = 1.0, **kwargs) -> None:
        super().__init__(ws, refresh_seconds, **kwargs)
        self.model: str | None = None
        self.snapshot: ModelsSnapshot | None = None
        self.stage_styles: dict[str, str] = {}  # the theme's colour of each stage, for the poll's thread

    def compose(self) -> ComposeResult:
        yield self.empty_note()
        with Horizontal(id="models-body"):
            with Vertical(id="models-left"):
                yield KeyedTable(id="models-list")
                yield KeyedTable(id="model-versions")
            with Vertical(id="models-right"):
                yield Static(id="models-queue-title")
                yield KeyedTable(id="model-requests")
                yield Static(id="models-info")

    # -- polling (Pane: reader, refresh, empty state) -----------------------------------------------
    def read(self, conn) -> ModelsSnapshot:
        from mltui.core.models.promotion import list_requests
        from mltui.core.models.registry import list_models, versions

        models = list_models(conn)
        names = [m["name"] for m in models]
        name = self.model if self.model in names else (names[0] if names else None)
        return ModelsSnapshot(models, versions(conn, name) if name else [], list_requests(conn), name)

    def on_mount(self) -> None:  # then Pane's: the first poll
        self._theme_styles()

    def _theme_styles(self) -> None:
        theme = self.app.theme_variables
        self.stage_styles = {stage: theme.get(var, "") for stage, var in STAGE_STYLE.items()}

    def collect(self, force: bool) -> ModelsSnapshot | None:
        snap = super().collect(force)
        # the store changes all the time (a run logging) while the registry rarely does: when it reads as
        # it is shown, nothing is drawn again (thousands of versions would be rebuilt every second)
        if snap is None or snap == self.snapshot:
            return None
        snap.styles = self.stage_styles
        snap.rows = version_rows(snap.versions, snap.styles)  # here, in the poll's thread
        return snap

    def before_tables(self, exc) -> ModelsSnapshot:
        return ModelsSnapshot([], [], [])  # a store from before models, opened read-only

    def apply(self, snap: ModelsSnapshot | None) -> None:
        if snap is None:
            return
        self.snapshot = snap
        empty = not snap.models and not snap.requests
        self.show_empty(empty)
        if empty:
            return
        theme = self.app.theme_variables
        self._theme_styles()
        self.query_one("#models-list", KeyedTable).sync(
            [Column("name", "Model"), Column("n", "Versions"), Column("prod", "Production")],
            [(m["name"], [Text(safe(m["name"]), style="bold"), Text(str(m["versions"])),
                          Text(f"v{m['production']}" if m["production"] else "-")]) for m in snap.models], "name")
        if self.model not in {m["name"] for m in snap.models} and snap.models:
            self.model = snap.models[0]["name"]
        history = snap.versions if snap.versions and snap.versions[0].model == self.model else []
        # made in the poll's thread; made again here if the theme changed since
        rows = (snap.rows if snap.styles == self.stage_styles else version_rows(history, self.stage_styles)) \
            if history else []
        self.query_one("#model-versions", KeyedTable).sync(
            [Column("v", "Ver"), Column("stage", "Stage"), Column("aliases", "Aliases"), Column("size", "Size"),
             Column("run", "Run"), Column("age", "Registered")], rows, "v")
        ok, bad = theme.get("success", "green"), theme.get("error", "red")
        self.query_one("#models-queue-title", Static).update(Text(
            f"Promotion queue: {len(snap.requests)} waiting" + (" · enter reviews" if snap.requests else ""),
            style="bold"))
        self.query_one("#model-requests", KeyedTable).sync(
            [Column("id", "#"), Column("version", "Version"), Column("to", "To"), Column("by", "By"),
             Column("gates", "Gates"), Column("age", "Filed")],
            [(str(r["id"]), [Text(f"#{r['id']}"), Text(safe(r["label"]), style="bold"), Text(r["target"]),
                             Text(safe(r["requester"])),
                             Text(f"{len(r['failed'])} failing", style=bad) if r["failed"] else Text("pass", style=ok),
                             Text(age(r["created"]))]) for r in snap.requests], "id")

    # -- what is highlighted --------------------------------------------------------------------
    @on(DataTable.RowHighlighted, "#models-list")
    def _model_highlighted(self, event: DataTable.RowHighlighted) -> None:
        name = event.row_key.value if event.row_key else None
        if name and name != self.model:
            self.model = name
            self.reread()

    @on(DataTable.RowSelected, "#models-list")
    def _model_selected(self) -> None:
        self.query_one("#model-versions").focus()

    @on(DataTable.RowSelected, "#model-requests")
    def _request_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key and event.row_key.value:
            self._open_review(int(event.row_key.value))

    def highlighted_version(self):
        key = self.query_one("#model-versions", KeyedTable).highlighted_key
        snap = self.snapshot
        if snap is None or key is None:
            return None
        return next((v for v in snap.versions if str(v.version) == key and v.model == self.model), None)

    # -- actions --------------------------------------------------------------------------------
    def _write(self, do, done: str | None = None) -> bool:
        """Run `do(ws, conn)`; a failure is a notice, never a crash."""
        from mltui.tui.writes import FAILED, write

        result = write(self, self.ws, do)
        if result is FAILED:
            return False
        if done:
            self.notify(done.format(result=result), timeout=5, markup=False)
        self.reread()
        return True

    def _open_review(self, number: int) -> None:
        from mltui.tui.screens.review import ReviewScreen

        self.app.push_screen(ReviewScreen(self.ws, number), lambda _: self.reread())

    def action_audit(self) -> None:
        from mltui.tui.screens.audit import AuditScreen

        self.app.push_screen(AuditScreen(self.ws))

    def action_promote(self) -> None:
        from mltui.core.models.promotion import request

        v = self.highlighted_version()
        if v is None:
            self.notify("Highlight a version first.", timeout=3)
            return
        target = "production" if v.stage == "staging" else "staging"

        def filed(values: dict | None) -> None:
            if values:
                self._write(lambda ws, conn: request(ws, conn, v.label, values["to"], values["why"] or None),
                            "Filed request #{result[id]}: " + f"{v.label} to {values['to']}.")

        self.app.push_screen(PromptScreen(f"Ask to promote {v.label}", [
            Field("to", "to stage", "staging or production", target, required=True),
            Field("why", "why", "what makes it ready (optional)")]), filed)

    def action_register(self) -> None:
        from mltui.core.models.registry import register

        def registered(values: dict | None) -> None:
            if values:
                self._write(lambda ws, conn: register(ws, conn, values["name"], values["run"], values["path"])[0],
                            "Registered {result.label}.")

        self.app.push_screen(PromptScreen("Register a model version from a run's file", [
            Field("name", "model", "classifier", self.model or "", required=True),
            Field("run", "run id", "1ng7... (a unique prefix will do)", required=True),
            Field("path", "file", "artifacts/model.pt", "artifacts/model.pt", required=True)]), registered)

    def action_alias(self) -> None:
        from mltui.core.models.registry import set_alias

        v = self.highlighted_version()
        if v is None:
            self.notify("Highlight a version first.", timeout=3)
            return

        def aliased(values: dict | None) -> None:
            if values:
                self._write(lambda ws, conn: set_alias(ws, conn, v.label, values["alias"]),
                            f"{v.model}@{values['alias']} now points at version {v.version}.")

        self.app.push_screen(PromptScreen(f"Point an alias at {v.label}", [
            Field("alias", "alias", "champion", required=True)]), aliased)

    def action_rollback(self) -> None:
        from mltui.core.models.registry import rollback

        name = self.model
        if name is None:
            return

        def rolled(values: dict | None) -> None:
            if values:
                self._write(lambda ws, conn: rollback(ws, conn, name, values["why"]),
                            "Production is version {result[1].version} again.")

        self.app.push_screen(PromptScreen(f"Roll {name} back to its previous production version", [
            Field("why", "why", "what went wrong (kept in the audit trail)", required=True)]), rolled)

    def action_inspect(self) -> None:
        v = self.highlighted_version()
        if v is None:
            self.notify("Highlight a version first.", timeout=3)
            return
        self._show_info(Text(f"Inspecting {v.label} ({v.path})…", style="dim"))  # loading torch takes a while
        self._inspect(v)

    @work(thread=True, exclusive=True, group="models-inspect", exit_on_error=False)
    def _inspect(self, v) -> None:
        from mltui.core.models.checkpoint import inspect
        from mltui.core.data.versions import cache_of
        from mltui.base.errors import MltuiError

        try:
            info = inspect(cache_of(self.ws).path(v.sha256), shown_name=v.path)
        except MltuiError as exc:
            self.post_message(CheckpointFailed(v, str(exc)))
            return
        self.post_message(CheckpointInspected(v, info))

    def on_checkpoint_failed(self, message: CheckpointFailed) -> None:
        self._show_info(Text(f"{message.version.label}: {message.error}"))

    def on_checkpoint_inspected(self, message: CheckpointInspected) -> None:
        v, info = message.version, message.info
        lines = Text(f"{v.label} ({v.path}): {info['format']}, {size(info['size'])}, "
                     f"{info['parameters']:,} parameters in {len(info['tensors'])} tensors\n", style="bold")
        for t in info["tensors"][:12]:
            lines.append(f"  {safe(t['name'])}  {'x'.join(map(str, t['shape'])) or 'scalar'}  {t['dtype']}\n")
        if len(info["tensors"]) > 12:
            lines.append(f"  … {len(info['tensors']) - 12} more (mltui models inspect {v.label})", style="dim")
        self._show_info(lines)

    def _show_info(self, text: Text) -> None:
        self.query_one("#models-info", Static).update(text)
