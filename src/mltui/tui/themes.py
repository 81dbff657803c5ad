"""Themes are data: each TOML file in a themes folder becomes a Textual Theme."""

from __future__ import annotations

import dataclasses
import os
import tomllib
from pathlib import Path

from textual.theme import Theme

DEFAULT_THEME = "mltui-dark"
BUILTIN_DIR = Path(__file__).resolve().parent.parent / "themes"
_FIELDS = {f.name for f in dataclasses.fields(Theme)}

# mltui's own colours: every theme gets these unless it sets them under [variables].
VARIABLE_DEFAULTS = {
    "status-running": "#5FA8D3",
    "status-queued": "#9D8CD8",
    "status-finished": "#6BBF7A",
    "status-failed": "#E76F51",
    "status-killed": "#E9C46A",
    "status-lost": "#8A8F98",
    "spark-low": "#3E6F8F",
    "spark-high": "#F2A65A",
}


class ThemeFileError(Exception):
    pass


def load_theme_file(path: Path) -> Theme:
    """A Theme from one TOML file, or ThemeFileError with one sentence on what is wrong."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ThemeFileError(f"cannot be read ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ThemeFileError(f"is not valid TOML ({exc})") from None
    name = data.get("name", path.stem)
    if not isinstance(name, str) or not name.strip():
        raise ThemeFileError("has no usable name")
    unknown = sorted(set(data) - _FIELDS)
    if unknown:
        raise ThemeFileError(f"has unknown keys: {', '.join(unknown)}")
    variables = data.get("variables", {})
    if not isinstance(variables, dict) or not all(isinstance(v, str) for v in variables.values()):
        raise ThemeFileError("has a [variables] table whose values are not all strings")
    if "primary" not in data:
        raise ThemeFileError("sets no primary colour")
    try:
        theme = Theme(**{**data, "name": name, "variables": {**VARIABLE_DEFAULTS, **variables}})
        theme.to_color_system().generate()  # parses every colour now, not when the screen draws
    except Exception as exc:  # bad colour strings surface as various errors
        raise ThemeFileError(f"has a bad value ({exc})") from None
    return theme


def theme_dirs(workspace_root: Path | None) -> list[Path]:
    dirs = [BUILTIN_DIR]
    config_home = Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config"))
    dirs.append(config_home / "mltui" / "themes")
    if workspace_root is not None:
        dirs.append(workspace_root / "themes")
    return dirs


def discover(workspace_root: Path | None) -> tuple[list[Theme], list[str]]:
    """Every loadable theme, and one sentence per broken file."""
    themes: list[Theme] = []
    problems: list[str] = []
    for folder in theme_dirs(workspace_root):
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.toml")):
            try:
                themes.append(load_theme_file(path))
            except ThemeFileError as exc:
                problems.append(f"Theme file {path.name} {exc}; it was skipped.")
    return themes, problems
