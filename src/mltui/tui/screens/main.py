"""The main screen: one tab per concern, reached by single keys."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, TabbedContent, TabPane

from mltui.core.workspace import Workspace
from mltui.core.runs.views import View
from mltui.tui.panes.compare import ComparePane
from mltui.tui.panes.datasets import DatasetsPane
from mltui.tui.panes.gpus import GpuPane
from mltui.tui.panes.models import ModelsPane
from mltui.tui.panes.runs import RunsPane

PANES = [
    # id, title, key, and a placeholder text for a pane still to come (none now)
    ("runs", "Runs", "1", None),
    ("compare", "Compare", "2", None),
    ("datasets", "Datasets", "3", None),
    ("gpus", "GPUs", "4", None),
    ("models", "Models", "5", None),
]


class Panes(TabbedContent):
    """The main screen's tabs. Only an explicit switch (keys 1-5, the palette, a command) changes the
    pane. Textual would also switch to the pane of any widget given the focus, but that word comes as
    a message, which can arrive after a later explicit switch (two quick keys, a palette command that
    goes on to another pane) and undo it; the focus is only ever moved into the pane just shown."""

    def _on_tab_pane_focused(self, event: TabPane.Focused) -> None:
        event.stop()


class MainScreen(Screen):
    BINDINGS = [
        Binding(key, f"show_pane('{pane}')", title, id=f"app.pane.{pane}", show=False)  # the tabs show the keys
        for pane, title, key, _ in PANES
    ]

    def __init__(self, ws: Workspace, refresh_seconds: float = 1.0, directions: dict[str, str] | None = None) -> None:
        super().__init__()
        self.ws = ws
        self.refresh_seconds = refresh_seconds
        self.directions = directions or {}

    def compose(self) -> ComposeResult:
        with Panes(initial="runs", id="panes"):
            for pane, title, key, text in PANES:
                with TabPane(f"{key} {title}", id=pane):
                    if pane == "runs":
                        yield RunsPane(self.ws, self.refresh_seconds, id="runs-pane")
                    elif pane == "compare":
                        yield ComparePane(self.ws, self.refresh_seconds, self.directions, id="compare-pane")
                    elif pane == "datasets":
                        yield DatasetsPane(self.ws, self.refresh_seconds, id="datasets-pane")
                    elif pane == "gpus":
                        yield GpuPane(self.ws, self.refresh_seconds, id="gpu-pane")
                    elif pane == "models":
                        yield ModelsPane(self.ws, self.refresh_seconds, id="models-pane")
        yield Footer()

    def on_resize(self) -> None:
        # a narrow terminal (80 columns over SSH) fits every shown key only without the padding
        self.query_one(Footer).compact = self.size.width < 120

    def action_show_pane(self, pane: str) -> None:
        self.query_one(TabbedContent).active = pane
        # every focus lands after this switch, in the order of the switches, so the last one wins: runs
        # and compare by Widget.focus (next turn: before a focus that follows, the filter's), the others
        # once their pane is drawn and only if it is still shown
        if pane == "runs":
            self.query_one("#runs-table").focus()
        elif pane == "compare":
            self.compare_pane.focus()
            self.compare_pane.poll_now(force=True)
        elif pane == "datasets":
            self._focus_in("datasets", "#datasets-pane")  # it passes the focus on to its versions table
            self.query_one(DatasetsPane).poll_now(force=True)
        elif pane == "gpus":
            self._focus_in("gpus", "#gpu-procs")
            self.query_one(GpuPane).poll_now(force=True)
        elif pane == "models":
            self._focus_in("models", "#models-pane")  # it passes the focus on to its versions table
            self.query_one(ModelsPane).poll_now(force=True)

    def compare(self, view: View) -> None:
        """Show `view` in the Compare pane."""
        self.compare_pane.set_view(view)
        self.action_show_pane("compare")

    def on_screen_resume(self) -> None:
        if self.is_mounted:
            self.query_one(RunsPane).poll_now(force=True)
            self.compare_pane.poll_now(force=True)

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        if event.pane.id == "compare":
            self.compare_pane.call_after_refresh(self.compare_pane.poll_now, True)
        elif event.pane.id == "gpus":
            pane = self.query_one(GpuPane)
            pane.call_after_refresh(pane.poll_now, True)
        elif event.pane.id in ("datasets", "models"):
            polled = self.query_one(DatasetsPane if event.pane.id == "datasets" else ModelsPane)
            polled.call_after_refresh(polled.poll_now, True)

    def _focus_in(self, pane: str, selector: str) -> None:
        """Focus a widget of a tab once it is shown, and only if it still is (see action_show_pane)."""
        widget = self.query_one(selector)

        def focus() -> None:
            # App.set_focus at once, not Widget.focus (which defers again): the check and the focus must
            # happen together, or a widget in a pane no longer shown could take the keys
            if self.query_one(TabbedContent).active == pane:
                self.app.set_focus(widget)

        self.call_after_refresh(focus)

    @property
    def compare_pane(self) -> ComparePane:
        return self.query_one(ComparePane)

    @property
    def runs_pane(self) -> RunsPane:
        return self.query_one(RunsPane)
