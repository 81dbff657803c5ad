"""The mltui App: a router of screens and bindings.

The layout of tui/: screens/ are whole screens (the main screen with its tabs, a run's detail, its
log, a promotion review); panes/ are the six tabs of the main screen (runs, compare, datasets, GPUs,
models, pipelines) on one base (panes/base.py); modals/ are dialogs over any screen (confirm, prompt, save view,
launch, add data); widgets/ are the pieces they share. Background work reports through polling.py
(panes and screens that poll) or typed messages (messages.py); writes.py is how a screen changes the
store. Nothing under tui/ talks SQL or opens the store but through core/.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable

from textual import events
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Input

from mltui.core.workspace import Config, Workspace
from mltui.tui import themes
from mltui.tui.screens.main import TABS, MainScreen
from mltui.tui.widgets.filter_input import given_on
from mltui.tui.run_actions import RunActions


class MltuiApp(RunActions, App):
    CSS_PATH = "app.tcss"
    TITLE = "mltui"
    ENABLE_COMMAND_PALETTE = True
    BINDINGS = [
        Binding("ctrl+q", "quit", "Quit", id="app.quit", priority=True),
        Binding("q", "quit", "Quit", id="app.quit_q", show=False),
        Binding("question_mark", "toggle_keys", "Keys", id="app.keys"),
    ]

    def __init__(self, ws: Workspace, config: Config | None = None, theme: str | None = None,
                 title: str | None = None) -> None:
        super().__init__()
        self.ws = ws
        self.config = config or Config()
        self.requested_theme = theme or self.config.theme
        if title:
            self.title = title
        self.sub_title = str(ws.project_dir)
        self._theme_problems: list[str] = []
        self._load_themes()

    # -- themes and keys -----------------------------------------------------------------
    def get_theme_variable_defaults(self) -> dict[str, str]:
        return dict(themes.VARIABLE_DEFAULTS)

    def _load_themes(self) -> None:
        found, problems = themes.discover(self.ws.root)
        for theme in found:
            self.register_theme(theme)
        self._theme_problems = problems
        if self.requested_theme in self.available_themes:
            self.theme = self.requested_theme
        else:
            if self.requested_theme != themes.DEFAULT_THEME:
                self._theme_problems.append(
                    f"There is no theme called {self.requested_theme!r}; using {themes.DEFAULT_THEME}."
                )
            if themes.DEFAULT_THEME in self.available_themes:
                self.theme = themes.DEFAULT_THEME

    def on_load(self) -> None:
        # the start-up makes ~100k objects that live as long as the app (the screen, its widgets and
        # styles): the cyclic collector would walk them all, more than once, before the first frame.
        # It waits until that frame is drawn, and then they are frozen out of its way (_first_frame_drawn)
        gc.disable()

    def on_mount(self) -> None:
        if self.config.keys:
            self.set_keymap(self.config.keys)
        for problem in self._theme_problems:
            self.notify(problem, severity="warning", timeout=10, markup=False)
        from mltui.tui.notices import NoticeFeed

        self.notices = NoticeFeed(self, self.ws)  # the TUI's notification channel (core/notify)
        self.call_after_refresh(self._first_frame_drawn)

    def _first_frame_drawn(self) -> None:
        # what the start-up made lives as long as the app: out of the collector's way, so its full passes
        # take a few ms instead of 30-70 ms in the middle of a filter or a sort
        gc.freeze()
        gc.enable()
        self.notices.start()  # its first look, a thread, waits until the first rows are on screen

    def on_unmount(self) -> None:
        gc.unfreeze()  # the process may go on (a test, another app): all of it can be collected again
        gc.enable()
        notices = getattr(self, "notices", None)
        if notices is not None:
            notices.stop()

    async def _on_key(self, event: events.Key) -> None:
        """A key that bubbles up here after the focus moved was queued to the widget that had it (keys
        typed ahead in one burst: a paste, a slow SSH link); it is given to the widget that has it now:
        - a pane just built, with no widgets yet: pressed again once it is mounted (`7c` checks the monitor);
        - an input (the runs filter after `/`): every key, in order, so that `/ks` is filter text and not
          the bindings of the input's ancestors (`k` asked to kill the highlighted run), and `⏎` submits
          all that was typed before it. A key the input itself passed up makes the trip once more
          (marked, so only once) and meets the bindings then.
        The other direction, keys queued to the filter behind `⏎`, is widgets/filter_input.py's."""
        focused = self.focused
        if focused is not None and not focused.is_mounted:
            event.prevent_default()
            event.stop()
            focused.call_later(self.post_message, events.Key(event.key, event.character))
        elif isinstance(focused, Input) and not getattr(event, "given_on", False):
            event.prevent_default()
            event.stop()
            focused._forward_event(given_on(event))

    def get_default_screen(self) -> Screen:
        return MainScreen(self.ws, self.config.refresh_seconds, self.config.directions)

    # -- actions -------------------------------------------------------------------------
    def open_run(self, run_id: str) -> None:
        from mltui.tui.screens.run_detail import RunDetailScreen  # (numpy and all) when a run is first opened

        self.push_screen(RunDetailScreen(self.ws, run_id, self.config.refresh_seconds))

    def compare_view(self, view) -> None:
        """Open the Compare pane on a view (runs or a filter, metrics, axis, smoothing)."""
        main = self._to_main()
        if main is not None:
            main.compare(view)

    def _saved_views(self) -> list:
        from contextlib import closing

        from mltui.base.errors import MltuiError
        from mltui.core.reader import StoreReader
        from mltui.core.runs.views import list_views

        reader = StoreReader(self.ws)
        try:
            with closing(reader.conn):
                return list_views(reader.conn)
        except MltuiError:
            return []

    def action_toggle_keys(self) -> None:
        if self.screen.query("HelpPanel"):
            self.action_hide_help_panel()
        else:
            self.action_show_help_panel()

    def _to_main(self) -> MainScreen | None:
        """Close whatever sits on top of the main screen and return it."""
        main = next((s for s in self.screen_stack if isinstance(s, MainScreen)), None)
        if main is not None:
            while self.screen is not main:
                self.pop_screen()
        return main

    def _on_runs(self, then, show: bool = True) -> None:
        """Do something with the Runs pane; `show` brings its tab forward first (not for actions that
        open another pane, or focus would pull the Runs tab back over it)."""
        main = self._to_main()
        if main is not None:
            if show:
                main.action_show_pane("runs")
            then(main.runs_pane)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for tab in TABS:
            yield SystemCommand(f"Show {tab.title}", f"Switch to the {tab.title} pane (key {tab.key})",
                                lambda p=tab.id: self._show(p))
        yield SystemCommand("Filter runs", "Type a --where filter for the Runs table (key /)",
                            lambda: self._on_runs(lambda pane: pane.action_focus_filter()))
        yield SystemCommand("Clear the runs filter", "Show every run again",
                            lambda: self._on_runs(lambda pane: pane.clear_filter()))
        yield SystemCommand("Sort runs", "Cycle the Runs table's sort order (key s)",
                            lambda: self._on_runs(lambda pane: pane.action_cycle_sort()))
        yield SystemCommand("Open the highlighted run", "Params, tags, metric sparklines (key enter)",
                            lambda: self._on_runs(lambda pane: pane.highlighted_run() and
                                                  self.open_run(pane.highlighted_run()["id"])))
        yield SystemCommand("Launch a run", "A command from mltui.toml, or any command line (key n)",
                            self.action_launch)
        yield SystemCommand("Show the highlighted run's output", "Its log, followed live (key l)",
                            self.action_open_log)
        yield SystemCommand("Kill the highlighted run", "SIGTERM, then SIGKILL after the grace period (key k)",
                            self.action_kill_run)
        yield SystemCommand("Rerun the highlighted run", "Same command and params, a new run (key r)",
                            self.action_rerun)
        yield SystemCommand("Compare marked runs", "Charts and tables of the runs marked with space (key c)",
                            lambda: self._on_runs(lambda pane: pane.action_compare(), show=False))
        yield SystemCommand("Compare every run the filter shows", "Past 50 runs it asks how many (key C)",
                            lambda: self._on_runs(lambda pane: pane.action_compare_all(), show=False))
        yield SystemCommand("Group runs", "One row per group of params, N and mean ± std of the metrics (key g)",
                            lambda: self._on_runs(lambda pane: pane.action_group()))
        for name, view, _ in self._saved_views():
            what = view.where or f"{len(view.runs)} runs"
            yield SystemCommand(f"Open view: {name}", f"Saved comparison of {what}",
                                lambda v=view: self.compare_view(v))

    def _show(self, pane: str) -> None:
        main = self._to_main()
        if main is not None:
            main.action_show_pane(pane)


def create_app(ws: Workspace, theme: str | None = None, title: str | None = None) -> MltuiApp:
    """The one factory for the CLI and the tests."""
    return MltuiApp(ws, ws.config(), theme=theme, title=title)
