"""Named commands from a project's `mltui.toml`, and filling their templates argument by argument.

A template is split with `shlex` first; each `{param}` is then replaced inside its own argument,
so a param value is never seen by a shell, whatever characters it holds.
"""

from __future__ import annotations

import itertools
import os
import re
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mltui.base.errors import MltuiError, UsageError
from mltui.base.text import safe

PROJECT_FILE = "mltui.toml"
KINDS = ("train", "eval", "other")
_FIELD = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")


class Command:
    """One `[commands.NAME]` table: a template, default params, a kind and extra folders to watch."""

    def __init__(self, name: str, template: str, params: dict[str, Any], kind: str = "other",
                 watch: Sequence[str] = (), project: Path | None = None) -> None:
        self.name = name
        self.template = template
        self.params = dict(params)
        self.kind = kind
        self.watch = list(watch)
        self.project = project

    def placeholders(self) -> list[str]:
        return placeholders(self.template, self.name)

    def __repr__(self) -> str:
        return f"Command({self.name!r}, {self.template!r})"


def find_project_file(start: str | os.PathLike[str] | None = None, stop: Path | None = None) -> Path | None:
    """The nearest mltui.toml at or above `start`, not looking above `stop` (the workspace's project)."""
    here = Path(start if start is not None else os.getcwd()).absolute()
    for folder in (here, *here.parents):
        candidate = folder / PROJECT_FILE
        if candidate.is_file():
            return candidate
        if stop is not None and folder == stop:
            break
    return None


def project_section(path: Path, section: str, bad: type[MltuiError] = MltuiError) -> dict[str, Any]:
    """mltui.toml's `[section]` (`[commands]`, `[stages]`) as a table of tables; a file that cannot be
    read is one sentence, an unreadable or misshapen one raises `bad` (the stages' loader: exit code 2)."""
    import tomllib

    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise bad(f"{path} is not valid TOML: {exc}.") from None
    except UnicodeDecodeError:
        raise bad(f"{path} is not UTF-8 text.") from None
    except OSError as exc:
        raise MltuiError(f"Cannot read {path}: {exc.strerror}.") from None
    table = data.get(section, {})
    if not isinstance(table, dict):
        raise bad(f"{path}: [{section}] must hold tables like [{section}.train].")
    return table


def load_commands(path: Path) -> dict[str, Command]:
    """Parse mltui.toml; any problem is one sentence naming the file and the command."""
    table = project_section(path, "commands")
    commands: dict[str, Command] = {}
    for name, spec in table.items():
        where = f"{path}: command {name!r}"
        if not isinstance(spec, dict):
            raise MltuiError(f"{where} must be a table with a 'run' template.")
        unknown = sorted(set(spec) - {"run", "params", "kind", "watch", "description"})
        if unknown:
            raise MltuiError(f"{where} has unknown settings: {', '.join(unknown)} (known: run, params, kind, watch).")
        template = spec.get("run")
        if not isinstance(template, str) or not template.strip():
            raise MltuiError(f"{where} needs a 'run' template, e.g. run = \"python train.py --lr {{lr}}\".")
        params = spec.get("params", {})
        if not isinstance(params, dict):
            raise MltuiError(f"{where}: 'params' must be a table, e.g. params = {{ lr = 0.01 }}.")
        for key, value in params.items():
            if not isinstance(value, (str, int, float, bool)):
                raise MltuiError(f"{where}: param {key!r} must be a string, number or true/false.")
        kind = spec.get("kind", "other")
        if kind not in KINDS:
            raise MltuiError(f"{where}: 'kind' must be one of {', '.join(KINDS)}.")
        watch = spec.get("watch", [])
        if isinstance(watch, str):
            watch = [watch]
        if not isinstance(watch, list) or not all(isinstance(w, str) for w in watch):
            raise MltuiError(f"{where}: 'watch' must be a list of folders, e.g. watch = [\"checkpoints\"].")
        for folder in watch:
            check_watch_folder(folder, where)
        try:
            split_template(template)
            placeholders(template, name)
        except UsageError as exc:
            raise MltuiError(f"{where}: {exc}") from None
        commands[name] = Command(name, template, params, kind, watch, path.parent)
    return commands


