"""Saved comparisons: a name for a set of runs (or a --where), metrics, axis and smoothing."""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import asdict, dataclass, field

from mltui.base.errors import NotFound, UsageError
from mltui.store.connection import write_tx


AXES = ("step", "time", "relative")  # kept here, not in compare, so listing views needs no polars
BANDS = ("std", "minmax", "none")  # a grouped view's band around each group's mean: ± std, min–max, none


@dataclass
class View:
    runs: list[str] = field(default_factory=list)  # explicit run ids...
    where: str | None = None  # ...or a filter, evaluated when the view opens
    metrics: list[str] = field(default_factory=list)
    axis: str = "step"
    smoothing: float = 0.0
    log_y: bool = False
    clip: bool = False
    group_by: str | None = None  # a --group-by spec ('*,-seed'): one line per group, its mean and a band
    band: str = "std"

    def check(self) -> "View":
        if not self.runs and not self.where:
            raise UsageError("A view needs runs or a --where filter.")
        if self.axis not in AXES:
            raise UsageError(f"The axis must be one of {', '.join(AXES)}.")
        if not 0 <= self.smoothing < 1:
            raise UsageError("Smoothing must be at least 0 and below 1.")
        if self.band not in BANDS:
            raise UsageError(f"The band must be one of {', '.join(BANDS)}.")
        return self

    @classmethod
    def from_json(cls, text: str) -> "View":
        data = json.loads(text)
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def _check_name(name: str) -> str:
    if not name or len(name) > 80 or not name.strip() or any(ord(c) < 32 for c in name):
        raise UsageError("A view name must be 1-80 printable characters.")
    return name.strip()


def save_view(conn: sqlite3.Connection, name: str, view: View) -> None:
    name = _check_name(name)
    now = time.time()
    with write_tx(conn):
        conn.execute(
            "INSERT INTO views(name, spec, created, updated) VALUES (?,?,?,?) "
            "ON CONFLICT(name) DO UPDATE SET spec = excluded.spec, updated = excluded.updated",
            (name, json.dumps(asdict(view.check())), now, now),
        )


def get_view(conn: sqlite3.Connection, name: str) -> View:
    name = name.strip()
    row = conn.execute("SELECT spec FROM views WHERE name = ?", (name,)).fetchone()
    if row is None:
        raise NotFound(f"There is no saved view called {name!r}; `mltui views list` shows them.")
    return View.from_json(row[0])


def list_views(conn: sqlite3.Connection) -> list[tuple[str, View, float]]:
    return [(name, View.from_json(spec), updated)
            for name, spec, updated in conn.execute("SELECT name, spec, updated FROM views ORDER BY name")]


def delete_view(conn: sqlite3.Connection, name: str) -> None:
    name = name.strip()
    with write_tx(conn):
        if conn.execute("DELETE FROM views WHERE name = ?", (name,)).rowcount == 0:
            raise NotFound(f"There is no saved view called {name!r}.")
