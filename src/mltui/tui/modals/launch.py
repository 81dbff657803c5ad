"""The launch dialog: pick a command from mltui.toml (or type one), edit its params, choose GPUs or the queue."""

from __future__ import annotations

import os
import shlex

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Checkbox, Input, Label, Select, Static

from mltui.core.launch.commands import Command, as_text, find_project_file, load_commands, parse_value
from mltui.base.errors import MltuiError
from mltui.core.workspace import Workspace

AD_HOC = "\x00ad-hoc"  # the Select value for "type a command line"


def project_commands(ws: Workspace) -> tuple[dict[str, Command], str | None]:
    """The commands of the mltui.toml nearest the current folder (or the workspace's project), and any problem."""
    path = find_project_file(os.getcwd(), stop=ws.project_dir)
    if path is None and (ws.project_dir / "mltui.toml").is_file():
        path = ws.project_dir / "mltui.toml"
    if path is None:
        return {}, None
    try:
        return load_commands(path), None
    except MltuiError as exc:
        return {}, str(exc)


class LaunchScreen(ModalScreen[str | None]):
    """Dismisses with the new run's id, or None when cancelled."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="launch.cancel"),
        Binding("ctrl+s", "launch", "Launch", id="launch.go"),
    ]

    def __init__(self, ws: Workspace, command: str | None = None) -> None:
        super().__init__()
        self.ws = ws
        self.commands, self.problem = project_commands(ws)
        self.initial = command if command in self.commands else next(iter(self.commands), AD_HOC)
        self._shown: str | None = None

    def compose(self) -> ComposeResult:
        options = [(Text(name), name) for name in self.commands] + [(Text("a command line…"), AD_HOC)]
        with Vertical(id="launch"):
            yield Label("Launch a run", classes="title")
            yield Select(options, value=self.initial, allow_blank=False, id="launch-command", compact=True)
            yield Static(id="launch-error")  # up here: a long param list cannot push it out of sight
            yield Static(id="launch-template", classes="hint")
            yield VerticalScroll(id="launch-fields")
            with Horizontal(id="launch-row"):
                yield Label("GPUs", classes="key")
                yield Input(placeholder="0", id="launch-gpus", type="integer", compact=True)
                yield Label(" GB free each", classes="key")
                yield Input(placeholder="any", id="launch-gpu-mem", type="number", compact=True)
                yield Checkbox("queue it", id="launch-queue", compact=True)
            with Horizontal(id="launch-slurm-row"):
                yield Checkbox("on Slurm", id="launch-slurm", compact=True)
                yield Label(" time limit", classes="key")
                yield Input(placeholder="config default", id="launch-slurm-time", compact=True)
                yield Label(" partition", classes="key")
                yield Input(placeholder="default", id="launch-slurm-partition", compact=True)
            yield Label("ctrl+s (or enter in a field) launches · tab moves · esc cancels", classes="hint")

    async def on_mount(self) -> None:
        if self.problem:
            self._error(self.problem)
        await self._show_fields(self.initial)
        first = self.query("#launch-fields Input")
        (first.first() if first else self.query_one("#launch-command")).focus()

    @on(Select.Changed, "#launch-command")
    async def _command_changed(self, event: Select.Changed) -> None:
        await self._show_fields(event.value)

    async def _show_fields(self, name) -> None:
        if name == self._shown:
            return
        self._shown = name
        box = self.query_one("#launch-fields", VerticalScroll)
        await box.remove_children()
        template = self.query_one("#launch-template", Static)
        if name == AD_HOC or name not in self.commands:
            template.update(Text("Any command, split like a shell would but never run by one; "
                                 "`python` means the Python mltui runs in."))
            await box.mount(Horizontal(Label("command", classes="key"),
                                       Input(placeholder="python train.py --lr 0.1", id="launch-argv", compact=True),
                                       classes="param-row"))
            return
        command = self.commands[name]
        template.update(Text(command.template))  # literal: a template may hold [brackets]
        keys = list(dict.fromkeys([*command.params, *command.placeholders()]))
        fields = []
        for key in keys:
            value = command.params.get(key)
            shown = "" if value is None else ("true" if value is True else "false" if value is False else str(value))
            fields.append(Horizontal(
                Label(Text(key), classes="key"),
                Input(value=shown, placeholder="(required)" if value is None else f"(default {shown})", name=key,
                      classes="param", compact=True),
                classes="param-row"))
        if not fields:
            fields.append(Label("This command takes no params."))
        await box.mount(*fields)

    def _error(self, message: str) -> None:
        self.query_one("#launch-error", Static).update(Text(message))

    @on(Input.Submitted)
    def _submitted(self) -> None:
        self.action_launch()

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_launch(self) -> None:
        from mltui.core.launch.launcher import Launch, launch

        try:
            spec = self._launch_spec(Launch)
            run_id = launch(self.ws, spec)
        except MltuiError as exc:
            self._error(str(exc))
            return
        except (OSError, ValueError) as exc:
            self._error(f"Cannot launch: {exc}")
            return
        verb = "Submitted to Slurm" if spec.slurm is not None else "Queued" if spec.queue else "Started"
        self.notify(f"{verb} {spec.stem()} as run {run_id}.", timeout=4, markup=False)
        self.dismiss(run_id)

    def _launch_spec(self, Launch):
        name = self.query_one("#launch-command", Select).value
        slurm = None
        if self.query_one("#launch-slurm", Checkbox).value:
            slurm = {key: self.query_one(f"#launch-slurm-{key}", Input).value.strip() or None
                     for key in ("time", "partition")}
        common = dict(queue=self.query_one("#launch-queue", Checkbox).value and slurm is None, gpus=self._gpus(),
                      gpu_mem=self._gpu_mem(), slurm=slurm)
        if name == AD_HOC or name not in self.commands:
            line = self.query_one("#launch-argv", Input).value.strip()
            if not line:
                raise MltuiError("Type the command to run.")
            try:
                argv = shlex.split(line)
            except ValueError as exc:
                raise MltuiError(f"The command line cannot be split: {exc}.") from None
            return Launch(argv, **common)
        command = self.commands[name]
        params = {}
        for field in self.query("#launch-fields Input.param").results(Input):
            text = field.value.strip()
            default = command.params.get(field.name)
            if text == "":
                if default is None:
                    raise MltuiError(f"Fill in {field.name}: {command.name} needs a value for it.")
                continue  # an emptied field means the default
            if default is not None and text == as_text(default):
                continue  # untouched: the default as mltui.toml typed it, as `mltui run` would record it
            params[field.name] = parse_value(text)
        return Launch(command=command, params=params, **common)

    def _gpus(self) -> int:
        text = self.query_one("#launch-gpus", Input).value.strip()
        if not text:
            return 0
        try:
            gpus = int(text)
        except ValueError:
            gpus = -1
        if gpus < 0:
            raise MltuiError(f"GPUs must be a whole number, 0 or more (not {text!r}).")
        return gpus

    def _gpu_mem(self) -> float | None:
        text = self.query_one("#launch-gpu-mem", Input).value.strip()
        if not text:
            return None
        try:
            mem = float(text)
        except ValueError:
            mem = -1.0
        if not mem >= 0:
            raise MltuiError(f"GB free per GPU must be a number, 0 or more (not {text!r}).")
        return mem
