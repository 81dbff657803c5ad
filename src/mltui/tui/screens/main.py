"""The main screen: one tab per concern, reached by single keys.

The app's first screen (screens/); the run detail, the log and a review are pushed over it, and the
dialogs of modals/ over any of them. Its tabs hold the seven panes of panes/, one per key, described
by one table (TABS): how each pane is built, where the focus goes when it is shown, whether showing
it polls it at once.

Only the Runs pane is built with the screen. Every other pane is imported and built the first time its
tab is shown (or something asks for it, as `c` asks for the Compare pane): the first row does not wait
for the modules of six panes, and a pane never shown holds no widgets, no reader and no timer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, TabbedContent, TabPane

from mltui.core.workspace import Workspace
from mltui.tui.panes.runs import RunsPane

if TYPE_CHECKING:
    from mltui.core.runs.views import View
    from mltui.tui.panes.base import Pane
    from mltui.tui.panes.compare import ComparePane


# each pane's module is imported when the pane is first built (see the module's docstring)
def _compare(s: MainScreen) -> Pane:
    from mltui.tui.panes.compare import ComparePane

    return ComparePane(s.ws, s.refresh_seconds, s.directions, id="compare-pane")


def _datasets(s: MainScreen) -> Pane:
    from mltui.tui.panes.datasets import DatasetsPane

    return DatasetsPane(s.ws, s.refresh_seconds, id="datasets-pane")


def _gpus(s: MainScreen) -> Pane:
    from mltui.tui.panes.gpus import GpuPane

    return GpuPane(s.ws, s.refresh_seconds, id="gpu-pane")


def _models(s: MainScreen) -> Pane:
    from mltui.tui.panes.models import ModelsPane

    return ModelsPane(s.ws, s.refresh_seconds, id="models-pane")


def _pipelines(s: MainScreen) -> Pane:
    from mltui.tui.panes.pipelines import PipelinesPane

    return PipelinesPane(s.ws, s.refresh_seconds, id="pipelines-pane")


def _monitor(s: MainScreen) -> Pane:
    from mltui.tui.panes.monitor import MonitorPane

    return MonitorPane(s.ws, s.refresh_seconds, id="monitor-pane")


@dataclass(frozen=True)
class Tab:
    """One pane of the main screen, and what an explicit switch to it does."""

    id: str  # the tab's id, as action_show_pane takes it
    title: str
    key: str
    make: Callable[[MainScreen], Pane]  # builds the pane (its widget id is `widget`), importing its module
    widget: str
    focus: str  # the selector of what gets the focus on a switch
    focus_when_drawn: bool  # focus once the pane is drawn, and only if it is still shown (see _focus_in);
    # else at once (once mounted, for a pane just built)
    polls: bool  # a switch polls it at once, and again once its tab is drawn (it polls only while shown)


TABS: tuple[Tab, ...] = (
    Tab("runs", "Runs", "1", lambda s: RunsPane(s.ws, s.refresh_seconds, id="runs-pane"), "runs-pane",
        "#runs-table", focus_when_drawn=False, polls=False),  # polled whenever the main screen is shown
    Tab("compare", "Compare", "2", _compare, "compare-pane", "#compare-pane", focus_when_drawn=False, polls=True),
    Tab("datasets", "Datasets", "3", _datasets, "datasets-pane", "#datasets-pane", focus_when_drawn=True,
        polls=True),  # it passes the focus on to its versions table
    Tab("gpus", "GPUs", "4", _gpus, "gpu-pane", "#gpu-procs", focus_when_drawn=True, polls=True),
    Tab("models", "Models", "5", _models, "models-pane", "#models-pane", focus_when_drawn=True,
        polls=True),  # it passes the focus on to its versions table
    Tab("pipelines", "Pipelines", "6", _pipelines, "pipelines-pane", "#pipelines-pane", focus_when_drawn=True,
        polls=True),  # focus passes on to its table
    Tab("monitor", "Monitor", "7", _monitor, "monitor-pane", "#monitor-pane", focus_when_drawn=True,
        polls=True),  # focus passes on to its features
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
        self._resumed = False  # shown once already (its first show needs no extra poll)

    def compose(self) -> ComposeResult:
        with Panes(initial="runs", id="panes"):
            for tab in TABS:
                with TabPane(f"{tab.key} {tab.title}", id=tab.id):
                    if tab.id == "runs":  # the others are built when first shown (see pane())
                        yield tab.make(self)
        yield Footer()

    def on_resize(self) -> None:
        # a narrow terminal (80 columns over SSH) fits every shown key only without the padding
        self.query_one(Footer).compact = self.size.width < 120

    def pane(self, tab: str) -> Pane:
        """The pane in the tab `tab` (an id of TABS), built if it was not yet (and then not composed
        until its first turn: use `with_pane` to act on what it holds)."""
        widget = TAB[tab].widget
        found = self.query(f"#{widget}")
        if found:
            return found.first()  # type: ignore[return-value]
        pane = TAB[tab].make(self)
        self.query_one(f"TabPane#{tab}", TabPane).mount(pane)
        return pane

    def with_pane(self, tab: str, then: Callable[[Pane], object]) -> None:
        """`then(pane)` now if the pane of tab `tab` is mounted, else (built now if need be) as soon as it
        is: its widgets are composed and its first poll asked for."""
        pane = self.pane(tab)
        if pane.is_mounted:
            then(pane)
        else:
            pane.call_later(then, pane)  # its queue runs after its compose and mount

    def action_show_pane(self, pane: str) -> None:
        tab = TAB[pane]
        built = bool(self.query(f"#{tab.widget}"))
        self.query_one(TabbedContent).active = pane
        # the focus moves into the pane at once, so that no key queued behind this switch reaches a widget
        # of the pane left behind (`c` after `7` would compare runs). A pane not drawn yet holds it itself
        # (its keys wait for its mount), and passes it on once drawn, if it is still shown; the last
        # switch wins
        widget = self.pane(pane)
        if built and not tab.focus_when_drawn:
            self.app.set_focus(self.query_one(tab.focus))
        else:
            if not widget.has_focus_within:
                self.app.set_focus(widget if widget.can_focus else None, scroll_visible=False)
            if tab.focus_when_drawn:
                self._focus_in(pane, tab.focus)
            else:  # just built: once mounted
                self.with_pane(pane, lambda _: self._focus_if_shown(pane, tab.focus))
        if tab.polls:
            self.with_pane(pane, lambda p: p.poll_now(force=True))

    def compare(self, view: View) -> None:
        """Show `view` in the Compare pane."""
        self.with_pane("compare", lambda pane: pane.set_view(view))
        self.action_show_pane("compare")

    def on_screen_resume(self) -> None:
        first, self._resumed = not self._resumed, True
        if first:
            return  # shown for the first time: its panes poll as they are mounted
        if self.is_mounted:
            self.query_one(RunsPane).poll_now(force=True)
            if self.query("#compare-pane"):  # a Compare pane never built has nothing to show again
                self.with_pane("compare", lambda pane: pane.poll_now(force=True))

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        tab = TAB.get(event.pane.id or "")
        if tab is not None and tab.polls:  # (a click on a tab never shown builds its pane here)
            self.with_pane(tab.id, lambda pane: pane.call_after_refresh(pane.poll_now, True))

    def _focus_in(self, pane: str, selector: str) -> None:
        """Focus a widget of a tab once it is built and shown, and only if it still is (see action_show_pane)."""
        self.with_pane(pane, lambda _: self.call_after_refresh(self._focus_if_shown, pane, selector))

    def _focus_if_shown(self, pane: str, selector: str) -> None:
        # App.set_focus at once, not Widget.focus (which defers again): the check and the focus must
        # happen together, or a widget in a pane no longer shown could take the keys
        # (focus already on it or inside it stays where it is: each move redraws the footer's keys)
        if self.query_one(TabbedContent).active == pane:
            target = self.query_one(selector)
            if not target.has_focus_within:
                self.app.set_focus(target)

    @property
    def compare_pane(self) -> ComparePane:
        return self.pane("compare")  # type: ignore[return-value]

    @property
    def runs_pane(self) -> RunsPane:
        return self.query_one(RunsPane)
