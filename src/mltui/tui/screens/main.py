"""The main screen: one tab per concern, reached by single keys.

The app's first screen (screens/); the run detail, the log and a review are pushed over it, and the
dialogs of modals/ over any of them. Its tabs hold the seven panes of panes/, one per key, described
by one table (TABS): how each pane is built, where the focus goes when it is shown, whether showing
it polls it at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, TabbedContent, TabPane

from mltui.core.workspace import Workspace
from mltui.core.runs.views import View
from mltui.tui.panes.base import Pane
from mltui.tui.panes.compare import ComparePane
from mltui.tui.panes.datasets import DatasetsPane
from mltui.tui.panes.gpus import GpuPane
from mltui.tui.panes.models import ModelsPane
from mltui.tui.panes.monitor import MonitorPane
from mltui.tui.panes.pipelines import PipelinesPane
from mltui.tui.panes.runs import RunsPane


@dataclass(frozen=True)
class Tab:
    """One pane of the main screen, and what an explicit switch to it does."""

    id: str  # the tab's id, as action_show_pane takes it
    title: str
    key: str
    make: Callable[[MainScreen], Pane]  # builds the pane (its widget id is `widget`)
    widget: str
    focus: str  # the selector of what gets the focus on a switch
    focus_when_drawn: bool  # focus once the pane is drawn, and only if it is still shown (see _focus_in);
    # else at once, by Widget.focus (next turn: before a focus that follows, the runs filter's)
    polls: bool  # a switch polls it at once, and again once its tab is drawn (it polls only while shown)


TABS: tuple[Tab, ...] = (
    Tab("runs", "Runs", "1", lambda s: RunsPane(s.ws, s.refresh_seconds, id="runs-pane"), "runs-pane",
        "#runs-table", focus_when_drawn=False, polls=False),  # polled whenever the main screen is shown
    Tab("compare", "Compare", "2",
        lambda s: ComparePane(s.ws, s.refresh_seconds, s.directions, id="compare-pane"), "compare-pane",
        "#compare-pane", focus_when_drawn=False, polls=True),
    Tab("datasets", "Datasets", "3", lambda s: DatasetsPane(s.ws, s.refresh_seconds, id="datasets-pane"),
        "datasets-pane", "#datasets-pane", focus_when_drawn=True, polls=True),  # it passes the focus on to its versions table
    Tab("gpus", "GPUs", "4", lambda s: GpuPane(s.ws, s.refresh_seconds, id="gpu-pane"), "gpu-pane",
        "#gpu-procs", focus_when_drawn=True, polls=True),
    Tab("models", "Models", "5", lambda s: ModelsPane(s.ws, s.refresh_seconds, id="models-pane"), "models-pane",
        "#models-pane", focus_when_drawn=True, polls=True),  # it passes the focus on to its versions table
    Tab("pipelines", "Pipelines", "6", lambda s: PipelinesPane(s.ws, s.refresh_seconds, id="pipelines-pane"),
        "pipelines-pane", "#pipelines-pane", focus_when_drawn=True, polls=True),  # focus passes on to its table
    Tab("monitor", "Monitor", "7", lambda s: MonitorPane(s.ws, s.refresh_seconds, id="monitor-pane"),
        "monitor-pane", "#monitor-pane", focus_when_drawn=True, polls=True),  # focus passes on to its features
)
TAB = {tab.id: tab for tab in TABS}
# (id, title, key, placeholder) per pane, as the command palette and older callers read them; the
# placeholder was the text of a pane still to come, and every pane is built now
PANES = [(tab.id, tab.title, tab.key, None) for tab in TABS]


class Panes(TabbedContent):
    """The main screen's tabs. Only an explicit switch (keys 1-7, the palette, a command) changes the
    pane. Textual would also switch to the pane of any widget given the focus, but that word comes as
    a message, which can arrive after a later explicit switch (two quick keys, a palette command that
    goes on to another pane) and undo it; the focus is only ever moved into the pane just shown."""

    def _on_tab_pane_focused(self, event: TabPane.Focused) -> None:
        event.stop()
        event.prevent_default()  # else TabbedContent's own handler still runs (Textual calls each class's)


class MainScreen(Screen):
    # the runs table, never the filter above it: a key pressed before the first poll (C, space, /) must
    # reach the table's bindings, not be typed into the filter
    AUTO_FOCUS = "#runs-table"
    BINDINGS = [
        Binding(tab.key, f"show_pane('{tab.id}')", tab.title, id=f"app.pane.{tab.id}", show=False)  # the tabs show the keys
        for tab in TABS
    ]

    def __init__(self, ws: Workspace, refresh_seconds: float = 1.0, directions: dict[str, str] | None = None) -> None:
        super().__init__()
        self.ws = ws
        self.refresh_seconds = refresh_seconds
        self.directions = directions or {}

    def compose(self) -> ComposeResult:
        with Panes(initial="runs", id="panes"):
            for tab in TABS:
                with TabPane(f"{tab.key} {tab.title}", id=tab.id):
                    yield tab.make(self)
        yield Footer()

    def on_resize(self) -> None:
        # a narrow terminal (80 columns over SSH) fits every shown key only without the padding
        self.query_one(Footer).compact = self.size.width < 120

    def action_show_pane(self, pane: str) -> None:
        tab = TAB[pane]
        self.query_one(TabbedContent).active = pane
        # every focus lands after this switch, in the order of the switches, so the last one wins: runs
        # and compare by Widget.focus (next turn: before a focus that follows, the filter's), the others
        # once their pane is drawn and only if it is still shown
        if tab.focus_when_drawn:
            self._focus_in(pane, tab.focus)
        else:
            self.query_one(tab.focus).focus()
        if tab.polls:
            self.pane(pane).poll_now(force=True)

    def compare(self, view: View) -> None:
        """Show `view` in the Compare pane."""
        self.compare_pane.set_view(view)
        self.action_show_pane("compare")

    def on_screen_resume(self) -> None:
        if self.is_mounted:
            self.query_one(RunsPane).poll_now(force=True)
            self.compare_pane.poll_now(force=True)

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        tab = TAB.get(event.pane.id or "")
        if tab is not None and tab.polls:
            pane = self.pane(tab.id)
            pane.call_after_refresh(pane.poll_now, True)

    def _focus_in(self, pane: str, selector: str) -> None:
        """Focus a widget of a tab once it is shown, and only if it still is (see action_show_pane)."""
        widget = self.query_one(selector)

        def focus() -> None:
            # App.set_focus at once, not Widget.focus (which defers again): the check and the focus must
            # happen together, or a widget in a pane no longer shown could take the keys
            if self.query_one(TabbedContent).active == pane:
                self.app.set_focus(widget)

        self.call_after_refresh(focus)

    def pane(self, tab: str) -> Pane:
        """The pane in the tab `tab` (an id of TABS)."""
        return self.query_one(f"#{TAB[tab].widget}", Pane)

    @property
    def compare_pane(self) -> ComparePane:
        return self.query_one(ComparePane)

    @property
    def runs_pane(self) -> RunsPane:
        return self.query_one(RunsPane)
