"""What the app does to runs: launch, kill (after a yes), rerun, open the log. Mixed into the App.

The run acted on is the one the current screen is about (a run's detail or log), else the run
highlighted in the Runs table. Slow parts (waiting for a kill) run in thread workers.
"""

from __future__ import annotations

from rich.text import Text
from textual import work

from mltui.base.errors import MltuiError
from mltui.base.text import safe


class RunActions:
    """Needs `self.ws` (the App sets it)."""

    def _target_run(self) -> dict | None:
        from mltui.core.runs.listing import get_run
        from mltui.core.reader import StoreReader

        run_id = getattr(self.screen, "current_run_id", None)  # type: ignore[attr-defined]
        if run_id is None:
            main = self._to_main_if_top()
            run = main.runs_pane.highlighted_run() if main is not None else None
            run_id = run["id"] if run else None
        if run_id is None:
            self.notify("No run is highlighted.", timeout=3)  # type: ignore[attr-defined]
            return None
        reader = StoreReader(self.ws)
        try:
            return get_run(reader.conn, run_id)
        except MltuiError as exc:
            self.notify(str(exc), severity="error", markup=False)  # type: ignore[attr-defined]
            return None
        finally:
            reader.close()

    def _to_main_if_top(self):
        from mltui.tui.screens.main import MainScreen

        return self.screen if isinstance(self.screen, MainScreen) else None  # type: ignore[attr-defined]

    # -- launch ---------------------------------------------------------------------------------
    def action_launch(self) -> None:
        from mltui.tui.modals.launch import LaunchScreen

        self.push_screen(LaunchScreen(self.ws), self._launched)  # type: ignore[attr-defined]

    def _launched(self, run_id: str | None) -> None:
        """The cursor goes to the new run, so `l` shows its output at once."""
        main = self._to_main_if_top()
        if run_id and main is not None:
            main.runs_pane.highlight(run_id)

    # -- log ------------------------------------------------------------------------------------
    def action_open_log(self) -> None:
        from mltui.tui.screens.log import LogScreen

        run = self._target_run()
        if run is None:
            return
        if not (self.ws.run_dir(run["id"]) / "output.log").exists() and not run.get("spec"):
            self.notify("This run was not launched by mltui, so it has no captured output.", timeout=4)
            return
        self.push_screen(LogScreen(self.ws, run["id"]))  # type: ignore[attr-defined]

    # -- kill -----------------------------------------------------------------------------------
    def kill_run_by_id(self, run_id: str) -> None:
        """Ask, then kill `run_id` (the GPUs pane's way in)."""
        from mltui.core.runs.listing import get_run
        from mltui.core.reader import StoreReader

        reader = StoreReader(self.ws)
        try:
            run = get_run(reader.conn, run_id)
        except MltuiError as exc:
            self.notify(str(exc), severity="error", markup=False)  # type: ignore[attr-defined]
            return
        finally:
            reader.close()
        self._confirm_kill(run)

    def action_kill_run(self) -> None:
        run = self._target_run()
        if run is not None:
            self._confirm_kill(run)

    def _confirm_kill(self, run: dict) -> None:
        from mltui.tui.modals.confirm import ConfirmScreen

        if run["status"] not in ("running", "queued"):
            self.notify(f"{run['name']} is {run['status']}; there is nothing to kill.", timeout=3, markup=False)
            return
        what = "Take" if run["status"] == "queued" else "Kill"
        question = Text.assemble(f"{what} ", (safe(run["name"]), "bold"), f" ({run['id']})",
                                 " off the queue?" if run["status"] == "queued" else
                                 "?\nSIGTERM to its process group now, SIGKILL after the grace period.")

        def answered(yes: bool | None) -> None:
            if yes:
                self._kill(run["id"], run["name"])

        self.push_screen(ConfirmScreen(question), answered)  # type: ignore[attr-defined]

    @work(thread=True, group="run-actions", exit_on_error=False)
    def _kill(self, run_id: str, name: str) -> None:
        from mltui.core.launch.stop import kill_run

        try:
            status = kill_run(self.ws, run_id)
        except MltuiError as exc:
            self.call_from_thread(self.notify, str(exc), severity="error", markup=False)  # type: ignore[attr-defined]
            return
        message = f"{name} {status}." if status != "running" else f"{name} was signalled but has not ended yet."
        self.call_from_thread(self.notify, message, timeout=4, markup=False)  # type: ignore[attr-defined]

    # -- rerun ----------------------------------------------------------------------------------
    def action_rerun(self) -> None:
        run = self._target_run()
        if run is not None:
            self._rerun(run)

    @work(thread=True, group="run-actions", exit_on_error=False)
    def _rerun(self, run: dict) -> None:
        from mltui.core.launch.launcher import launch, rerun_launch

        try:
            again = rerun_launch(self.ws, run, {})
            run_id = launch(self.ws, again)
        except (MltuiError, OSError) as exc:
            self.call_from_thread(self.notify, str(exc), severity="error", markup=False)  # type: ignore[attr-defined]
            return
        verb = "Queued" if again.queue else "Started"
        self.call_from_thread(self.notify, f"{verb} {run_id}, a rerun of {run['name']}.",  # type: ignore[attr-defined]
                              timeout=4, markup=False)
        self.call_from_thread(self._launched, run_id)
