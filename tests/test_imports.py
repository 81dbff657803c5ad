"""Import hygiene: the tracking API and the domain stay free of the screen and heavy libraries."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def loaded_after(statement: str) -> set[str]:
    code = f"import sys, json\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout))


def top_level(modules: set[str]) -> set[str]:
    return {m.split(".")[0] for m in modules}


def test_import_mltui_pulls_no_textual_polars_or_torch():
    mods = top_level(loaded_after("import mltui"))
    assert not mods & {"textual", "rich", "polars", "torch", "numpy", "plotext", "pynvml", "watchdog", "sqlite_utils"}


@pytest.mark.parametrize(
    "module",
    ["mltui.core.workspace", "mltui.core.runs.tracking", "mltui.core.runs.listing", "mltui.demo.build", "mltui.core.reader",
     "mltui.store.connection", "mltui.store.schema", "mltui.store.metrics", "mltui.store.runs", "mltui.store.where",
     "mltui.cli.main", "mltui.cli.runs"],
)
def test_core_store_and_cli_import_no_textual(module):
    mods = top_level(loaded_after(f"import {module}"))
    assert "textual" not in mods and "rich" not in mods


def test_every_core_and_store_module_avoids_textual():
    """Walk the packages, feature subpackages included, so a new module cannot slip past the list above."""
    code = (
        "import pkgutil, importlib, sys, json, mltui.base, mltui.core, mltui.store\n"
        "for pkg in (mltui.base, mltui.core, mltui.store):\n"
        "    for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.'):\n"
        "        importlib.import_module(info.name)\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    mods = top_level(set(json.loads(out.stdout)))
    assert "textual" not in mods and "rich" not in mods


def test_the_hygiene_check_can_fail():
    """The same helper sees Textual when something does import it."""
    assert "textual" in top_level(loaded_after("import mltui.tui.app"))