def check_watch_folder(folder: str, where: str) -> None:
    rel = Path(folder)
    if not folder or rel.is_absolute() or ".." in rel.parts or folder.startswith("~"):
        raise MltuiError(f"{where}: watched folder {folder!r} must be a path inside the project, without '..'.")
    if not rel.parts or rel.parts[0] == ".mltui":
        raise MltuiError(f"{where}: watched folder {folder!r} must be a folder inside the project, not the project "
                         "itself or its .mltui workspace.")


def split_template(template: str) -> list[str]:
    try:
        return shlex.split(template)
    except ValueError as exc:
        raise UsageError(f"the template {template!r} cannot be split into arguments ({exc}).") from None


def placeholders(template: str, name: str = "the command") -> list[str]:
    found: list[str] = []
    for match in _FIELD.finditer(template):
        token = match.group(0)
        if token in ("{{", "}}"):
            continue
        key = match.group(1)
        if key is None or not _NAME.match(key):
            raise UsageError(f"the template of {name} has a stray brace or a bad name in {token!r} "
                             "(write {{ and }} for literal braces).")
        if key not in found:
            found.append(key)
    return found


class SpelledInt(int):
    """An int that keeps how it was typed (+5 stays +5 on the command line)."""

    text: str


class SpelledFloat(float):
    """A float that keeps how it was typed (1e-3 stays 1e-3 on the command line, 0.10 stays 0.10)."""

    text: str


def _spelled(cls, value, text: str):
    out = cls(value)
    out.text = text
    return out


def plain(value: Any) -> Any:
    """A spelled number as a plain one, for the store and JSON."""
    if isinstance(value, SpelledInt):
        return int(value)
    if isinstance(value, SpelledFloat):
        return float(value)
    return value


def as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return getattr(value, "text", None) or str(value)


_INT = re.compile(r"[+-]?(0|[1-9][0-9]*)")
_FLOAT = re.compile(r"[+-]?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")


def parse_value(text: str) -> Any:
    """A -p value typed the way TOML reads it: 3 is an int, 0.1 and 1e-3 floats, true a bool, else a
    string (007 too). Numbers keep their spelling for the command line."""
    stripped = text.strip()
    if stripped.lower() in ("true", "false"):
        return stripped.lower() == "true"
    if _INT.fullmatch(stripped):
        return _spelled(SpelledInt, int(stripped), text)
    if _FLOAT.fullmatch(stripped):
        return _spelled(SpelledFloat, float(stripped), text)
    return text


def fill(template: str, params: Mapping[str, Any], name: str = "the command") -> list[str]:
    """The argv for `template` with every {param} replaced inside its own argument."""
    missing = [key for key in placeholders(template, name) if key not in params]
    if missing:
        wants = ", ".join(f"-p {key}=VALUE" for key in missing)
        raise UsageError(f"{safe(name)} needs a value for {', '.join('{' + k + '}' for k in missing)}: pass {wants}.")

    def one(arg: str) -> str:
        return _FIELD.sub(lambda m: {"{{": "{", "}}": "}"}.get(m.group(0)) or as_text(params[m.group(1)]), arg)

    return [one(arg) for arg in split_template(template)]


def parse_assignments(items: Sequence[str], sweep: bool = False) -> dict[str, Any]:
    """`-p key=value` pairs; with `sweep`, each value is a comma-separated list of choices."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"-p takes KEY=VALUE, not {item!r}.")
        if not _NAME.match(key):
            raise UsageError(f"{key!r} is not a param name (letters, digits, _ . -).")
        if key in out:
            raise UsageError(f"param {key!r} is given twice.")
        if sweep:
            choices = [parse_value(v) for v in value.split(",")]
            if any(isinstance(c, str) and not c for c in choices):
                raise UsageError(f"-p {item!r} has an empty choice (choices are separated by commas).")
            out[key] = choices
        else:
            out[key] = parse_value(value)
    return out


def resolve_params(command: Command, given: Mapping[str, Any]) -> dict[str, Any]:
    """Defaults overridden by what was given; a param the command does not know is an error."""
    known = dict(command.params)
    for key in command.placeholders():
        known.setdefault(key, None)
    unknown = [key for key in given if key not in known]
    if unknown:
        takes = ", ".join(known) or "no params"
        raise UsageError(f"{safe(command.name)} has no param {unknown[0]!r} (it takes {safe(takes)}).")
    merged = {**command.params, **given}
    fill(command.template, merged, command.name)  # say now what is missing
    return merged


def sweep_grid(choices: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of the choices, in the order given (the last key varies fastest)."""
    keys = list(choices)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(choices[k] for k in keys))]
